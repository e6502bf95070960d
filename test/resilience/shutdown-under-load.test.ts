import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { Agent, request } from "node:http";
import pg from "pg";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { createTestDatabase, makeTransport, startTestServer, type ProtocolName } from "../support/harness.ts";
import { spawnGatehouse } from "../support/process.ts";

/**
 * SIGTERM while registrations pour in: calls in flight finish, later ones are refused cleanly,
 * the process exits 0, and the database holds no half-written sign-up — every user has its
 * session and that session its refresh token (Register writes them in one transaction).
 */

const CALLS = 40;
const PASSWORD = "lantern moss beneath the bridge";

describe("shutdown while a call waits in PostgreSQL", () => {
  test("the call finishes with its answer, which tells the HTTP/1.1 client not to reuse the connection", async () => {
    const server = await startTestServer();
    let stopped: Promise<void> | undefined;
    const lock = new pg.Client({ connectionString: server.databaseUrl });
    try {
      await server.auth().register({ username: "drainer", email: "drainer@example.com", password: PASSWORD });
      await lock.connect();
      await lock.query("begin");
      await lock.query("lock table users in access exclusive mode");
      const agent = new Agent({ keepAlive: true });
      const answer = new Promise<{ status: number; connection: string | undefined; body: string }>((resolve, reject) => {
        const req = request(
          `${server.baseUrl}/gatehouse.auth.v1.AuthService/Login`,
          { method: "POST", agent, headers: { "content-type": "application/json" } },
          (res) => {
            let body = "";
            res.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }));
          },
        );
        req.on("error", reject);
        req.end(JSON.stringify({ email: "drainer@example.com", password: PASSWORD }));
      });
      const waiting = async () =>
        (await server.sql("select 1 from pg_stat_activity where datname = current_database() and application_name = 'gatehouse' and wait_event_type = 'Lock'")).length;
      for (let attempt = 0; attempt < 100 && (await waiting()) === 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok((await waiting()) > 0, "the call waits in PostgreSQL");
      stopped = server.gatehouse.stop();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await lock.query("rollback");
      const { status, connection, body } = await answer;
      assert.equal(status, 200, body);
      assert.match(body, /"accessToken"/);
      assert.equal(connection, "close");
      agent.destroy();
      await stopped;
    } finally {
      await lock.end().catch(() => {});
      await (stopped ?? Promise.resolve());
      await server.stop().catch(() => {});
    }
  });
});

describe("SIGTERM under load", () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  test("in-flight registrations finish, none is half-written, the process exits 0", async (t) => {
    const db = await createTestDatabase();
    cleanups.push(db.drop);
    const proc = await spawnGatehouse({
      DATABASE_URL: db.url,
      // Real-sized hashing (and two at a time) keeps calls in flight long enough to be cut into.
      GATEHOUSE_ARGON2_MEMORY_KIB: "19456",
      GATEHOUSE_ARGON2_ITERATIONS: "2",
      GATEHOUSE_HASH_CONCURRENCY: "2",
      GATEHOUSE_SHUTDOWN_TIMEOUT: "20s",
      // Every call comes from 127.0.0.1: the per-address sign-up limit is not what this is about.
      GATEHOUSE_RATE_LIMIT_REGISTER: "off",
    });
    const base = `http://127.0.0.1:${proc.port}`;
    const clients = (["connect-json", "grpc", "connect-binary"] as ProtocolName[]).map((protocol) => createClient(AuthService, makeTransport(protocol, base)));

    let finished = 0;
    let signalled: Promise<number | null> | undefined;
    const late: ReturnType<typeof register>[] = [];
    const register = async (i: number) => {
      const username = `sigterm${i}`;
      try {
        const res = await clients[i % clients.length]!.register({ username, email: `${username}@example.com`, password: PASSWORD });
        return { username, ok: true as const, sessionId: res.tokens?.sessionId ?? "", userId: res.user?.id ?? "" };
      } catch (e) {
        return { username, ok: false as const, error: ConnectError.from(e) };
      } finally {
        // SIGTERM once a few have gone through, with most still queued behind the hash slots;
        // then a late wave, which arrives while the server shuts down.
        if (++finished === 3) {
          signalled = proc.stop("SIGTERM");
          for (let j = 0; j < 10; j++) late.push(register(CALLS + j));
        }
      }
    };
    const inFlight = await Promise.all(Array.from({ length: CALLS }, (_, i) => register(i)));
    const results = [...inFlight, ...(await Promise.all(late))];
    const exitCode = await (signalled ?? proc.stop("SIGTERM"));
    assert.equal(exitCode, 0, proc.output().slice(-2000));

    const succeeded = results.filter((r) => r.ok);
    const failed = results.flatMap((r) => (r.ok ? [] : [r]));
    t.diagnostic(`${succeeded.length} answered OK, ${failed.length} refused: ${failed.map((f) => `${f.username} ${Code[f.error.code]} ${f.error.rawMessage}`).join("; ")}`);
    assert.deepEqual(inFlight.filter((r) => !r.ok).map((r) => r.username), [], "every call in flight at SIGTERM finished");
    // Late calls are turned away before any work: a refused connection, a refused HTTP/2 stream
    // (REFUSED_STREAM: "not processed, safe to retry"), or a write on a keep-alive connection the
    // server had just closed. connect-node's client reports some of these as `internal`, but they
    // are transport failures on the client's side, never an error status sent by the server.
    const TURNED_AWAY = /ECONNREFUSED|NGHTTP2_REFUSED_STREAM|EPIPE|ECONNRESET|socket hang up|GOAWAY/;
    for (const { username, error } of failed) {
      const clean = [Code.Unavailable, Code.Canceled].includes(error.code) || TURNED_AWAY.test(error.rawMessage);
      assert.ok(clean, `${username}: ${Code[error.code]} ${error.rawMessage}`);
    }
    assert.doesNotMatch(proc.output(), /"level":"(error|fatal)"/, "nothing logged as an unexpected error");

    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ username: string; user_id: string; sessions: number; tokens: number }>(
        `select u.username, u.id as user_id,
                (select count(*)::int from sessions s where s.user_id = u.id) as sessions,
                (select count(*)::int from refresh_tokens t join sessions s on s.id = t.session_id where s.user_id = u.id) as tokens
           from users u where u.username like 'sigterm%'`,
      );
      const byName = new Map(rows.map((row) => [row.username, row]));
      for (const row of rows) {
        assert.equal(row.sessions, 1, `${row.username} has its session`);
        assert.equal(row.tokens, 1, `${row.username}'s session has its refresh token`);
      }
      for (const result of succeeded) {
        assert.equal(byName.get(result.username)?.user_id, result.userId, `${result.username} was answered OK and is stored`);
      }
      // A refused call may or may not have been written, but only ever whole (checked above).
      assert.ok(rows.length >= succeeded.length);
    } finally {
      await client.end();
    }
  });
});
