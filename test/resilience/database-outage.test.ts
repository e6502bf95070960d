import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/platform/database/embedded-postgres.ts";
import { ErrorInfoSchema } from "../../src/platform/errors/error-details.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { PASSWORD, bearer, registerUser, type RegisteredUser } from "../auth/support.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { spawnGatehouse } from "../support/process.ts";

/**
 * The database goes away and comes back. These tests run PostgreSQL clusters of their own
 * (startEmbeddedPostgres), never the one the rest of the suite shares.
 */

/** A cluster in a fresh folder, started once so that its URL (port, password) is known, then left as asked. */
async function ownCluster(cleanups: (() => Promise<void>)[]): Promise<{ url: string; stop: () => Promise<void>; start: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "gatehouse-outage-"));
  const logger = createLogger("warn");
  const first = await startEmbeddedPostgres(dir, logger);
  const port = Number(new URL(first.url).port);
  let running: EmbeddedDatabase | undefined = first;
  cleanups.push(async () => {
    await running?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  return {
    url: first.url,
    stop: async () => {
      await running?.stop();
      running = undefined;
    },
    start: async () => {
      await running?.stop();
      running = await startEmbeddedPostgres(dir, logger, { port });
    },
  };
}

/** `code REASON` of a failed call, or "ok". */
async function outcome(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => "ok",
    (e: unknown) => {
      const error = ConnectError.from(e);
      return `${Code[error.code]} ${error.findDetails(ErrorInfoSchema)[0]?.reason ?? error.rawMessage}`;
    },
  );
}

const UNAVAILABLE = "Unavailable DATABASE_UNAVAILABLE";

