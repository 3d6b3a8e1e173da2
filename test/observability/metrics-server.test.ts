/**
 * Who may read `/metrics`, on the listener of its own and on the studio (a real app behind
 * the real web server): open on loopback without a token; with STEERBOT_METRICS_TOKEN only
 * with `Authorization: Bearer <it>` (the studio's own token is no metrics token); a listener
 * off loopback without a token never starts; a studio with a login and no metrics token
 * refuses /metrics; a scrape needs no session and gets no cookie.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { Metrics } from "../../src/observability/metrics.ts";
import { MetricsConfigError, startMetricsServer, type MetricsServer } from "../../src/observability/metrics-server.ts";
import { startWebServer } from "../../src/platforms/web/web-server.ts";
import { createTestApp, type TestApp } from "../helpers/app.ts";
import { parsePrometheusText, sampleValue } from "../helpers/prometheus-text.ts";

const TOKEN = "metrics-token-0123456789abcdef";
const WEB_TOKEN = "web-token-0123456789abcdef";
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe("the metrics listener", () => {
  const metrics = new Metrics({ instanceId: "listener-test", role: "worker", processMetrics: false });
  const servers: MetricsServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it("on loopback without a token: GET /metrics is the exposition; other paths 404, other methods 405", async () => {
    const s = await startMetricsServer({ metrics, host: "127.0.0.1", port: 0 });
    servers.push(s);
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const res = await fetch(s.url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const m = parsePrometheusText(await res.text());
    assert.equal(sampleValue(m, "steerbot_info", { instance_id: "listener-test", role: "worker", version: "0.1.0" }), 1);
    assert.equal((await fetch(s.url.replace("/metrics", "/"))).status, 404);
    assert.equal((await fetch(s.url, { method: "POST" })).status, 405);
  });

  it("with STEERBOT_METRICS_TOKEN: only the right bearer token reads it", async () => {
    const s = await startMetricsServer({ metrics, host: "127.0.0.1", port: 0, token: TOKEN });
    servers.push(s);
    const none = await fetch(s.url);
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    assert.equal((await fetch(s.url, { headers: bearer("wrong") })).status, 401);
    assert.equal((await fetch(s.url, { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}` } })).status, 401);
    const ok = await fetch(s.url, { headers: bearer(TOKEN) });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /^# HELP steerbot_/m);
  });

  it("off loopback: refused without a token, before it listens; serves with one", async () => {
    await assert.rejects(startMetricsServer({ metrics, host: "0.0.0.0", port: 0 }), (e: unknown) => e instanceof MetricsConfigError && /STEERBOT_METRICS_TOKEN is not set/.test(e.message));
    const s = await startMetricsServer({ metrics, host: "0.0.0.0", port: 0, token: TOKEN });
    servers.push(s);
    assert.equal((await fetch(s.url)).status, 401);
    assert.equal((await fetch(s.url, { headers: bearer(TOKEN) })).status, 200);
  });

  it("a port already taken is a clear error", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await assert.rejects(startMetricsServer({ metrics, host: "127.0.0.1", port }), (e: unknown) => e instanceof MetricsConfigError && new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}`).test(e.message));
    } finally {
      blocker.close();
    }
  });
});

describe("the studio's /metrics", () => {
  let app: TestApp;
  before(async () => {
    app = await createTestApp({ db: "pglite" });
  });
  after(async () => app?.close());

  const studio = (o: { host?: string; token?: string; metricsToken?: string }) =>
    startWebServer({ core: app.core, store: app.store, config: app.config, log: app.log, host: o.host ?? "127.0.0.1", port: 0, token: o.token, metrics: app.metrics, metricsToken: o.metricsToken });

  it("a loopback studio serves it to anyone on this machine, with no session and no cookie", async () => {
    const s = await studio({});
    try {
      const res = await fetch(`${s.url}metrics`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      assert.deepEqual(res.headers.getSetCookie(), [], "a scrape opens no session");
      const m = parsePrometheusText(await res.text());
      assert.equal(sampleValue(m, "steerbot_info", { instance_id: app.store.instanceId, role: "bot", version: "0.1.0" }), 1);
    } finally {
      await s.close();
    }
  });

  it("a studio with a login refuses it until STEERBOT_METRICS_TOKEN is set, and then wants that token, not the studio's", async () => {
    const locked = await studio({ host: "0.0.0.0", token: WEB_TOKEN });
    try {
      const res = await fetch(`${locked.url}metrics`);
      assert.equal(res.status, 403);
      assert.match(await res.text(), /set STEERBOT_METRICS_TOKEN/);
      assert.equal((await fetch(`${locked.url}metrics`, { headers: bearer(WEB_TOKEN) })).status, 403, "the studio's token is no metrics token");
      assert.equal((await fetch(`${locked.url}api/conversations`)).status, 401, "the rest still needs the login");
    } finally {
      await locked.close();
    }
    const open = await studio({ host: "0.0.0.0", token: WEB_TOKEN, metricsToken: TOKEN });
    try {
      assert.equal((await fetch(`${open.url}metrics`)).status, 401);
      assert.equal((await fetch(`${open.url}metrics`, { headers: bearer(WEB_TOKEN) })).status, 401);
      const ok = await fetch(`${open.url}metrics`, { headers: bearer(TOKEN) });
      assert.equal(ok.status, 200);
      parsePrometheusText(await ok.text());
    } finally {
      await open.close();
    }
  });

  it("a loopback studio with STEERBOT_METRICS_TOKEN wants the bearer token too", async () => {
    const s = await studio({ metricsToken: TOKEN });
    try {
      assert.equal((await fetch(`${s.url}metrics`)).status, 401);
      assert.equal((await fetch(`${s.url}metrics`, { headers: bearer(TOKEN) })).status, 200);
    } finally {
      await s.close();
    }
  });
});
