// The steering page: ask, watch the reply stream, stop it where it goes wrong (the button or
// Esc: the server cuts at what this page displayed), click the wrong word, type the correction,
// resume; again and again; accept. All text from the server goes in as textContent.
import { api, session, stream } from "./studio-client.js";
import { renderNav } from "./nav.js";

const $ = (id) => document.getElementById(id);
const replyEl = $("reply");
const stopBtn = $("stop");
const acceptBtn = $("accept");
const resumeBtn = $("resume");
const sendBtn = $("send");
const statusEl = $("status");
const hintEl = $("hint");

const state = {
  conversation: newId(),
  /** The reply as displayed. */
  text: "",
  /** The message id of the stream showing it. */
  messageId: null,
  /** "idle" | "generating" | "stopped" | "done" | "accepted" */
  phase: "idle",
  /** Where tokens start in `text` (a click snaps back to the nearest one at or before it). */
  boundaries: [],
  /** The clicked divergence, snapped; null = none (a typed correction is aligned by the server). */
  divergence: null,
  /** Stop pressed: later deltas of this stream are not shown; the end event says what stays. */
  stopping: false,
};

function newId() {
  return crypto.randomUUID().replaceAll("-", "");
}

function render() {
  if (state.divergence === null) {
    replyEl.textContent = state.text;
  } else {
    const prefix = document.createElement("span");
    prefix.className = "prefix";
    prefix.textContent = state.text.slice(0, state.divergence);
    const rejected = document.createElement("s");
    rejected.className = "rejected";
    rejected.textContent = state.text.slice(state.divergence);
    replyEl.replaceChildren(prefix, rejected);
  }
  replyEl.dataset.phase = state.phase;
  replyEl.dataset.messageId = state.messageId ?? "";
  const streaming = state.phase === "generating";
  stopBtn.disabled = !streaming || state.stopping || !state.messageId;
  acceptBtn.disabled = !(state.phase === "stopped" || state.phase === "done");
  resumeBtn.disabled = !(state.phase === "stopped" || state.phase === "done");
  sendBtn.disabled = streaming;
}

function say(text) {
  statusEl.textContent = text ?? "";
}

function addTurn(role, text) {
  if (!text) return;
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text;
  $("transcript").append(li);
}

/** Handles the events of one stream (ask or resume). */
function onEvent(ev) {
  if (ev.type === "message") {
    state.messageId = ev.id;
    state.text = "";
    state.divergence = null;
  } else if (ev.type === "delta") {
    if (state.stopping) return; // what came after the stop was never displayed: it does not count
    state.text = state.text.slice(0, ev.at) + ev.text;
  } else if (ev.type === "end") {
    state.stopping = false;
    if (ev.reply) {
      state.messageId = ev.reply.messageId;
      state.text = ev.reply.text;
      state.boundaries = ev.reply.boundaries;
      state.phase = ev.reply.state;
    } else if (state.phase === "generating") state.phase = state.messageId ? "done" : "idle";
    replyEl.dataset.sent = String(ev.sent ?? "");
    renderTimeline(ev.steers ?? []);
    say(ev.notice ?? (state.phase === "stopped" ? "Stopped. Click where it went wrong, type the correction, then Resume — or Accept." : ""));
    hintEl.textContent = "";
  }
  render();
}

async function send(e) {
  e.preventDefault();
  const message = $("message");
  const text = message.value;
  if (text.trim() === "" || state.phase === "generating") return;
  if (state.text) addTurn("assistant", state.text);
  addTurn("user", text);
  message.value = "";
  Object.assign(state, { text: "", messageId: null, phase: "generating", boundaries: [], divergence: null, stopping: false });
  renderTimeline([]);
  say("");
  render();
  await stream("/api/ask", { conversation: state.conversation, text, settings: readSettings() }, onEvent, newStream());
  void loadHistory();
}

