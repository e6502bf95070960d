import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { bindPoolToCalls, outsideCall, runInCall } from "../../src/platform/database/call-scope.ts";
import { createTestDatabase } from "../support/harness.ts";

/** The pool binding on its own: a call's end stops its database work, and only its own. */
describe("database work bound to its call", () => {
  let db: { url: string; drop: () => Promise<void> };
  let pool: pg.Pool;
  before(async () => {
    db = await createTestDatabase();
    pool = new pg.Pool({ connectionString: db.url, max: 4, application_name: "call-scope-test" });
    pool.on("error", () => {});
    bindPoolToCalls(pool);
    await pool.query("create table notes (id int primary key)");
  });
  after(async () => {
    await pool.end();
    await db.drop();
  });

  const code = (promise: Promise<unknown>) => promise.then(() => "ok", (e: { code?: string }) => e.code ?? String(e));

  test("a call that has ended starts no query; work outside any call is untouched", async () => {
    const ended = AbortSignal.abort();
    assert.equal(await code(runInCall(ended, () => pool.query("select 1"))), "57014");
    assert.equal(await code(pool.query("select 1")), "ok");
    assert.equal(await code(runInCall(ended, () => outsideCall(() => pool.query("select 1")))), "ok", "shared work opts out");
  });

  test("the query a call is running when it ends is cancelled in PostgreSQL", async () => {
    const call = new AbortController();
    const running = runInCall(call.signal, () => pool.query("select pg_sleep(60)"));
    const result = code(running);
    // Wait until PostgreSQL is really running it, then end the call.
    for (let i = 0; i < 100; i++) {
      const { rows } = await pool.query("select 1 from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'");
      if (rows.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    call.abort();
    assert.equal(await result, "57014", "cancelled long before its 60 s");
    // The backend sends the cancellation's error before it marks itself idle: allow it a moment.
    let rows: unknown[] = [];
    for (let i = 0; i < 100; i++) {
      ({ rows } = await pool.query("select 1 from pg_stat_activity where query = 'select pg_sleep(60)' and state = 'active'"));
      if (rows.length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.deepEqual(rows, [], "PostgreSQL no longer runs it");
  });

  test("a transaction whose call ends between statements runs nothing more but its ROLLBACK", async () => {
    const call = new AbortController();
    const outcome = await runInCall(call.signal, async () => {
      const client = await pool.connect();
      try {
        await client.query("begin");
        await client.query("insert into notes values (1)");
        call.abort();
        const next = await code(client.query("insert into notes values (2)"));
        const commit = await code(client.query("commit"));
        const rollback = await code(client.query("rollback"));
        return { next, commit, rollback };
      } finally {
        client.release();
      }
    });
    assert.deepEqual(outcome, { next: "57014", commit: "57014", rollback: "ok" });
    assert.deepEqual((await pool.query("select id from notes")).rows, [], "nothing was committed");
  });

  test("a connection a call is still waiting for when it ends is given back to the pool", async () => {
    const held = await Promise.all(Array.from({ length: 4 }, () => pool.connect()));
    const call = new AbortController();
    const waiting = code(runInCall(call.signal, () => pool.query("select 1")));
    call.abort();
    assert.equal(await waiting, "57014");
    for (const client of held) client.release();
    assert.equal(await code(pool.query("select 1")), "ok");
    assert.equal(pool.waitingCount, 0);
  });
});
