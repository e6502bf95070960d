import { spawn } from "node:child_process";
import { join } from "node:path";
import pg from "pg";
import { withDatabase } from "../../src/platform/database/connection-string.ts";
import { startEmbeddedPostgres } from "../../src/platform/database/embedded-postgres.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";
import { adoptProcessTree, processStat } from "./cpu.ts";
import { type DiskFlush, measureDiskFlush } from "./machine.ts";
import { REPO_ROOT } from "./processes.ts";

export interface WalFlushTotals {
  readonly flushes: number;
  readonly ms: number;
}

/** The PostgreSQL the benchmark runs on: embedded (started here) or the one DATABASE_URL names. */
export interface Cluster {
  readonly kind: "embedded" | "external";
  readonly version: string;
  /**
   * The server runs on this machine, its processes found and counted as PostgreSQL in the CPU
   * column: always for the embedded cluster, for an external one when its backend was found here.
   */
  readonly onThisMachine: boolean;
  /**
   * How fast the file system holding the embedded cluster's data flushes an 8 kB write, measured
   * once before any load. Undefined for an external server, whose disk the benchmark cannot see.
   */
  readonly diskFlush: DiskFlush | undefined;
  /**
   * Totals of the WAL flushes that client sessions made, and their time: embedded PostgreSQL 18
   * or later, whose benchmark databases time them (`track_wal_io_timing`). A busy session adds its
   * counts to these totals about once a second; what it did in its last second comes in when it
   * ends or has been idle for ten seconds.
   */
  readonly walFlushes: (() => Promise<WalFlushTotals>) | undefined;
  /** A fresh database; `settings` become its defaults (ALTER DATABASE … SET), e.g. synchronous_commit. */
  createDatabase(name: string, settings?: Readonly<Record<string, string>>): Promise<string>;
  stop(): Promise<void>;
}

export async function openCluster(workDir: string): Promise<Cluster> {
  const external = process.env.DATABASE_URL;
  const dataDir = join(workDir, "postgres");
  const embedded = external ? undefined : await startEmbeddedPostgres(dataDir, createLogger("warn", process.stderr));
  const adminUrl = external ?? embedded!.adminUrl;
  const created: string[] = [];
  const [server] = await adminQuery(adminUrl, "SELECT current_setting('server_version') AS version, current_setting('server_version_num')::int AS number");
  const version = String(server?.version ?? "?");
  // pg_stat_io counts WAL I/O from PostgreSQL 18 on; the embedded cluster is ours to configure.
  const timesFlushes = embedded !== undefined && Number(server?.number) >= 180000;
  const postmaster = external ? await localPostmaster(adminUrl) : undefined;
  if (postmaster !== undefined) adoptProcessTree(postmaster);
  return {
    kind: external ? "external" : "embedded",
    version,
    onThisMachine: !external || postmaster !== undefined,
    diskFlush: embedded ? measureDiskFlush(dataDir) : undefined,
    walFlushes: timesFlushes ? () => walFlushTotals(adminUrl) : undefined,
    async createDatabase(name, settings = {}) {
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await adminQuery(adminUrl, `CREATE DATABASE "${name}"`);
      for (const [setting, value] of Object.entries({ ...(timesFlushes ? { track_wal_io_timing: "on" } : {}), ...settings })) {
        if (!/^[a-z_.]+$/.test(setting)) throw new Error(`not a PostgreSQL setting name: ${setting}`);
        await adminQuery(adminUrl, `ALTER DATABASE "${name}" SET ${setting} = '${value.replaceAll("'", "''")}'`);
      }
      created.push(name);
      return withDatabase(adminUrl, name);
    },
    async stop() {
      // On someone else's server, leave nothing behind; the embedded cluster goes with its folder.
      if (external) for (const name of created) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await embedded?.stop();
    },
  };
}

/**
 * The pid of the PostgreSQL server (its postmaster) that `url` reaches, when it runs on this
 * machine: the backend serving a connection is a child of the postmaster, so both show in /proc
 * as `postgres` processes. Undefined for a server elsewhere. (A server in a container reports
 * pids of its own namespace; they count only if this machine's processes of those pids are a
 * `postgres` process and its `postgres` parent.)
 */
export async function localPostmaster(url: string): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const backend = Number((await client.query("select pg_backend_pid() as pid")).rows[0]?.pid);
    const parent = postgresProcess(backend)?.ppid;
    return parent !== undefined && postgresProcess(parent) ? parent : undefined;
  } finally {
    await client.end();
  }
}

/** /proc's view of `pid`, if it is a PostgreSQL process here. */
function postgresProcess(pid: number): { ppid: number } | undefined {
  const stat = processStat(pid);
  return stat && stat.comm.startsWith("postgres") && stat.ppid > 0 ? stat : undefined;
}

async function adminQuery(url: string, text: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as Record<string, unknown>[];
  } finally {
    await client.end();
  }
}

/** `gatehouse seed --count <n> --prefix <p>` against `databaseUrl` (which it also migrates); returns seconds taken. */
export async function seedUsers(databaseUrl: string, count: number, prefix: string): Promise<{ seconds: number; output: string }> {
  const started = performance.now();
  const child = spawn(process.execPath, ["src/main.ts", "seed", "--count", String(count), "--prefix", prefix], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", DATABASE_URL: databaseUrl, GATEHOUSE_LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let errors = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  // Progress lines; only the tail matters when something goes wrong.
  child.stderr.on("data", (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-4_000)));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  if (code !== 0) throw new Error(`gatehouse seed exited with ${code}:\n${output}${errors}`);
  return { seconds: (performance.now() - started) / 1000, output: output.trim() };
}

async function walFlushTotals(adminUrl: string): Promise<WalFlushTotals> {
  const [row] = await adminQuery(
    adminUrl,
    "SELECT coalesce(sum(fsyncs), 0)::float8 AS flushes, coalesce(sum(fsync_time), 0)::float8 AS ms FROM pg_stat_io WHERE object = 'wal' AND backend_type = 'client backend'",
  );
  return { flushes: Number(row?.flushes ?? 0), ms: Number(row?.ms ?? 0) };
}
