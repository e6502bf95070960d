import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { sql } from "kysely";
import { openDatabase } from "../../src/platform/database/orm.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { listLiveSessions } from "../../src/sessions/session-store.ts";
import { createTestDatabase, startTestServer, type TestServer } from "../support/harness.ts";

describe("database schema", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test("the committed migrations produce exactly the schema the entities describe", async () => {
    const diff = await server.gatehouse.orm.schema.getUpdateSchemaSQL({ wrap: false });
    assert.equal(diff.trim(), "", `entities and migrations differ; run \`npm run migration:create\`:\n${diff}`);
  });

  test("usernames and emails are unique at the database, not only by a pre-check", async () => {
    const insert = (username: string, email: string) =>
      server.sql("insert into users (username, email, password_hash) values ($1, $2, 'x')", [username, email]);
    await insert("bob", "bob@example.com");
    await assert.rejects(insert("bob", "other@example.com"), (e: { constraint?: string }) => e.constraint === "users_username_key");
    await assert.rejects(insert("bobby", "bob@example.com"), (e: { constraint?: string }) => e.constraint === "users_email_key");
  });

  test("deleting a user removes its sessions and refresh tokens", async () => {
    const [user] = await server.sql<{ id: string }>(
      "insert into users (username, email, password_hash) values ('carol', 'carol@example.com', 'x') returning id",
    );
    const [session] = await server.sql<{ id: string }>(
      "insert into sessions (user_id, expire_time) values ($1, now() + interval '1 day') returning id",
      [user!.id],
    );
    await server.sql("insert into refresh_tokens (token_hash, session_id) values ('\\x01', $1)", [session!.id]);
    await server.sql("delete from users where id = $1", [user!.id]);
    assert.equal((await server.sql("select 1 from sessions where id = $1", [session!.id])).length, 0);
    assert.equal((await server.sql("select 1 from refresh_tokens where session_id = $1", [session!.id])).length, 0);
  });

  test("moving a session's last use onto its current refresh token keeps what every session showed, both ways", async () => {
    const database = await createTestDatabase();
    const orm = await openDatabase({ url: database.url, logger: createLogger("silent") });
    const db = orm.em.getConnection().getClient();
    const query = async <T>(text: string) => (await sql<T>`${sql.raw(text)}`.execute(db)).rows;
    try {
      await orm.migrator.up({ to: "Migration20261122025214_caller_state_notifications" });
      const [session] = await query<{ id: string }>(`
        with u as (insert into users (username, email, password_hash) values ('dora', 'dora@example.com', 'x') returning id)
        insert into sessions (user_id, create_time, last_use_time, expire_time, user_agent, ip_address)
        select id, '2026-12-01T10:00:00Z', '2026-12-02T10:00:00Z', now() + interval '20 days', 'Dora''s phone', '192.0.2.7' from u
        returning id`);
      await query(`
        insert into refresh_tokens (token_hash, session_id, create_time, rotate_time) values
          ('\\x01', '${session!.id}', '2026-12-01T10:00:00Z', '2026-12-02T10:00:00Z'),
          ('\\x02', '${session!.id}', '2026-12-02T10:00:00Z', null)`);

      await orm.migrator.up();
      const now = new Date("2026-12-03T10:00:00Z");
      const [listed] = await listLiveSessions(db, { userId: (await query<{ id: string }>("select id from users"))[0]!.id, now, lifetimes: { sessionTtlMs: 30 * 86_400_000, sessionIdleTtlMs: 7 * 86_400_000 } });
      assert.deepEqual(
        { lastUse: listed?.last_use_time.toISOString(), userAgent: listed?.user_agent, ip: listed?.ip_address },
        { lastUse: "2026-12-02T10:00:00.000Z", userAgent: "Dora's phone", ip: "192.0.2.7" },
      );

      await orm.migrator.down();
      const [restored] = await query<{ last_use_time: Date; user_agent: string; ip_address: string }>(
        "select last_use_time, user_agent, ip_address from sessions");
      assert.deepEqual(
        { lastUse: new Date(restored!.last_use_time).toISOString(), userAgent: restored!.user_agent, ip: restored!.ip_address },
        { lastUse: "2026-12-02T10:00:00.000Z", userAgent: "Dora's phone", ip: "192.0.2.7" },
      );
    } finally {
      await orm.close();
      await database.drop();
    }
  });
});
