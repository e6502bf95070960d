import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Migrator } from "@mikro-orm/migrations";
import pg from "pg";
import { MikroORM, type EntityManager } from "@mikro-orm/postgresql";
import type { Logger } from "../observability/logger.ts";
import { bindPoolToCalls } from "./call-scope.ts";
import { prepareMarkedStatements } from "./prepared-statements.ts";
import { ENTITIES } from "./entities.ts";
import { readConnectionString } from "./connection-string.ts";

export type { EntityManager };

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), "migrations");

export interface DatabaseOptions {
  /** A PostgreSQL connection string; every part of it counts (see openDatabase). */
  url: string;
  logger: Logger;
  /** Upper bound of connections this instance opens. */
  poolSize?: number;
  /** No statement runs longer than this (PostgreSQL `statement_timeout`); calls also cancel theirs when they end. */
  statementTimeoutMs?: number;
}

/**
 * Opens the MikroORM connection pool. Nothing is queried yet, so a database that is down is not fatal here.
 *
 * The pool gets the URL whole, as pg's `connectionString`, so every connection reads it the way
 * libpq would: query parameters included (`sslmode`, `host=/socket/dir`, `port`, `options`,
 * `application_name`, which then wins over Gatehouse's own name). MikroORM itself never parses
 * it: its `clientUrl` takes only host, port, user, password and database (silently dropping the
 * rest), and rejects a URL such as `postgres://app@/auth?host=/var/run/postgresql` outright.
 */
export async function openDatabase(options: DatabaseOptions): Promise<MikroORM> {
  const log = options.logger.child({ component: "database" });
  const target = readConnectionString(options.url);
  const orm = await MikroORM.init({
    // What MikroORM knows of the target (its own labels, the migrations snapshot, schema diffs);
    // the pool connects with the connection string below, which overrides these.
    host: target.host,
    port: target.port,
    user: target.user,
    dbName: target.database || target.user || "postgres",
    entities: ENTITIES,
    extensions: [Migrator],
    migrations: {
      path: MIGRATIONS_DIR,
      glob: "!(*.d).ts",
      tableName: "gatehouse_migrations",
      transactional: true,
      allOrNothing: true,
      snapshot: true,
      snapshotName: ".snapshot-gatehouse",
      silent: true,
    },
    pool: { min: 0, max: options.poolSize ?? 10, idleTimeoutMillis: 30_000 },
    driverOptions: {
      // Overrides the host, port, user, password and database MikroORM passes next to it.
      connectionString: options.url,
      connectionTimeoutMillis: 5_000,
      statement_timeout: options.statementTimeoutMs ?? 30_000,
      application_name: "gatehouse",
      onPoolCreated: (pool: pg.Pool) => {
        bindPoolToCalls(pool);
        prepareMarkedStatements(pool);
      },
    },
    allowGlobalContext: false,
    ensureDatabase: false,
    discovery: { warnWhenNoEntities: true },
    logger: (message) => log.debug(message),
    debug: false,
  });
  // Builds the pool (it connects on first use). Only then is `clientUrl` the URL: MikroORM would
  // have parsed it had it been there before. Gatehouse's connections beside the pool (migration
  // lock, notifications) and whoever asks the ORM where it is connected read it from there.
  await orm.connect();
  orm.config.set("clientUrl", options.url);
  log.debug({ host: target.host, port: target.port, database: target.database, unixSocket: target.unixSocket }, "database pool opened");
  return orm;
}

/** Any fixed number: instances starting together take turns migrating under this advisory lock. */
const MIGRATION_LOCK_KEY = 0x6761_7465;

/**
 * Applies every pending migration; returns the names applied. Several instances starting on one
 * database take turns (a session-level advisory lock on a connection of its own), so the second
 * finds nothing left to do instead of racing to create the same tables.
 */
export async function migrate(
  orm: MikroORM,
  onProgress?: (step: { migration: string; number: number; of: number }) => void,
): Promise<string[]> {
  const lock = new pg.Client({
    // The pool's URL, read the same way; an application_name in it wins over this one, as in the pool.
    connectionString: orm.config.get("clientUrl"),
    application_name: "gatehouse-migrate",
    connectionTimeoutMillis: 5_000,
  });
  // Without a listener, the connection being cut (database restarted mid-migration) would crash the process.
  lock.on("error", (error) => orm.config.getLogger().warn("migrations", `migration lock connection lost: ${error.message}`));
  await lock.connect();
  try {
    await lock.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    if (onProgress) {
      const of = (await orm.migrator.getPending()).length;
      let number = 0;
      orm.migrator.on("migrating", ({ name }) => onProgress({ migration: name, number: ++number, of }));
    }
    const applied = await orm.migrator.up();
    return applied.map((migration) => migration.name);
  } finally {
    await lock.end();
  }
}
