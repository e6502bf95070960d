import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startTestServer, type TestServer } from "../support/harness.ts";

describe("database faults", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test("connections killed under the pool do not crash the process, and it recovers on its own", async () => {
    // Warm the pool so it holds idle connections.
    await Promise.all(Array.from({ length: 5 }, () => fetch(`${server.baseUrl}/readyz`)));
    const [{ datname }] = (await server.sql<{ datname: string }>("select current_database() as datname")) as [{ datname: string }];
    const killed = await server.sql<{ terminated: boolean }>(
      "select pg_terminate_backend(pid) as terminated from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and application_name = 'gatehouse'",
      [datname],
    );
    assert.ok(killed.length > 0, "the server had pooled connections to kill");
    // Give the pool's idle clients time to notice; an unhandled 'error' event would end the process here.
    await sleep(300);
    const health = await fetch(`${server.baseUrl}/healthz`);
    assert.equal(health.status, 200);
    let ready = 0;
    for (let attempt = 0; attempt < 20 && ready !== 200; attempt++) {
      ready = (await fetch(`${server.baseUrl}/readyz`)).status;
      if (ready !== 200) await sleep(100);
    }
    assert.equal(ready, 200, "readiness comes back without a restart");
  });
});
