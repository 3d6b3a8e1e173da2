// The studio's browser side, shared by every page: the session (who, admin or not, the CSRF
// token) and `api()`, which sends JSON with the CSRF header and reads the JSON answer.
// No page ever puts text from the server into innerHTML: textContent only.

let current;

/** The session: { csrfToken, loginRequired, user, admin, defaults } (fetched once per page). */
export async function session() {
  current ??= fetch("/api/session", { credentials: "same-origin" }).then((r) => r.json());
  return current;
}

/** A JSON request; answers the parsed body (also for errors: { ok: false, notice }). */
export async function api(path, { method = "GET", body } = {}) {
  const s = await session();
  const headers = { "x-csrf-token": s.csrfToken };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  if (res.status === 401 && s.loginRequired && path !== "/api/login") location.assign("/login.html");
  let data;
  try {
    data = await res.json();
  } catch {
    data = { ok: false, notice: `The server answered ${res.status}.` };
  }
  return data;
}

/**
 * A streaming request (ask, resume): POSTs JSON and calls onEvent for each server-sent event
 * until the stream ends. Resolves with the last ("end") event.
 */
export async function stream(path, body, onEvent, signal) {
  const s = await session();
  const aborted = { type: "end", ok: true, aborted: true, reply: null, steers: [] };
  let res;
  try {
    res = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json", "x-csrf-token": s.csrfToken },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (e) {
    if (signal?.aborted) return aborted;
    throw e;
  }
  if (!res.ok || !(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
    let data;
    try {
      data = await res.json();
    } catch {
      data = {};
    }
    const end = { type: "end", ok: false, notice: data.notice ?? `The server answered ${res.status}.`, reply: null, steers: [] };
    onEvent(end);
    return end;
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let last;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      // the page ended this stream itself (a stop answered with the reply's end): not an error
      if (signal?.aborted) return aborted;
      throw e;
    }
    const { value, done } = chunk;
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = chunk
        .split("\n")
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n");
      if (!data) continue;
      last = JSON.parse(data);
      onEvent(last);
    }
  }
  return last ?? { type: "end", ok: false, notice: "The stream ended early.", reply: null, steers: [] };
}
