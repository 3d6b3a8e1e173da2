/**
 * Permissions: chat-scoped roles (Telegram chat admins) make an admin or a trusted person only in
 * the chats configured for it; Discord role ids and user ids work anywhere.
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
