import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import pg from "pg";
import { cpuSnapshot } from "../../bench/lib/cpu.ts";
import { type Cluster, localPostmaster, openCluster } from "../../bench/lib/database.ts";
import { readConnectionString, withDatabase } from "../../src/platform/database/connection-string.ts";

test("DATABASE_URL pointed at another database (the benchmark's, a test's) keeps the rest of the URL", () => {
  const cases: [string, { host: string; port: number; user: string }][] = [
    ["postgres://postgres@127.0.0.1:5432/test", { host: "127.0.0.1", port: 5432, user: "postgres" }],
    ["postgresql://app:s%40cret@db.example:6543", { host: "db.example", port: 6543, user: "app" }],
    ["postgres://postgres@/postgres?host=/var/run/postgresql&port=5499", { host: "/var/run/postgresql", port: 5499, user: "postgres" }],
    ["postgres://postgres@localhost/x?host=/tmp/pg&sslmode=disable", { host: "/tmp/pg", port: 5432, user: "postgres" }],
  ];
  for (const [url, expected] of cases) {
    const moved = withDatabase(url, "gatehouse_bench_small");
    assert.deepEqual(readConnectionString(moved), { ...expected, database: "gatehouse_bench_small", unixSocket: expected.host.startsWith("/") }, url);
    assert.equal(new URL(moved.replace(/^[a-z]+:\/\/[^/]*/, "http://h")).search, new URL(url.replace(/^[a-z]+:\/\/[^/]*/, "http://h")).search, "query kept");
  }
  assert.throws(() => withDatabase("mysql://root@localhost/test", "x"), /postgres/);
});

/** Opens the benchmark's cluster as `npm run bench` would with this DATABASE_URL (none: embedded), then stops it. */
async function withCluster(databaseUrl: string | undefined, use: (cluster: Cluster) => Promise<void>): Promise<void> {
  const workDir = await mkdtemp(join(tmpdir(), "gatehouse-bench-test-"));
  const previous = process.env.DATABASE_URL;
  if (databaseUrl === undefined) delete process.env.DATABASE_URL;
  else process.env.DATABASE_URL = databaseUrl;
  try {
    const cluster = await openCluster(workDir);
    try {
      await use(cluster);
    } finally {
      await cluster.stop();
    }
  } finally {
    if (previous === undefined) delete process.env.DATABASE_URL;
    else process.env.DATABASE_URL = previous;
    await rm(workDir, { recursive: true, force: true });
  }
}

test("an external PostgreSQL on this machine is found, and its processes count as the benchmark's own CPU", async () => {
  const adminUrl = process.env.GATEHOUSE_TEST_ADMIN_URL;
  assert.ok(adminUrl, "run with npm test");
  const postmaster = await localPostmaster(adminUrl);
  assert.ok(postmaster !== undefined, "the test run's PostgreSQL runs on this machine");
  assert.match(readFileSync(`/proc/${postmaster}/stat`, "utf8"), /^\d+ \(postgres/);
  // The test run's server is not a child of this test process, so only adoption brings it in.
  assert.equal(cpuSnapshot().processes.has(postmaster), false);
  await withCluster(adminUrl, async (cluster) => {
    assert.equal(cluster.kind, "external");
    assert.equal(cluster.onThisMachine, true);
    assert.equal(cluster.diskFlush, undefined, "an external server's disk is not the benchmark's to measure");
    assert.equal(cluster.walFlushes, undefined, "nor are its settings the benchmark's to change");
    const processes = cpuSnapshot().processes;
    assert.equal(processes.get(postmaster)?.comm.startsWith("postgres"), true);
    assert.ok([...processes.values()].filter((p) => p.comm.startsWith("postgres")).length >= 2, "its backends and helpers come with it");
  });
});

test("the embedded cluster times the WAL flushes its databases' commits wait for", async () => {
  await withCluster(undefined, async (cluster) => {
    assert.equal(cluster.kind, "embedded");
    assert.ok(cluster.diskFlush && cluster.diskFlush.p50Ms > 0, "its disk's flush was measured");
    assert.ok(cluster.walFlushes, "PostgreSQL 18 counts WAL I/O in pg_stat_io");
    const url = await cluster.createDatabase("gatehouse_bench_flush_test");
    const before = await cluster.walFlushes();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      assert.equal((await client.query("SHOW track_wal_io_timing")).rows[0].track_wal_io_timing, "on");
      await client.query("CREATE TABLE commits (n int)");
      for (let n = 0; n < 20; n++) await client.query("INSERT INTO commits VALUES ($1)", [n]);
    } finally {
      await client.end();
    }
    // A session reports its counts as it exits, a moment after the client has gone.
    let after = await cluster.walFlushes();
    for (let waited = 0; after.flushes - before.flushes < 20 && waited < 5_000; waited += 250) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      after = await cluster.walFlushes();
    }
    assert.ok(after.flushes - before.flushes >= 20, `each of the 21 commits flushed: ${after.flushes - before.flushes}`);
    assert.ok(after.ms > before.ms, "and the flushes were timed");
  });
});
