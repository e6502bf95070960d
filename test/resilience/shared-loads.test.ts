import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { runInCall } from "../../src/platform/database/call-scope.ts";
import { systemClock } from "../../src/platform/clock.ts";
import { createSigningKeys } from "../../src/signing-keys/signing-keys.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";

describe("a load shared by many calls is not cut short when the call that started it ends", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test("signing keys: the first caller gives up at once, the next ones still get the keys", async () => {
    const keys = createSigningKeys({
      db: () => server.gatehouse.orm.em.getConnection().getClient(),
      config: { signingAlg: "EdDSA", accessTokenTtlMs: 15 * 60_000, signingKeySecret: undefined },
      clock: systemClock,
    });
    const impatient = new AbortController();
    const first = runInCall(impatient.signal, () => keys.active());
    impatient.abort();
    const second = runInCall(new AbortController().signal, () => keys.active());
    const [a, b] = await Promise.allSettled([first, second]);
    assert.equal(b.status, "fulfilled", `the waiting call got the key: ${b.status === "rejected" ? String(b.reason) : ""}`);
    assert.equal(a.status, "fulfilled", "the load it started ran to the end");
  });
});
