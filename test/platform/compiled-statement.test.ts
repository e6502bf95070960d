import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import { compiledStatement, slots } from "../../src/platform/database/compiled-statement.ts";
import { PREPARED, PREPARED_MARK } from "../../src/platform/database/prepared-statements.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";

describe("compiled statements: a template compiled once, its slots bound on every call", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());
  const db = () => server.gatehouse.orm.em.getConnection().getClient();

  test("slots of several sets are bound by their own bindings; the template is built once", async () => {
    const outer = slots<{ label: string; at: Date }>();
    const inner = slots<{ n: number; label: string }>();
    let builds = 0;
    const statement = compiledStatement<{ outer_label: string; inner_label: string; doubled: number; at: Date }>(() => {
      builds++;
      return sql`select ${outer.$.label}::text as outer_label, ${inner.$.label}::text as inner_label,
        ${inner.$.n}::int * 2 as doubled, ${outer.$.at}::timestamptz as at`;
    });
    for (const [label, n] of [["first", 1], ["second", 21]] as const) {
      const at = new Date(Date.UTC(2031, 0, 2, 3, 4, 5, 678));
      const { rows } = await statement.execute(db(), outer.bind({ label: `outer ${label}`, at }), inner.bind({ n, label: `inner ${label}` }));
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.outer_label, `outer ${label}`);
      assert.equal(rows[0]!.inner_label, `inner ${label}`, "a slot name shared by two sets takes each set's own value");
      assert.equal(rows[0]!.doubled, 2 * n);
      assert.equal(new Date(rows[0]!.at).getTime(), at.getTime(), "a Date arrives as the same instant, to the millisecond");
    }
    assert.equal(builds, 1);
  });

  test("a marked compiled statement is one prepared statement per connection", async () => {
    const values = slots<{ i: number }>();
    const statement = compiledStatement<{ n: number }>(() => sql`${PREPARED} select ${values.$.i}::int + 100 as n`);
    const prepared = await db()
      .connection()
      .execute(async (connection) => {
        for (let i = 0; i < 3; i++) assert.equal((await statement.execute(connection, values.bind({ i }))).rows[0]!.n, i + 100);
        const { rows } = await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(connection);
        return rows.filter((row) => row.statement.startsWith(PREPARED_MARK) && row.statement.includes("+ 100"));
      });
    assert.equal(prepared.length, 1, JSON.stringify(prepared));
  });

  test("a template holding a plain value, or a call missing a value, is refused before anything runs", async () => {
    const values = slots<{ n: number }>();
    const fixed = compiledStatement(() => sql`select ${values.$.n}::int + ${5}::int as n`);
    await assert.rejects(fixed.execute(db(), values.bind({ n: 1 })), /parameter \$2 is a value, not a slot/);

    const other = slots<{ n: number }>();
    const statement = compiledStatement<{ n: number }>(() => sql`select ${values.$.n}::int as n`);
    await assert.rejects(statement.execute(db(), other.bind({ n: 1 })), /no value bound for slot "n"/, "another set's value of the same name does not count");
    await assert.rejects(statement.execute(db(), values.bind({} as { n: number })), /no value bound for slot "n"/);
    assert.equal((await statement.execute(db(), values.bind({ n: 7 }))).rows[0]!.n, 7);
  });
});
