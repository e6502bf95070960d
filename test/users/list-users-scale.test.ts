import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import { seedUsers } from "../../src/cli/seed.ts";
import { createPageTokens } from "../../src/users/page-token.ts";
import { sqlExecutor, type Db } from "../../src/users/transaction.ts";
import { countUsers, userPageQuery, type UserCursor, type UserListFilter, type UserOrder } from "../../src/users/user-repository.ts";
import type { TestServer } from "../support/harness.ts";
import { describePlan, parsePlan, planNodes, type PlanNode } from "../support/query-plan.ts";
import { bearer, ROOT, signIn, startUsersServer } from "./support.ts";

/** Enough rows that a sequential scan would be the planner's choice if an index were missing. */
const SEEDED = 100_000;

/** EXPLAIN ANALYZE of exactly the statement ListUsers runs, with the same bound parameters. */
async function explain(db: Db, filter: UserListFilter, order: UserOrder, cursor: UserCursor | undefined): Promise<PlanNode> {
  const query = userPageQuery(filter, order, cursor, 20);
  const { rows } = await sql<{ "QUERY PLAN": unknown }>`EXPLAIN (ANALYZE, FORMAT JSON) ${query}`.execute(db);
  return parsePlan(rows[0]!["QUERY PLAN"]);
}

const NO_FILTER: UserListFilter = { query: "", role: "", disabled: undefined };

describe(`ListUsers at scale (${SEEDED.toLocaleString("en")} users): every page is an index range, not a scan`, () => {
  let server: TestServer;
  let db: Db;
  before(async () => {
    server = await startUsersServer();
    db = sqlExecutor(server.gatehouse.orm.em.fork());
  });
  after(() => server.stop());

  test("seed speed (reported, not asserted)", async (t) => {
    const started = performance.now();
    const inserted = await seedUsers(db, { count: SEEDED, prefix: "scale-", passwordHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA" });
    const seconds = (performance.now() - started) / 1000;
    assert.equal(inserted, SEEDED);
    t.diagnostic(`seeded ${inserted.toLocaleString("en")} users in ${seconds.toFixed(2)} s (${Math.round(inserted / seconds).toLocaleString("en")} users/s)`);
    // A few rare roles and disabled accounts, as in a real user base.
    await server.sql("update users set roles = '{user,driver}' where username like 'scale-%' and (substr(username, 7))::int % 997 = 0");
    await server.sql("update users set disabled = true where username like 'scale-%' and (substr(username, 7))::int % 211 = 0");
    // A finer sample makes the planner's estimate for a narrow prefix stable from run to run; with
    // the default, a sample that happens to overestimate it now and then picks an ordered scan.
    for (const column of ["username", "email", "first_name", "last_name"]) {
      await server.sql(`alter table users alter column ${column} set statistics 1000`);
    }
    await server.sql("vacuum (analyze) users");
  });

  const deepCursor = async (order: UserOrder, filter: string): Promise<UserCursor> => {
    const [row] = await server.sql<{ t: string; id: string; username: string }>(
      `select create_time::text as t, id, username from users u where ${filter} order by ${order === "username" ? "username" : "create_time, id"} offset (select count(*) * 9 / 10 from users u where ${filter}) limit 1`,
    );
    return order === "username" ? { order, username: row!.username } : { order, createTime: row!.t, id: row!.id };
  };

  const cases: { name: string; filter: UserListFilter; order: UserOrder; where: string; indexes: string[] }[] = [
    { name: "all users, by creation", filter: NO_FILTER, order: "create_time", where: "true", indexes: ["users_create_time_id_idx"] },
    { name: "all users, by username", filter: NO_FILTER, order: "username", where: "true", indexes: ["users_username_key", "users_username_pattern_idx"] },
    {
      name: "prefix query",
      filter: { ...NO_FILTER, query: "scale-4242" },
      order: "create_time",
      where: "username like 'scale-4242%'",
      indexes: ["users_username_pattern_idx", "users_email_pattern_idx", "users_first_name_pattern_idx", "users_last_name_pattern_idx"],
    },
    { name: "a rare role", filter: { ...NO_FILTER, role: "driver" }, order: "create_time", where: "roles @> '{driver}'", indexes: ["users_roles_idx", "users_create_time_id_idx"] },
    { name: "disabled users", filter: { ...NO_FILTER, disabled: true }, order: "create_time", where: "disabled", indexes: ["users_disabled_create_time_id_idx"] },
  ];

  for (const c of cases) {
    test(`${c.name}: the first and a deep page use ${c.indexes.join(" / ")}`, async (t) => {
      for (const [label, cursor] of [
        ["first page", undefined],
        ["page at 90%", await deepCursor(c.order, c.where)],
      ] as const) {
        const plan = await explain(db, c.filter, c.order, cursor);
        t.diagnostic(`${c.name}, ${label}:\n${describePlan(plan)}`);
        const all = planNodes(plan);
        assert.ok(!all.some((n) => n["Node Type"] === "Seq Scan"), `${label}: no sequential scan\n${describePlan(plan)}`);
        assert.ok(
          all.some((n) => n["Index Name"] !== undefined && c.indexes.includes(n["Index Name"])),
          `${label}: uses ${c.indexes.join(" or ")}\n${describePlan(plan)}`,
        );
      }
    });
  }

  test("total_size is exact up to 10,000 matches and an estimate above, at a bounded cost", async (t) => {
    const started = performance.now();
    const total = await countUsers(db, NO_FILTER);
    const ms = performance.now() - started;
    t.diagnostic(`total_size of ${SEEDED + 1} users: ${total} in ${ms.toFixed(1)} ms`);
    assert.ok(Math.abs(total - (SEEDED + 1)) / SEEDED < 0.1, `an estimate within 10%: ${total}`);
    assert.equal(await countUsers(db, { ...NO_FILTER, query: "scale-4242" }), 11, "exact for small results");
  });

  test("over the API, a deep page is as quick as the first (reported)", async (t) => {
    const root = await signIn(server, ROOT.username, ROOT.password);
    const users = server.users();
    // A token for the page at 90%, signed with the server's own key (walking there would take 900 calls).
    const scope = { order: "create_time", query: "", role: "", disabled: null };
    const deep = await createPageTokens().issue(db, "users", scope, await deepCursor("create_time", "true"));
    const time = async (pageToken: string) => {
      const started = performance.now();
      for (let i = 0; i < 20; i++) await users.listUsers({ pageSize: 100, pageToken }, bearer(root));
      return (performance.now() - started) / 20;
    };
    const page = await users.listUsers({ pageSize: 100, pageToken: deep }, bearer(root));
    assert.equal(page.users.length, 100);
    t.diagnostic(`ListUsers, page of 100 incl. total_size: first ${(await time("")).toFixed(1)} ms, page at 90% ${(await time(deep)).toFixed(1)} ms`);
  });
});
