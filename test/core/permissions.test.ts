/**
 * Permissions: who may ask, stop, steer and administer (the rules the platform adapters pass
 * actors to; their transport tests only script the core's "no"), and chat-scoped roles
 * (Telegram chat admins) make an admin or a trusted person only in the chats configured for
 * it; Discord role ids and user ids work anywhere.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfig } from "../../src/config/config.ts";
import { Permissions } from "../../src/core/permissions.ts";
import type { Actor } from "../../src/core/ports.ts";

const perms = (permissions: Record<string, unknown>) => new Permissions(loadConfig({ env: {}, overrides: { permissions } }).config.permissions);

const chatAdmin = (chat: string): Actor => ({ platform: "telegram", userId: "42", roles: ["administrator"], rolesChatId: chat });

test("a Telegram chat admin is a steerbot admin only in the configured chats", () => {
  const p = perms({ admins: { users: [], roles: ["administrator"], role_chats: ["-1001"] } });
  assert.equal(p.isAdmin(chatAdmin("-1001")), true, "admin of the configured group");
  assert.equal(p.isAdmin(chatAdmin("-999")), false, "admin of a group anyone could have made");
  assert.equal(p.allows("steer", chatAdmin("-999"), { platform: "telegram", chatId: "-999", threadId: "-999" }, "7"), true, "still steers where everyone may");
});

test("without role_chats, Telegram chat roles never make an admin or a trusted person", () => {
  const p = perms({ admins: { users: [], roles: ["administrator", "creator"] }, trusted: { users: [], roles: ["administrator"] }, default_trust: "pending" });
  assert.equal(p.isAdmin(chatAdmin("-1001")), false);
  assert.equal(p.isTrusted(chatAdmin("-1001")), false, "no auto-approved steers from a self-made group");
  assert.equal(p.isAdmin({ platform: "telegram", userId: "42" }), false);
});

test("trusted.role_chats scopes trust the same way; user ids and Discord roles are not scoped", () => {
  const p = perms({
    admins: { users: ["900"], roles: ["111122223333444455"] },
    trusted: { users: [], roles: ["administrator"], role_chats: ["-1001"] },
    default_trust: "pending",
  });
  assert.equal(p.isTrusted(chatAdmin("-1001")), true);
  assert.equal(p.isTrusted(chatAdmin("-2")), false);
  assert.equal(p.isAdmin({ platform: "telegram", userId: "900", roles: [], rolesChatId: "-2" }), true, "a configured user id is an admin anywhere");
  assert.equal(p.isAdmin({ platform: "discord", userId: "5", roles: ["111122223333444455"] }), true, "Discord role ids are guild-scoped already");
});

const alice: Actor = { platform: "discord", userId: "1" };
const bob: Actor = { platform: "discord", userId: "2" };
const mod: Actor = { platform: "discord", userId: "3", roles: ["555"] };
const inChannel = (chatId: string) => ({ platform: "discord" as const, chatId, threadId: `${chatId}-t` });

test("the defaults: everyone may ask, stop and steer; nobody on a platform is an admin; the operator is", () => {
  const p = perms({});
  for (const action of ["ask", "stop", "steer"] as const) assert.equal(p.allows(action, bob, inChannel("c"), "1"), true, action);
  assert.equal(p.isAdmin(alice), false, "empty admins = nobody on chat platforms");
  assert.equal(p.isAdmin({ platform: "cli", userId: "me", operator: true }), true, "the terminal's operator");
  assert.equal(p.isTrusted(bob), false, "default_trust pending");
});

test("a stop list: the asker may still stop their own reply, a stranger may not, a listed role and an admin may", () => {
  const p = perms({ stop: { users: [], roles: ["555"] }, admins: { users: ["9"], roles: [] } });
  assert.equal(p.allows("stop", alice, inChannel("c"), alice.userId), true, "own reply");
  assert.equal(p.allows("stop", bob, inChannel("c"), alice.userId), false, "a stranger's stop");
  assert.equal(p.allows("stop", mod, inChannel("c"), alice.userId), true, "a moderator role");
  assert.equal(p.allows("stop", { platform: "discord", userId: "9" }, inChannel("c"), alice.userId), true, "an admin");
  assert.equal(p.allows("steer", bob, inChannel("c"), alice.userId), true, "steer has its own (empty) list");
});

test("an ask list and channels: only the listed may ask, only where listed; asking own replies grants nothing", () => {
  const p = perms({ ask: { users: ["1"], roles: [], channels: ["c1"] } });
  assert.equal(p.allows("ask", alice, inChannel("c1")), true);
  assert.equal(p.allows("ask", alice, inChannel("c2")), false, "outside the listed channels");
  assert.equal(p.allows("ask", bob, inChannel("c1")), false, "not listed");
  assert.equal(p.allows("ask", bob, inChannel("c1"), bob.userId), false, "ownership counts for stop/steer only");
  assert.equal(p.allows("ask", alice, { platform: "discord", chatId: "c2", threadId: "c1" }), true, "a thread id may be the listed one");
});

test("trust: listed users and roles, admins, a user marked trusted; a blocked user never, even with default_trust approved", () => {
  const p = perms({ trusted: { users: ["1"], roles: ["555"] }, admins: { users: ["9"], roles: [] } });
  assert.equal(p.isTrusted(alice), true);
  assert.equal(p.isTrusted(mod), true);
  assert.equal(p.isTrusted({ platform: "discord", userId: "9" }), true, "an admin");
  assert.equal(p.isTrusted(bob), false);
  assert.equal(p.isTrusted(bob, "trusted"), true, "marked trusted by an admin");
  const open = perms({ default_trust: "approved" });
  assert.equal(open.isTrusted(bob), true);
  assert.equal(open.isTrusted(bob, "blocked"), false);
});