async function stop() {
  if (state.phase !== "generating" || state.stopping || !state.messageId) return;
  state.stopping = true;
  const displayed = state.text.length; // what this page has rendered, exactly
  replyEl.dataset.displayedAtStop = String(displayed);
  render();
  const out = await api("/api/stop", { method: "POST", body: { messageId: state.messageId, displayed } });
  if (!out.ok) {
    if (out.notice) say(out.notice);
    return;
  }
  // Behind a slow link the stream still carries text this page will never display; the stop's
  // answer is the reply's end, so the page ends the stream here instead of waiting for it.
  if (out.type === "end" && state.stopping) {
    streamControl?.abort();
    onEvent(out);
  }
}

/** The stream now open (ask or resume): a stop ends it. */
let streamControl = null;
function newStream() {
  streamControl = new AbortController();
  return streamControl.signal;
}

async function resume(e) {
  e.preventDefault();
  if (!(state.phase === "stopped" || state.phase === "done")) return;
  const correction = $("correction");
  const text = correction.value;
  if (text.trim() === "") {
    say("Type the correction first: what it should say from the point you clicked (or s/wrong/right/, or plain text).");
    return;
  }
  const body = { conversation: state.conversation, messageId: state.messageId, text };
  if (state.divergence !== null) body.divergence = state.divergence;
  const before = { text: state.text, divergence: state.divergence, phase: state.phase, messageId: state.messageId };
  state.phase = "generating";
  state.messageId = null; // Stop waits for the resumed stream's message: a stop before it would stop nothing
  render();
  const end = await stream("/api/correct", body, onEvent, newStream());
  if (end.ok) correction.value = "";
  else if (!end.reply) Object.assign(state, before); // nothing changed: show the reply as it was
  render();
}

async function accept() {
  if (!state.messageId) return;
  const out = await api("/api/accept", { method: "POST", body: { messageId: state.messageId } });
  if (out.ok) {
    state.phase = "accepted";
    state.divergence = null;
    say("Accepted.");
  } else say(out.notice);
  render();
}

/** The UTF-16 offset in the reply's text of a click, from the caret the browser puts there. */
function clickOffset(e) {
  let node;
  let offset;
  if (document.caretPositionFromPoint) {
    const p = document.caretPositionFromPoint(e.clientX, e.clientY);
    if (!p) return null;
    node = p.offsetNode;
    offset = p.offset;
  } else {
    const r = document.caretRangeFromPoint(e.clientX, e.clientY);
    if (!r) return null;
    node = r.startContainer;
    offset = r.startOffset;
  }
  if (!replyEl.contains(node)) return null;
  const range = document.createRange();
  range.setStart(replyEl, 0);
  range.setEnd(node, offset);
  return range.toString().length;
}

/** The token boundary at or before `offset` (the end of the text is one too). */
function snap(offset) {
  if (offset >= state.text.length) return state.text.length; // after the end: continue from there, nothing rejected
  let best = 0;
  for (const b of state.boundaries) if (b <= offset && b > best) best = b;
  return best;
}

function onReplyClick(e) {
  if (!(state.phase === "stopped" || state.phase === "done") || state.text === "") return;
  const offset = clickOffset(e);
  if (offset === null) return;
  state.divergence = snap(offset);
  replyEl.dataset.divergence = String(state.divergence);
  render();
  hintEl.textContent = "The struck-through part is rejected. Type what it should say from there in Correction, then Resume.";
  $("correction").focus();
}

function renderTimeline(steers) {
  const list = $("timeline");
  list.replaceChildren(
    ...steers.map((s) => {
      const li = document.createElement("li");
      const n = document.createElement("strong");
      n.textContent = `#${s.ordinal + 1} `;
      const rej = document.createElement("s");
      rej.textContent = s.rejected || "(nothing)";
      const arrow = document.createTextNode(" → ");
      const cho = document.createElement("ins");
      cho.textContent = s.chosen;
      const meta = document.createElement("small");
      meta.textContent = ` ${s.trust}${s.trained ? ", trained" : ""} `;
      li.append(n, rej, arrow, cho, meta);
      if (s.removable) {
        const btn = document.createElement("button");
        btn.type = "button";
        btn.textContent = "Remove";
        btn.setAttribute("aria-label", `Remove steer ${s.ordinal + 1}`);
        btn.addEventListener("click", () => removeSteer(s.id));
        li.append(btn);
      }
      return li;
    }),
  );
}

