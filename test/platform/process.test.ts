import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import pg from "pg";
import { runGatehouse, spawnGatehouse } from "../support/process.ts";

const adminUrl = () => {
  const url = process.env.GATEHOUSE_TEST_ADMIN_URL;
  assert.ok(url, "run through npm test");
  return url;
};

async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `gatehouse_proc_${Date.now().toString(36)}${Math.floor(Math.random() * 1e6)}`;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl() });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await client.end();
    },
  };
}

describe("the gatehouse process", () => {
  const cleanups: (() => Promise<void>)[] = [];
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
  });

  test("without DATABASE_URL it starts an embedded PostgreSQL, keeps its data, and stops cleanly on SIGTERM and Ctrl-C", async () => {
    const dir = await mkdtemp(join(tmpdir(), "gatehouse-embedded-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const env = { GATEHOUSE_DATA_DIR: join(dir, ".gatehouse") };

    const first = await spawnGatehouse(env);
    assert.equal((await fetch(`http://127.0.0.1:${first.port}/readyz`)).status, 200);
    assert.match(first.output(), /creating the embedded PostgreSQL cluster/);
    assert.match(first.output(), /database migrated/);
    assert.equal(await first.stop("SIGTERM"), 0);
    assert.ok(existsSync(join(dir, ".gatehouse", "postgres", "PG_VERSION")));
    assert.ok(!existsSync(join(dir, ".gatehouse", "postgres", "postmaster.pid")), "PostgreSQL was stopped");

    const second = await spawnGatehouse(env);
    assert.doesNotMatch(second.output(), /creating the embedded PostgreSQL cluster/);
    assert.doesNotMatch(second.output(), /database migrated/, "nothing left to migrate");
    assert.equal((await fetch(`http://127.0.0.1:${second.port}/readyz`)).status, 200);
    assert.equal(await second.stop("SIGINT"), 0);
    assert.ok(!existsSync(join(dir, ".gatehouse", "postgres", "postmaster.pid")));
  });

  test("with DATABASE_URL it uses that database and never starts the embedded one", async () => {
    const db = await freshDatabase();
    cleanups.push(db.drop);
    const dir = await mkdtemp(join(tmpdir(), "gatehouse-external-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const proc = await spawnGatehouse({ DATABASE_URL: db.url, GATEHOUSE_DATA_DIR: join(dir, ".gatehouse") });
    assert.equal((await fetch(`http://127.0.0.1:${proc.port}/readyz`)).status, 200);
    assert.equal(await proc.stop(), 0);
    assert.ok(!existsSync(join(dir, ".gatehouse")), "no embedded cluster was created");
    assert.doesNotMatch(proc.output(), /embedded PostgreSQL/);
  });

  test("a call's log line reaches standard output while the server keeps running, not only when it exits", async () => {
    const db = await freshDatabase();
    cleanups.push(db.drop);
    const proc = await spawnGatehouse({ DATABASE_URL: db.url });
    try {
      const res = await fetch(`http://127.0.0.1:${proc.port}/gatehouse.auth.v1.AuthService/Introspect`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": "log-line-probe" },
        body: JSON.stringify({ token: "not-a-token" }),
      });
      assert.equal(res.status, 200);
      // Lines are written in batches: a lone line goes out within LOG_FLUSH_INTERVAL_MS (200 ms).
      const output = await proc.outputMatching(/"requestId":"log-line-probe"/);
      assert.match(output, /"requestId":"log-line-probe","procedure":"gatehouse.auth.v1.AuthService\/Introspect"[^\n]*"code":"ok"/);
      assert.equal(proc.child.exitCode, null, "the server is still running");
    } finally {
      assert.equal(await proc.stop(), 0);
    }
  });

  test("`migrate` applies the migrations and is idempotent", async () => {
    const db = await freshDatabase();
    cleanups.push(db.drop);
    const first = await runGatehouse(["migrate"], { DATABASE_URL: db.url });
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.match(first.stdout, /database migrated/);
    assert.match(first.stdout, /applying migration 1 of \d+/, "progress is shown migration by migration");
    const second = await runGatehouse(["migrate"], { DATABASE_URL: db.url });
    assert.equal(second.code, 0);
    assert.doesNotMatch(second.stdout, /database migrated/);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const tables = await client.query("select tablename from pg_tables where schemaname = 'public' order by 1");
    await client.end();
    const names = tables.rows.map((r: { tablename: string }) => r.tablename);
    for (const table of ["gatehouse_migrations", "invitations", "refresh_tokens", "sessions", "signing_keys", "users"]) {
      assert.ok(names.includes(table), `table ${table} exists`);
    }
  });

  test("instances migrating one empty database at the same time take turns", async () => {
    const db = await freshDatabase();
    cleanups.push(db.drop);
    const runs = await Promise.all([1, 2, 3].map(() => runGatehouse(["migrate"], { DATABASE_URL: db.url })));
    for (const run of runs) assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.equal(runs.filter((run) => /database migrated/.test(run.stdout)).length, 1, "exactly one of them applied the migrations");
  });

  test("a second server on the same data directory says so", async () => {
    const dir = await mkdtemp(join(tmpdir(), "gatehouse-busy-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const env = { GATEHOUSE_DATA_DIR: join(dir, ".gatehouse") };
    const first = await spawnGatehouse(env);
    try {
      const second = await runGatehouse(["serve"], { ...env, GATEHOUSE_HOST: "127.0.0.1", GATEHOUSE_PORT: "0" });
      assert.equal(second.code, 1);
      assert.match(second.stderr, /already running \(pid \d+\); is another Gatehouse using this GATEHOUSE_DATA_DIR\?/);
    } finally {
      assert.equal(await first.stop(), 0);
    }
  });

  test("a bad configuration stops the process with a message naming the variable", async () => {
    const result = await runGatehouse(["serve"], { GATEHOUSE_PORT: "eighty", GATEHOUSE_SIGNING_ALG: "none" });
    assert.equal(result.code, 78);
    assert.match(result.stderr, /GATEHOUSE_PORT="eighty" must be a whole number/);
    assert.match(result.stderr, /GATEHOUSE_SIGNING_ALG="none" must be one of: EdDSA, ES256/);
    assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/, "no stack trace");
  });

  test("--help explains the commands", async () => {
    const result = await runGatehouse(["--help"], {});
    assert.equal(result.code, 0);
    assert.match(result.stdout, /serve/);
    assert.match(result.stdout, /migrate/);
  });
});
