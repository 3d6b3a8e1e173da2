/**
 * The stop-position invariant on Telegram: after a stop, what the chat shows is exactly the
 * stored stop point (`generations.final_text`, which is `prefix + rejected` of a steer on it),
 * under a slow network (250 ms per call, the fake applying each change half-way, so a user
 * reacts to text whose edit the bot still waits for), in randomized stops: by 👎 on a streamed
 * message and by Telegram's stop button on a draft. Real grammY, the real core on the tiny
 * model, PGlite.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createTestApp, type TestApp } from "../../helpers/app.ts";
import { makeUser, type FakeChat } from "../../fakes/telegram/fake-bot-api.ts";
import { STOP_BUTTON_DATA } from "../../../src/platforms/telegram/telegram-reply-surface.ts";
import { startHarness, type Harness } from "./harness.ts";
import { seededRandom as rng } from "../../helpers/seeded-random.ts";

const STOPS_PER_SURFACE = Number(process.env.STOPS_PER_SURFACE ?? 50);
const PARALLEL = 8;
const LATENCY_MS = 250;
const BUTTON_STOPS = Math.min(STOPS_PER_SURFACE, 16);
/** Slow enough that the first message is on screen well before its send returns to the bot. */
const EARLY_LATENCY_MS = 1000;

describe("telegram: a stop shows exactly the stored stop point", () => {
  let app: TestApp;
  const seed = Number(process.env.STOP_SEED ?? Date.now() % 100_000);
  const random = rng(seed);

  before(async () => {
    app = await createTestApp({ db: "pglite", config: { generation: { max_tokens: 200 } } });
  });
  after(async () => {
    await app?.close();
  });

  const generation = (source: string) =>
    app.store.db.selectFrom("generations").selectAll().where("source_message_id", "=", source).executeTakeFirstOrThrow();

  /** The chat's reply is no longer streaming (it ended before the test stopped it). */
  const ended = (chat: FakeChat) => app.core.openReplyIn({ platform: "telegram", chatId: String(chat.id), threadId: String(chat.id) })?.state !== "generating";

  /**
   * Runs `n` stops in batches of PARALLEL chats (private ones, or groups where the bot is not an
   * admin); returns how many really stopped a stream.
   */
  async function stops(h: Harness<TestApp["core"]>, firstUser: number, stopOne: (chat: FakeChat, user: ReturnType<typeof makeUser>, k: number) => Promise<void>, check: (chat: FakeChat, finalText: string) => void, opts: { n?: number; group?: boolean; k?: () => number } = {}): Promise<number> {
    // Until n stops have landed while streaming (the random model sometimes ends a reply
    // first; those count as checks of an unstopped reply), at most 2.5× as many tries.
    const n = opts.n ?? STOPS_PER_SURFACE;
    let stopped = 0;
    for (let b = 0; stopped < n && b < n * 2.5; b += PARALLEL) {
      const batch = Array.from({ length: Math.min(PARALLEL, n - stopped) }, (_, i) => {
        const user = makeUser(firstUser + b + i, `U${b + i}`);
        const chat = opts.group ? h.fake.addChat({ id: -(firstUser + b + i), type: "supergroup", title: `g${b + i}` }) : h.fake.privateChat(user);
        return { user, chat, k: opts.k ? opts.k() : 2 + Math.floor(random() * 3) };
      });
      const sources = await Promise.all(
        batch.map(async ({ user, chat, k }) => {
          const q = h.fake.userSends(chat, user, `${opts.group ? "/ask " : ""}Tell me a long story, number ${b}`);
          await stopOne(chat, user, k);
          return `${chat.id}:${q.message_id}`;
        }),
      );
      await h.allHandled(60_000);
      await h.bot.idle();
      for (const [i, source] of sources.entries()) {
        const gen = await generation(source).catch((e: unknown) => {
          throw new Error(`no generation for ${source}: the chat shows ${JSON.stringify(h.fake.transcript(batch[i]!.chat.id))}`, { cause: e });
        });
        if (gen.status === "stopped") stopped++;
        check(batch[i]!.chat, gen.final_text ?? "");
      }
    }
    return stopped;
  }

  test(`${STOPS_PER_SURFACE} stops by 👎 on streamed messages, ${LATENCY_MS} ms latency`, async () => {
    const h = await startHarness(app.core, { fake: { latencyMs: LATENCY_MS }, config: { minEditIntervalMs: 100, privateDrafts: false } });
    try {
      const stopped = await stops(
        h,
        20_000,
        async (chat, user, k) => {
          // React the moment the k-th version is visible: its edit is still on the wire.
          // (Or the last one, when the reply ends before it has k versions: that stop changes nothing.)
          const m = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((x) => x.versions.length >= k || (x.versions.length && ended(chat))), 60_000, `version ${k}`).catch((e: unknown) => {
            throw new Error(`chat ${chat.id}: ${JSON.stringify(h.fake.botMessages(chat.id).map((x) => x.versions))}; reply ${app.core.openReplyIn({ platform: "telegram", chatId: String(chat.id), threadId: String(chat.id) })?.state}`, { cause: e });
          });
          h.fake.userReacts(chat, user, m.message_id, ["👎"]);
        },
        (chat, finalText) => {
          const shown = h.fake.botMessages(chat.id).map((m) => m.text).join(" ");
          assert.equal(shown, finalText.trim(), `seed ${seed}, chat ${chat.id}: the message shows the stored stop point`);
        },
      );
      assert.ok(stopped >= STOPS_PER_SURFACE, `seed ${seed}: only ${stopped} stops landed while streaming`);
    } finally {
      await h.close();
    }
  });

  /** What a chat's reply messages show (a group's notice about reactions left out). */
  const replyText = (h: Harness<TestApp["core"]>, chat: FakeChat) =>
    h.fake.botMessages(chat.id).filter((m) => !/will not work in this group/.test(m.text)).map((m) => m.text).join(" ");

  test(`${BUTTON_STOPS} stops by the inline Stop button in groups where the bot is no admin, ${LATENCY_MS} ms latency`, async () => {
    const h = await startHarness(app.core, { fake: { latencyMs: LATENCY_MS }, config: { minEditIntervalMs: 100 } });
    try {
      const stopped = await stops(
        h,
        40_000,
        async (chat, user, k) => {
          // Press the moment the k-th version is visible: its edit is still on the wire.
          const m = await h.fake.waitFor(() => h.fake.botMessages(chat.id).find((x) => x.reply_markup !== undefined && (x.versions.length >= k || (x.versions.length && ended(chat)))), 60_000, `version ${k}`);
          h.fake.userPresses(chat, user, m.message_id, STOP_BUTTON_DATA);
        },
        (chat, finalText) => {
          assert.equal(replyText(h, chat), finalText.trim(), `seed ${seed}, chat ${chat.id}: the message shows the stored stop point`);
          assert.ok(h.fake.botMessages(chat.id).every((m) => !JSON.stringify(m.reply_markup ?? {}).includes(STOP_BUTTON_DATA)), "no Stop button left");
        },
        { n: BUTTON_STOPS, group: true },
      );
      assert.ok(stopped >= BUTTON_STOPS, `seed ${seed}: only ${stopped} stops landed while streaming`);
      assert.ok(h.fake.callbackAnswers.length >= BUTTON_STOPS, "every press was answered");
    } finally {
      await h.close();
    }
  });

  test(`stops that arrive before the first send returns (${EARLY_LATENCY_MS} ms latency) stop at the first text shown`, async () => {
    const h = await startHarness(app.core, { fake: { latencyMs: EARLY_LATENCY_MS }, config: { minEditIntervalMs: 100, privateDrafts: false } });
    try {
      const stopped = await stops(
        h,
        50_000,
        async (chat, user) => {
          // The first message is on screen; its send returns to the bot only EARLY_LATENCY_MS / 2 later.
          const m = await h.fake.waitFor(() => h.fake.botMessages(chat.id)[0], 60_000, "the first message");
          h.fake.userReacts(chat, user, m.message_id, ["👎"]);
        },
        (chat, finalText) => {
          assert.equal(replyText(h, chat), finalText.trim(), `seed ${seed}, chat ${chat.id}: the message shows the stored stop point`);
          assert.equal(h.fake.botMessages(chat.id)[0]!.versions.length, 1, "nothing more was shown after the stop");
        },
        { n: PARALLEL, k: () => 1 },
      );
      // Before, such a reaction named a message the core did not know yet and was ignored.
      assert.equal(stopped, PARALLEL, `seed ${seed}: every early stop stopped its reply`);
    } finally {
      await h.close();
    }
  });

  test(`${STOPS_PER_SURFACE} stops by the draft stop button, ${LATENCY_MS} ms latency`, async () => {
    const h = await startHarness(app.core, { fake: { latencyMs: LATENCY_MS }, config: { minEditIntervalMs: 100, privateDrafts: true } });
    try {
      const stopped = await stops(
        h,
        30_000,
        async (chat, _user, k) => {
          const d = await h.fake.waitFor(() => {
            const mine = h.fake.draftHistory.filter((x) => x.chatId === chat.id);
            return mine.length >= k || (mine.length && ended(chat)) ? mine[0] : undefined;
          }, 60_000, `draft version ${k}`);
          h.fake.userStopsDraft(chat, d.draftId);
        },
        (chat, finalText) => {
          const shown = h.fake.botMessages(chat.id).map((m) => m.text).join(" ");
          assert.equal(shown, finalText.trim(), `seed ${seed}, chat ${chat.id}: the persisted draft shows the stored stop point`);
        },
      );
      assert.ok(stopped >= STOPS_PER_SURFACE, `seed ${seed}: only ${stopped} stops landed while streaming`);
    } finally {
      await h.close();
    }
  });
});
