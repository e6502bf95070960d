import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createClient } from "@connectrpc/connect";
import { Health } from "../../src/platform/grpc/grpc-health.ts";
import { createMetrics } from "../../src/platform/observability/metrics.ts";
import { postJson, startTestServer, type TestServer } from "../support/harness.ts";
import { parsePrometheusText, sampleValue, type MetricFamily } from "./prometheus-text.ts";

const REGISTER = "gatehouse.auth.v1.AuthService/Register";

async function scrape(server: TestServer): Promise<Map<string, MetricFamily>> {
  const res = await fetch(`${server.baseUrl}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(await res.text());
}

describe("GET /metrics", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test("serves well-formed Prometheus text with process, pool and call metrics", async () => {
    const families = await scrape(server);
    for (const [name, type] of [
      ["gatehouse_rpc_calls_total", "counter"],
      ["gatehouse_rpc_duration_seconds", "histogram"],
      ["gatehouse_sign_ins_total", "counter"],
      ["gatehouse_refresh_token_reuse_total", "counter"],
      ["gatehouse_db_pool_connections", "gauge"],
      ["gatehouse_db_pool_waiting_requests", "gauge"],
      ["gatehouse_db_pipeline_statements_in_flight", "gauge"],
      ["gatehouse_password_hash_queue_depth", "gauge"],
      ["process_cpu_user_seconds_total", "counter"],
      ["nodejs_heap_size_used_bytes", "gauge"],
    ] as const) {
      assert.equal(families.get(name.replace(/_total$/, ""))?.type ?? families.get(name)?.type, type, name);
    }
    assert.ok((sampleValue(families, "gatehouse_db_pool_connections", { state: "idle" }) ?? -1) >= 0);
    assert.equal(sampleValue(families, "gatehouse_db_pipeline_statements_in_flight"), 0, "nothing is in flight between calls");
  });

  test("counts each call by procedure and code, over every protocol, and times it", async () => {
    const before = await scrape(server);
    const invalid = { username: "x", email: "nope", password: "short" };
    const res = await postJson(server.baseUrl, `/${REGISTER}`, invalid);
    assert.equal(res.status, 400);
    await server.auth("grpc").register(invalid).catch(() => {});
    await server.auth("grpc-web").register(invalid).catch(() => {});
    await createClient(Health, server.transport("grpc")).check({ service: "" });
    const after = await scrape(server);

    const delta = (name: string, labels: Record<string, string>) =>
      (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
    assert.equal(delta("gatehouse_rpc_calls_total", { procedure: REGISTER, code: "invalid_argument" }), 3);
    assert.equal(delta("gatehouse_rpc_duration_seconds_count", { procedure: REGISTER }), 3);
    assert.equal(
      sampleValue(after, "gatehouse_rpc_duration_seconds_bucket", { procedure: REGISTER, le: "+Inf" }),
      sampleValue(after, "gatehouse_rpc_duration_seconds_count", { procedure: REGISTER }),
    );
    assert.equal(delta("gatehouse_rpc_calls_total", { procedure: "grpc.health.v1.Health/Check", code: "ok" }), 1);
  });

  test("a streaming call is counted when its stream ends", async () => {
    const before = await scrape(server);
    const watching = new AbortController();
    for await (const update of createClient(Health, server.transport("grpc")).watch({ service: "" }, { signal: watching.signal })) {
      assert.ok(update.status > 0);
      break;
    }
    // Leaving the loop does not end a Connect client's call; aborting does.
    watching.abort();
    const procedure = "grpc.health.v1.Health/Watch";
    let after = await scrape(server);
    for (let i = 0; i < 50 && sampleValue(after, "gatehouse_rpc_calls_total", { procedure }) === sampleValue(before, "gatehouse_rpc_calls_total", { procedure }); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      after = await scrape(server);
    }
    assert.equal(
      (sampleValue(after, "gatehouse_rpc_calls_total", { procedure, code: "canceled" }) ?? 0) -
        (sampleValue(before, "gatehouse_rpc_calls_total", { procedure, code: "canceled" }) ?? 0),
      1,
    );
  });
});

describe("metrics registration points", () => {
  test("sign-in outcomes, refresh-token reuse, the hash queue depth and the pipeline's statements reach the exposition", async () => {
    const metrics = createMetrics();
    let depth = 0;
    let inFlight = 0;
    metrics.registerHashQueueGauge(() => depth);
    metrics.registerStatementPipeline(() => inFlight);
    metrics.signIn("success");
    metrics.signIn("success");
    metrics.signIn("invalid_credentials");
    metrics.refreshTokenReused();
    depth = 7;
    inFlight = 3;
    const families = parsePrometheusText(await metrics.registry.metrics());
    assert.equal(sampleValue(families, "gatehouse_sign_ins_total", { outcome: "success" }), 2);
    assert.equal(sampleValue(families, "gatehouse_sign_ins_total", { outcome: "invalid_credentials" }), 1);
    assert.equal(sampleValue(families, "gatehouse_refresh_token_reuse_total"), 1);
    assert.equal(sampleValue(families, "gatehouse_password_hash_queue_depth"), 7);
    assert.equal(sampleValue(families, "gatehouse_db_pipeline_statements_in_flight"), 3);
  });

  test("a pool that cannot be reached leaves its gauges out instead of failing the scrape", async () => {
    const metrics = createMetrics();
    metrics.registerDatabasePool(() => Promise.reject(new Error("database down")));
    const families = parsePrometheusText(await metrics.registry.metrics());
    assert.equal(sampleValue(families, "gatehouse_db_pool_connections", { state: "idle" }), undefined);
  });

  test("the parser refuses malformed exposition text", () => {
    assert.throws(() => parsePrometheusText("orphan_metric 1\n"), /without a # TYPE/);
    assert.throws(() => parsePrometheusText("# TYPE a counter\na_total{x=\"1} 1\n"), /malformed/);
    assert.throws(() => parsePrometheusText("# TYPE a gauge\na one\n"), /malformed sample|not a number/);
  });
});

describe("sign-in and refresh-reuse metrics from real calls", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ GATEHOUSE_REFRESH_REUSE_GRACE: "0s" });
  });
  after(() => server.stop());

  test("Login outcomes and a replayed refresh token are counted", async () => {
    const auth = server.auth("grpc");
    const { tokens } = await auth.register({ username: "meter", email: "meter@example.com", password: "a long enough passphrase" });
    const before = await scrape(server);
    await auth.login({ identifier: { case: "email", value: "meter@example.com" }, password: "a long enough passphrase" });
    await auth.login({ identifier: { case: "email", value: "meter@example.com" }, password: "not the passphrase" }).catch(() => {});
    await auth.login({ identifier: { case: "username", value: "nobody" }, password: "not the passphrase" }).catch(() => {});
    await auth.refresh({ refreshToken: tokens!.refreshToken });
    await auth.refresh({ refreshToken: tokens!.refreshToken }).catch(() => {});
    const after = await scrape(server);
    const delta = (name: string, labels: Record<string, string> = {}) =>
      (sampleValue(after, name, labels) ?? 0) - (sampleValue(before, name, labels) ?? 0);
    assert.equal(delta("gatehouse_sign_ins_total", { outcome: "success" }), 1);
    assert.equal(delta("gatehouse_sign_ins_total", { outcome: "invalid_credentials" }), 2);
    assert.equal(delta("gatehouse_refresh_token_reuse_total"), 1);
  });
});
