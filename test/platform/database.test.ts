import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../support/harness.ts";

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
});