describe("database outages", () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  describe("lost mid-traffic", () => {
    let cluster: Awaited<ReturnType<typeof ownCluster>>;
    let server: TestServer;
    let user: RegisteredUser;
    before(async () => {
      cluster = await ownCluster(cleanups);
      server = await startTestServer({}, { databaseUrl: cluster.url });
      cleanups.push(() => server.stop());
      user = await registerUser(server.auth());
    });

    test("calls fail fast with unavailable / DATABASE_UNAVAILABLE while it is down, and succeed again on their own when it is back", async () => {
      // Traffic that keeps going through the whole outage, over Connect and gRPC.
      const seen: string[] = [];
      let stopTraffic = false;
      const traffic = Array.from({ length: 4 }, async (_, lane) => {
        for (let i = 0; i < 2_000 && !stopTraffic; i++) {
          const auth = server.auth(lane % 2 ? "grpc" : "connect-json");
          seen.push(
            await outcome(
              lane < 2
                ? auth.getMe({}, bearer(user.tokens.accessToken))
                : auth.login({ identifier: { case: "email", value: user.email }, password: PASSWORD }),
            ),
          );
          await sleep(5);
        }
      });
      try {
        await sleep(100);
        await cluster.stop(); // every pooled connection is cut

        // Down: answers come back (no hang) and say unavailable; the process stays up.
        const down = await Promise.all([
          outcome(server.auth().getMe({}, bearer(user.tokens.accessToken))),
          outcome(server.auth("grpc").login({ identifier: { case: "email", value: user.email }, password: PASSWORD })),
          outcome(server.users().getUser({ id: user.user.id }, bearer(user.tokens.accessToken))),
          outcome(server.auth().register({ username: "outage1", email: "outage1@example.com", password: PASSWORD })),
        ]);
        assert.deepEqual(down, [UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, UNAVAILABLE]);
        assert.equal((await fetch(`${server.baseUrl}/healthz`)).status, 200);
        assert.equal((await fetch(`${server.baseUrl}/readyz`)).status, 503);
        await sleep(200); // let idle pool clients notice the lost connections: an 'error' without a listener would end the process here

        // Back: the very same server recovers with no restart.
        await cluster.start();
        let back = "";
        for (let attempt = 0; attempt < 100 && back !== "ok"; attempt++) {
          back = await outcome(server.auth().getMe({}, bearer(user.tokens.accessToken)));
          if (back !== "ok") await sleep(100);
        }
        assert.equal(back, "ok", "calls succeed again once the database is back");
        assert.equal((await fetch(`${server.baseUrl}/readyz`)).status, 200);
        assert.equal(await outcome(server.auth("grpc").login({ identifier: { case: "email", value: user.email }, password: PASSWORD })), "ok");
      } finally {
        stopTraffic = true;
        await Promise.all(traffic);
      }
      const failures = seen.filter((answer) => answer !== "ok");
      assert.ok(seen.includes("ok"), "traffic went through before and after");
      assert.ok(failures.length > 0, "some traffic met the outage");
      assert.deepEqual([...new Set(failures)], [UNAVAILABLE], "every failure during the outage was unavailable, none internal");
      assert.deepEqual(
        server.logs.filter((line) => line.level === "error" || line.level === "fatal"),
        [],
        "nothing was logged as an unexpected error",
      );
      // Nothing half-written: the user registered during the outage does not exist at all.
      assert.deepEqual(await server.sql("select 1 from users where email = 'outage1@example.com'"), []);
    });
  });

  describe("pool exhausted", () => {
    test("calls that find no free connection within the pool's wait are unavailable, and the rest go on", async () => {
      const server = await startTestServer();
      cleanups.push(() => server.stop());
      const user = await registerUser(server.auth());
      const lock = new pg.Client({ connectionString: server.databaseUrl });
      await lock.connect();
      await lock.query("begin");
      await lock.query("lock table users in access exclusive mode");
      let released = false;
      try {
        // The pool holds 10 connections: 14 calls stuck behind the lock leave 4 waiting for one.
        const calls = Array.from({ length: 14 }, () => outcome(server.auth().getMe({}, bearer(user.tokens.accessToken))));
        const first = await Promise.race(calls);
        assert.equal(first, UNAVAILABLE, "the first answer is a waiting call giving up, not a hang");
        await lock.query("rollback");
        released = true;
        const all = await Promise.all(calls);
        assert.ok(all.filter((o) => o === UNAVAILABLE).length >= 1);
        assert.ok(all.filter((o) => o === "ok").length >= 10, all.join(", "));
        assert.deepEqual(all.filter((o) => o !== "ok" && o !== UNAVAILABLE), []);
      } finally {
        if (!released) await lock.query("rollback");
        await lock.end();
      }
      assert.equal(await outcome(server.auth().getMe({}, bearer(user.tokens.accessToken))), "ok");
    });
  });

  describe("down at start", () => {
    test("the server listens anyway, answers 503 and DATABASE_UNAVAILABLE, retries with backoff, and becomes ready on its own", async () => {
      const cluster = await ownCluster(cleanups);
      await cluster.stop(); // nothing listens on the cluster's port now
      const proc = await spawnGatehouse({
        DATABASE_URL: cluster.url,
        GATEHOUSE_ARGON2_MEMORY_KIB: "1024",
        GATEHOUSE_ARGON2_ITERATIONS: "1",
        GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: "late@example.com",
        GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: "late",
        GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: "harbour lamps at first light",
      });
      const base = `http://127.0.0.1:${proc.port}`;
      try {
        assert.match(proc.output(), /"ready":false[^\n]*"msg":"Gatehouse is serving"/);
        assert.equal((await fetch(`${base}/healthz`)).status, 200);
        assert.equal((await fetch(`${base}/readyz`)).status, 503);
        const res = await fetch(`${base}/gatehouse.auth.v1.AuthService/Login`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ email: "late@example.com", password: "harbour lamps at first light" }),
        });
        assert.equal(res.status, 503);
        const body = (await res.json()) as { code: string; details: { debug?: { reason?: string } }[] };
        assert.equal(body.code, "unavailable");
        assert.equal(body.details[0]?.debug?.reason, "DATABASE_UNAVAILABLE");
        // It keeps trying, and says so.
        for (let attempt = 0; attempt < 100 && (proc.output().match(/retrying/g)?.length ?? 0) < 2; attempt++) await sleep(50);
        assert.ok((proc.output().match(/database unavailable at start-up; retrying/g)?.length ?? 0) >= 2);
        assert.equal(proc.child.exitCode, null, "the process did not exit");

        await cluster.start();
        let ready = 0;
        for (let attempt = 0; attempt < 150 && ready !== 200; attempt++) {
          ready = (await fetch(`${base}/readyz`)).status;
          if (ready !== 200) await sleep(100);
        }
        assert.equal(ready, 200, "ready once the database is there, without a restart");
        assert.match(await proc.outputMatching(/database reached: Gatehouse is ready/), /database reached: Gatehouse is ready/);
        // Migrated, and the bootstrap admin exists: it signs in.
        const login = await fetch(`${base}/gatehouse.auth.v1.AuthService/Login`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ email: "late@example.com", password: "harbour lamps at first light" }),
        });
        assert.equal(login.status, 200);
      } finally {
        assert.equal(await proc.stop("SIGTERM"), 0);
      }
      assert.doesNotMatch(proc.output(), new RegExp(decodeURIComponent(new URL(cluster.url).password).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")), "the database password is never logged");
    });

    test("SIGTERM while still waiting for the database stops the process cleanly", async () => {
      const cluster = await ownCluster(cleanups);
      await cluster.stop();
      const proc = await spawnGatehouse({ DATABASE_URL: cluster.url });
      assert.equal((await fetch(`http://127.0.0.1:${proc.port}/readyz`)).status, 503);
      assert.equal(await proc.stop("SIGTERM"), 0);
    });
  });
});