async function removeSteer(id) {
  const out = await api(`/api/steers/${id}`, { method: "DELETE" });
  if (state.messageId) {
    const st = await api(`/api/reply/${encodeURIComponent(state.messageId)}`);
    renderTimeline(st.steers ?? []);
  }
  say(out.notice); // last: once the page says "removed", the timeline already shows it
}

// --- settings, conversations ------------------------------------------------------------

let defaults = { systemPrompt: "", temperature: 0.7, maxTokens: 512 };

function settingsKey(id) {
  return `steerbot.settings.${id}`;
}

function loadSettings() {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(settingsKey(state.conversation)) ?? "{}");
  } catch {
    saved = {};
  }
  const s = { ...defaults, ...saved };
  $("system-prompt").value = s.systemPrompt;
  $("temperature").value = String(s.temperature);
  $("max-tokens").value = String(s.maxTokens);
}

function readSettings() {
  const s = {
    systemPrompt: $("system-prompt").value,
    temperature: Number($("temperature").value),
    maxTokens: Number($("max-tokens").value),
  };
  localStorage.setItem(settingsKey(state.conversation), JSON.stringify(s));
  return s;
}

function resetReply() {
  Object.assign(state, { text: "", messageId: null, phase: "idle", boundaries: [], divergence: null, stopping: false });
  renderTimeline([]);
  hintEl.textContent = "";
  say("");
  render();
}

function newConversation() {
  state.conversation = newId();
  $("transcript").replaceChildren();
  resetReply();
  loadSettings();
}

async function openConversation(id) {
  const out = await api(`/api/conversations/${encodeURIComponent(id)}`);
  if (!out.messages) return say(out.notice);
  state.conversation = id;
  resetReply();
  const msgs = out.messages;
  const openReply = out.open && (out.open.state === "stopped" || out.open.state === "done") ? await api(`/api/reply/${encodeURIComponent(out.open.messageId)}`) : null;
  const live = openReply?.reply;
  $("transcript").replaceChildren();
  msgs.forEach((m, i) => {
    if (live && i === msgs.length - 1 && m.role === "assistant") return; // shown as the reply
    addTurn(m.role, m.content);
  });
  if (live) {
    Object.assign(state, { text: live.text, messageId: live.messageId, phase: live.state, boundaries: live.boundaries });
    renderTimeline(openReply.steers);
  }
  loadSettings();
  render();
}

async function loadHistory() {
  const out = await api("/api/conversations");
  const list = $("history");
  list.replaceChildren(
    ...(out.conversations ?? []).map((c) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = c.title || "(empty conversation)";
      b.title = new Date(c.createdAt).toLocaleString();
      if (c.id === state.conversation) b.setAttribute("aria-current", "true");
      b.addEventListener("click", () => openConversation(c.id));
      li.append(b);
      return li;
    }),
  );
}

// --- wiring -------------------------------------------------------------------------------

$("ask-form").addEventListener("submit", send);
$("correct-form").addEventListener("submit", resume);
$("message").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    $("ask-form").requestSubmit();
  }
});
stopBtn.addEventListener("click", stop);
acceptBtn.addEventListener("click", accept);
replyEl.addEventListener("click", onReplyClick);
$("new-conversation").addEventListener("click", newConversation);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && state.phase === "generating") {
    e.preventDefault();
    void stop();
  }
});

const s = await session();
defaults = s.defaults ?? defaults;
loadSettings();
render();
await renderNav();
await loadHistory();
document.body.dataset.ready = "true";
