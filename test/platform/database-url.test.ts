import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import pg from "pg";
import { readConnectionString } from "../../src/platform/database/connection-string.ts";
import { isDatabaseUnavailable } from "../../src/platform/errors/database-errors.ts";
import { PASSWORD, registerUser } from "../auth/support.ts";
import { createTestDatabase, startTestServer, type TestServer } from "../support/harness.ts";

/**
 * DATABASE_URL is honoured whole: every connection Gatehouse opens (pool, notifications,
 * migration lock) reads it as pg and libpq do, query parameters included.
 */

/**
 * `url` rewritten to reach the same server and database over its Unix socket, in the form
 * `postgres://user:password@/database?host=<dir>&port=<port>` (no host before the path, which
 * `new URL()` refuses but libpq and pg accept). With the embedded cluster the URL names its
 * socket already; with another server, its socket is found from its own settings.
 */
async function overUnixSocket(url: string): Promise<string> {
  const target = readConnectionString(url);
  let socketDir = target.unixSocket ? target.host : undefined;
  if (!socketDir) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ dirs: string }>("select current_setting('unix_socket_directories') as dirs");
      socketDir = rows[0]!.dirs
        .split(",")
        .map((dir) => dir.trim())
        .find((dir) => existsSync(join(dir, `.s.PGSQL.${target.port}`)));
    } finally {
      await client.end();
    }
  }
  assert.ok(socketDir, `the PostgreSQL at DATABASE_URL has no Unix socket on this machine (port ${target.port})`);
  const parsed = new URL(url);
  const credentials = parsed.username ? `${parsed.username}${parsed.password ? `:${parsed.password}` : ""}@` : "";
  const query = new URLSearchParams({ host: socketDir, port: String(target.port) });
  return `postgres://${credentials}${parsed.pathname}?${query}`;
}

/** Gatehouse's own connections to `server`'s database, as PostgreSQL sees them. */
async function gatehouseConnections(server: TestServer, applicationName: string) {
  return server.sql<{ tcp: number; socket: number }>(
    `select count(*) filter (where client_addr is not null)::int as tcp, count(*) filter (where client_addr is null)::int as socket
       from pg_stat_activity where datname = current_database() and application_name = $1 and pid <> pg_backend_pid()`,
    [applicationName],
  );
}

describe("DATABASE_URL", () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** A server on a database of its own, reached through `rewrite(url)`. */
  async function serverOn(rewrite: (url: string) => string | Promise<string>): Promise<TestServer> {
    const database = await createTestDatabase();
    cleanups.push(database.drop);
    const server = await startTestServer({}, { databaseUrl: await rewrite(database.url) });
    cleanups.push(() => server.stop());
    return server;
  }

  test("a URL naming a Unix socket directory with ?host= (and no host before the path) works end to end", async () => {
    let url = "";
    const server = await serverOn(async (given) => (url = await overUnixSocket(given)));
    assert.match(url, /^postgres:\/\/([^/]*@)?\/gatehouse_test_\w+\?host=%2F/, "the URL has the shape under test");
    // With a user name, new URL() refuses it: no part of Gatehouse may read it that way.
    if (url.includes("@/")) assert.throws(() => new URL(url));

    const user = await registerUser(server.auth());
    const login = await server.auth().login({ identifier: { case: "email", value: user.email }, password: PASSWORD });
    assert.ok(login.tokens?.accessToken);
    assert.equal((await fetch(`${server.baseUrl}/readyz`)).status, 200);

    const [seen] = await gatehouseConnections(server, "gatehouse");
    assert.ok(seen!.socket > 0, "the pool's connections are there");
    assert.equal(seen!.tcp, 0, "and none of them is a TCP connection");
  });

  test("its query parameters reach every connection Gatehouse opens: application_name, and options' settings", async () => {
    const server = await serverOn((given) => {
      const url = new URL(given);
      url.searchParams.set("application_name", "gatehouse-from-url");
      url.searchParams.set("options", "-c lock_timeout=4321");
      return url.toString();
    });
    await registerUser(server.auth());

    // The pool, and the notification listener beside it (the caller cache is on by default).
    const named = await server.sql<{ count: number }>(
      "select count(*)::int as count from pg_stat_activity where datname = current_database() and application_name = 'gatehouse-from-url'",
    );
    assert.ok(named[0]!.count >= 2, `pool and listener connections carry the URL's application_name (saw ${named[0]!.count})`);
    const defaults = await server.sql<{ name: string }>(
      "select application_name as name from pg_stat_activity where datname = current_database() and application_name like 'gatehouse%' and application_name <> 'gatehouse-from-url'",
    );
    assert.deepEqual(defaults, [], "an explicit application_name wins over Gatehouse's own names");

    const [setting] = await server.gatehouse.orm.em.getConnection().execute<{ value: string }[]>("select current_setting('lock_timeout') as value");
    assert.equal(setting!.value, "4321ms", "a setting passed in options reaches the pool's connections");
  });

  test("a Unix socket that is not there (the server is stopped) counts as the database being unavailable, like a refused TCP connection", async () => {
    const client = new pg.Client({ connectionString: "postgres://nobody@/nothing?host=/nonexistent/gatehouse-socket&port=5432" });
    client.on("error", () => {});
    const error = await client.connect().then(
      () => assert.fail("connected to nothing"),
      (e: unknown) => e,
    );
    assert.equal(isDatabaseUnavailable(error), true, String(error));
    // Not every missing file: only a connection's.
    const missingFile = await readFile("/nonexistent/gatehouse-file").catch((e: unknown) => e);
    assert.equal(isDatabaseUnavailable(missingFile), false);
  });
});
