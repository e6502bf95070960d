import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import { PREPARED, PREPARED_MARK } from "../../src/platform/database/prepared-statements.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";

describe("marked statements are prepared once per connection", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test("a marked statement with parameters runs as a named prepared statement; others do not", async () => {
    const db = server.gatehouse.orm.em.getConnection().getClient();
    const found = await db.connection().execute(async (connection) => {
      for (let i = 0; i < 3; i++) {
        const { rows } = await sql<{ n: number }>`${PREPARED} select ${i}::int + 1 as n`.execute(connection);
        assert.equal(rows[0]!.n, i + 1);
      }
      await sql`select ${1}::int as unmarked`.execute(connection);
      const { rows } = await sql<{ name: string; statement: string }>`select name, statement from pg_prepared_statements`.execute(connection);
      return rows;
    });
    const ours = found.filter((row) => row.statement.startsWith(PREPARED_MARK));
    assert.equal(ours.length, 1, `one prepared statement for the marked text: ${JSON.stringify(found)}`);
    assert.match(ours[0]!.name, /^gatehouse_[0-9a-f]{24}$/);
    assert.ok(!found.some((row) => row.statement.includes("unmarked")), "unmarked statements are not prepared");
  });
});
