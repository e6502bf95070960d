import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { rotationCeiling } from "../../bench/ceilings/rotation-ceiling.ts";
import { registerUser } from "../auth/support.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";

let server: TestServer;
before(async () => {
  server = await startTestServer();
});
after(() => server.stop());

test("the benchmark's rotation ceiling really rotates: one durable successor per call, on sessions of its own", async () => {
  const user = await registerUser(server.auth());
  const tokensBefore = Number((await server.sql<{ n: string }>("select count(*) as n from refresh_tokens"))[0]!.n);
  const ceiling = await rotationCeiling(server.databaseUrl);
  try {
    const sessions = await server.sql<{ id: string }>("select id from sessions where user_id = $1 and user_agent = 'gatehouse-bench'", [user.user.id]);
    assert.equal(sessions.length, 64, "every chain on the only user in the database");

    // Concurrent calls take different chains; each rotation leaves one rotated token and one successor.
    await Promise.all(Array.from({ length: 8 }, () => ceiling.rotate()));
    await ceiling.rotate();
    const [counts] = await server.sql<{ total: string; live: string; chains: string }>(
      `select count(*) as total, count(*) filter (where rotate_time is null) as live, count(distinct session_id) as chains
       from refresh_tokens where session_id = any($1::uuid[])`,
      [sessions.map((s) => s.id)],
    );
    assert.equal(Number(counts!.chains), 64);
    assert.equal(Number(counts!.total), 64 + 9, "a first token per chain and nine successors");
    assert.equal(Number(counts!.live), 64, "exactly one token of each chain still works");
    const tokensAfter = Number((await server.sql<{ n: string }>("select count(*) as n from refresh_tokens"))[0]!.n);
    assert.equal(tokensAfter - tokensBefore, 64 + 9);

    // The user's own session is untouched: the ceiling rotates only what it started.
    await server.auth().refresh({ refreshToken: user.tokens.refreshToken });
  } finally {
    await ceiling.close();
  }
});

test("the rotation ceiling stops loudly when a rotation does not happen (a disabled user), rather than measuring nothing", async () => {
  await registerUser(server.auth());
  await server.sql("update users set disabled = true");
  const ceiling = await rotationCeiling(server.databaseUrl);
  try {
    await assert.rejects(ceiling.rotate(), /did not rotate/);
  } finally {
    await ceiling.close();
    await server.sql("update users set disabled = false");
  }
});
