import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import pg from "pg";
import { runInCall } from "../../src/platform/database/call-scope.ts";
import { openStatementPipeline, type StatementPipeline } from "../../src/platform/database/statement-pipeline.ts";
import { isDatabaseUnavailable } from "../../src/platform/errors/database-errors.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { createTestDatabase } from "../support/harness.ts";

const pidOf = async (db: StatementPipeline["db"]) => (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)).rows[0]!.pid;

describe("the statement pipeline: single statements, one connection", () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let admin: pg.Client;
  let pipeline: StatementPipeline;

  before(async () => {
    database = await createTestDatabase();
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    await admin.query("create table counters (id int primary key, value int not null)");
    await admin.query("insert into counters values (1, 0)");
    pipeline = openStatementPipeline({ connectionString: database.url, statementTimeoutMs: 10_000, lockTimeoutMs: 300, logger: createLogger("silent") });
  });
  after(async () => {
    await pipeline.close();
    await admin.end();
    await database.drop();
  });

  test("statements sent together run on one backend, and each gets its own answer", async () => {
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => sql<{ pid: number; n: number }>`select pg_backend_pid() as pid, ${i}::int as n`.execute(pipeline.db)),
    );
    assert.deepEqual(
      answers.map((answer) => answer.rows[0]!.n),
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.equal(new Set(answers.map((answer) => answer.rows[0]!.pid)).size, 1);
  });

  test("a statement that fails fails alone: the ones before and after it are answered", async () => {
    const [before, failed, later] = await Promise.allSettled([
      sql<{ n: number }>`select 1 as n`.execute(pipeline.db),
      sql`select 1 / ${0}::int`.execute(pipeline.db),
      sql<{ n: number }>`select 3 as n`.execute(pipeline.db),
    ]);
    assert.equal(before.status === "fulfilled" && before.value.rows[0]!.n, 1);
    assert.equal(failed.status === "rejected" && (failed.reason as { code?: string }).code, "22012");
    assert.equal(later.status === "fulfilled" && later.value.rows[0]!.n, 3);
  });

  test("a statement waiting for a locked row gives up after the lock timeout, and the ones behind it go on", async () => {
    await admin.query("begin");
    await admin.query("select * from counters where id = 1 for update");
    try {
      const started = Date.now();
      const [blocked, behind] = await Promise.allSettled([
        sql`update counters set value = value + 1 where id = 1`.execute(pipeline.db),
        sql<{ n: number }>`select 42 as n`.execute(pipeline.db),
      ]);
      assert.equal(blocked.status === "rejected" && (blocked.reason as { code?: string }).code, "55P03");
      assert.ok(isDatabaseUnavailable(blocked.status === "rejected" && blocked.reason), "a lock timeout answers as the database being unavailable, a retryable error");
      assert.equal(behind.status === "fulfilled" && behind.value.rows[0]!.n, 42);
      assert.ok(Date.now() - started < 5_000, "held up for the lock timeout, not for the lock holder's transaction");
    } finally {
      await admin.query("rollback");
    }
    const { rows } = await admin.query("select value from counters where id = 1");
    assert.equal(rows[0].value, 0, "the update that gave up changed nothing");
  });

  test("when its connection is cut, the statement in flight fails and the next one opens a new connection", async () => {
    const first = await pidOf(pipeline.db);
    // Its failure is caught at once: it may arrive before the terminating statement's answer.
    const inFlight = sql`select pg_sleep(5)`.execute(pipeline.db).then(
      () => undefined,
      (error: unknown) => error,
    );
    // Wait until the sleep is running on that backend, then end the backend.
    for (let i = 0; ; i++) {
      const { rows } = await admin.query("select state from pg_stat_activity where pid = $1", [first]);
      if (rows[0]?.state === "active") break;
      assert.ok(i < 100, "the statement never started");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await admin.query("select pg_terminate_backend($1)", [first]);
    const failure = await inFlight;
    assert.ok(isDatabaseUnavailable(failure), `the statement in flight fails as "database unavailable": ${String(failure)}`);
    const second = await pidOf(pipeline.db);
    assert.notEqual(second, first);
  });

  test("counts the statements in flight, failed ones included, and none once all are answered", async () => {
    assert.equal(pipeline.inFlight, 0);
    const answers = Promise.allSettled([
      sql`select pg_sleep(0.2)`.execute(pipeline.db),
      sql`select 1 / ${0}::int`.execute(pipeline.db),
      sql`select 3`.execute(pipeline.db),
    ]);
    for (let i = 0; pipeline.inFlight < 3; i++) {
      assert.ok(i < 100, `only ${pipeline.inFlight} of the 3 statements were counted as sent`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const settled = await answers;
    assert.deepEqual(settled.map((answer) => answer.status), ["fulfilled", "rejected", "fulfilled"]);
    assert.equal(pipeline.inFlight, 0);
    await pipeline.db.transaction().execute(async (tx) => sql`select 1`.execute(tx)).catch(() => {});
    assert.equal(pipeline.inFlight, 0, "refused transaction control is never sent, so never counted");
  });

  test("transactions are refused, and the connection still serves single statements", async () => {
    await assert.rejects(
      pipeline.db.transaction().execute(async (tx) => sql`select 1`.execute(tx)),
      /the statement pipeline runs single statements; transactions belong on the pool/,
    );
    assert.equal(typeof (await pidOf(pipeline.db)), "number");
  });

  test("work of a call that has already ended is not sent", async () => {
    const ended = new AbortController();
    ended.abort();
    await assert.rejects(
      runInCall(ended.signal, () => sql`update counters set value = value + 1 where id = 1`.execute(pipeline.db)),
      (error: unknown) => (error as { code?: string }).code === "57014",
    );
    const { rows } = await admin.query("select value from counters where id = 1");
    assert.equal(rows[0].value, 0);
  });

  test("close() ends its connection, and later statements are refused", async () => {
    const own = openStatementPipeline({ connectionString: database.url, statementTimeoutMs: 10_000, logger: createLogger("silent") });
    const pid = await pidOf(own.db);
    await own.close();
    await assert.rejects(pidOf(own.db), /the statement pipeline is closed/);
    for (let i = 0; ; i++) {
      const { rows } = await admin.query("select 1 from pg_stat_activity where pid = $1", [pid]);
      if (rows.length === 0) break;
      assert.ok(i < 100, "the backend is still there");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
});
