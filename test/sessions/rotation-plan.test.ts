import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { CompiledQuery, type Kysely } from "kysely";
import { hashRefreshToken, newRefreshToken } from "../../src/sessions/refresh-token.ts";
import { rotateRefreshToken } from "../../src/sessions/session-store.ts";
import { sqlExecutor } from "../../src/users/transaction.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { registerUser } from "../auth/support.ts";
import { describePlan, parsePlan, planNodes, type PlanNode } from "../support/query-plan.ts";

/** Rotations of the chain under test, and sessions of one token each beside it (what sign-ins leave). */
const CHAIN = 300;
const OTHER_SESSIONS = 2_000;

/**
 * A handle on the server's pool that, instead of running a compiled statement (which goes to
 * `executeQuery`, see compiled-statement.ts), explains it with the same text and parameters,
 * twice: as planned for those values (what a prepared statement runs for its first executions),
 * and as the generic plan PostgreSQL may cache for it later (PREPARE, then EXPLAIN EXECUTE under
 * `plan_cache_mode = force_generic_plan`). Both run inside a transaction that is rolled back, so
 * nothing changes. The statement under test is exactly the one the server sends.
 */
function explaining(db: Kysely<any>): { db: Kysely<any>; plans: { mode: string; plan: PlanNode }[] } {
  const plans: { mode: string; plan: PlanNode }[] = [];
  const rollback = new Error("rollback");
  const explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)";
  const proxy = Object.create(db) as Kysely<any>;
  Object.defineProperty(proxy, "executeQuery", {
    value: async (query: CompiledQuery) => {
      const parameters = [...query.parameters];
      // EXPLAIN EXECUTE takes no bind parameters: the values go in as literals.
      const literals = parameters.map(literal).join(", ");
      await db
        .transaction()
        .execute(async (tx) => {
          const run = async (mode: string, text: string, values: unknown[] = parameters) => {
            const { rows } = await tx.executeQuery<{ "QUERY PLAN": unknown }>(CompiledQuery.raw(text, values));
            plans.push({ mode, plan: parsePlan(rows[0]!["QUERY PLAN"]) });
          };
          // Each explained run really rotates; the savepoint undoes the first, so the second rotates the same token.
          await tx.executeQuery(CompiledQuery.raw("savepoint before_rotation"));
          await run("custom", `${explain} ${query.sql}`);
          await tx.executeQuery(CompiledQuery.raw("rollback to savepoint before_rotation"));
          await tx.executeQuery(CompiledQuery.raw("set local plan_cache_mode = force_generic_plan"));
          await tx.executeQuery(CompiledQuery.raw(`prepare rotation_plan_test as ${query.sql}`));
          await run("generic", `${explain} execute rotation_plan_test(${literals})`, []);
          await tx.executeQuery(CompiledQuery.raw("deallocate rotation_plan_test"));
          throw rollback;
        })
        .catch((error: unknown) => {
          if (error !== rollback) throw error;
        });
      return { rows: [] };
    },
  });
  return { db: proxy, plans };
}

/** A bound value as an SQL literal of unknown type (PostgreSQL gives it the parameter's type). */
function literal(value: unknown): string {
  if (value === null || value === undefined) return "null";
  const text = Buffer.isBuffer(value) ? `\\x${value.toString("hex")}` : String(value);
  return `'${text.replaceAll("'", "''")}'`;
}

describe("Refresh: the rotation finds the token by its hash, however long the session's chain", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test(`after ${CHAIN} rotations, beside ${OTHER_SESSIONS.toLocaleString("en")} one-token sessions, no step walks the chain`, async (t) => {
    const auth = server.auth();
    const alice = await registerUser(auth);
    let refreshToken = alice.tokens.refreshToken;
    for (let step = 0; step < CHAIN; step++) refreshToken = (await auth.refresh({ refreshToken })).tokens!.refreshToken;

    // What the planner then sees in refresh_tokens: session_id almost unique, as after many
    // sign-ins. Reaching the token through its session's index would then cost as little as
    // through its hash by the statistics, and filter the whole chain by hash on every refresh.
    await server.sql(
      `with made as (
         insert into sessions (user_id, create_time, last_use_time, expire_time, user_agent, ip_address)
         select $1, now(), now(), now() + interval '1 day', 'plan test', '127.0.0.1' from generate_series(1, $2::int)
         returning id)
       insert into refresh_tokens (token_hash, session_id, create_time) select sha256(id::text::bytea), id, now() from made`,
      [alice.user.id, OTHER_SESSIONS],
    );
    await server.sql("analyze sessions, refresh_tokens, users");

    const { db, plans } = explaining(sqlExecutor(server.gatehouse.orm.em.fork()) as Kysely<any>);
    const lifetimes = { sessionTtlMs: 86_400_000, sessionIdleTtlMs: 86_400_000 };
    await rotateRefreshToken(db, {
      tokenHash: hashRefreshToken(refreshToken)!,
      successorHash: newRefreshToken().hash,
      now: new Date(),
      lifetimes,
      client: { userAgent: "plan test", ipAddress: "127.0.0.1" },
    });
    assert.deepEqual(
      plans.map((p) => p.mode),
      ["custom", "generic"],
    );
    for (const { mode, plan } of plans) {
      const text = `${mode} plan:\n${describePlan(plan)}`;
      const tokenScans = planNodes(plan).filter((n) => n["Relation Name"] === "refresh_tokens" && n["Node Type"].includes("Scan"));
      assert.ok(tokenScans.length > 0, `the plan reads refresh_tokens:\n${text}`);
      for (const scan of tokenScans) assert.equal(scan["Index Name"], "refresh_tokens_pkey", `refresh_tokens is read by the token's hash:\n${text}`);
      const discarding = planNodes(plan).filter((n) => (n["Rows Removed by Filter"] ?? 0) > 1);
      assert.deepEqual(discarding, [], `no step reads rows only to discard them:\n${text}`);
    }
    for (const { mode, plan } of plans) t.diagnostic(`the rotation's ${mode} plan:\n${describePlan(plan)}\nshared buffers hit: ${plan["Shared Hit Blocks"]}`);
  });
});
