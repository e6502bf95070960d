import type { MikroORM } from "@mikro-orm/postgresql";
import { createApp } from "./app.ts";
import type { Clock } from "./platform/clock.ts";
import type { Config } from "./platform/config/config.ts";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "./platform/database/embedded-postgres.ts";
import { migrate, openDatabase } from "./platform/database/orm.ts";
import { retryWhileDatabaseUnavailable } from "./platform/database/readiness.ts";
import type { Logger } from "./platform/observability/logger.ts";
import { bootstrapAdmin } from "./users/first-admin.ts";

export interface RunningGatehouse {
  readonly port: number;
  readonly orm: MikroORM;
  /**
   * Settles when the start-up work that needs the database (migrations, the first admin, the
   * signing key) is done: at once when the database was there, later when it had to be waited
   * for. Rejects when that work failed for a reason waiting will not cure (a refused bootstrap
   * value, a broken migration); the process should then stop.
   */
  readonly ready: Promise<void>;
  /** Drains in-flight calls, closes the pool and stops the embedded database if one was started. */
  stop(): Promise<void>;
}

/** Opens the database the configuration names (or an embedded one) and applies pending migrations. */
export async function connectDatabase(
  config: Config,
  logger: Logger,
): Promise<{ orm: MikroORM; embedded: EmbeddedDatabase | undefined }> {
  const { orm, embedded } = await openConfiguredDatabase(config, logger);
  try {
    await migrateAndLog(orm, logger);
    return { orm, embedded };
  } catch (error) {
    await orm.close();
    await embedded?.stop();
    throw error;
  }
}

/** The pool only: nothing is queried yet, so a DATABASE_URL that is down is not an error here. */
async function openConfiguredDatabase(config: Config, logger: Logger): Promise<{ orm: MikroORM; embedded: EmbeddedDatabase | undefined }> {
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres(config.dataDir, logger);
  try {
    const orm = await openDatabase({ url: config.databaseUrl ?? embedded!.url, logger, statementTimeoutMs: config.maxCallTimeoutMs });
    return { orm, embedded };
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}

async function migrateAndLog(orm: MikroORM, logger: Logger): Promise<void> {
  const applied = await migrate(orm, (step) => logger.info(step, `applying migration ${step.number} of ${step.of}`));
  if (applied.length > 0) logger.info({ applied }, "database migrated");
}

/**
 * Everything `gatehouse serve` does. The server listens before the database is known to be there:
 * migrations, the bootstrap admin and the signing key run behind a readiness gate, retried with
 * backoff while the database is unavailable, so a database that starts after Gatehouse (or is
 * restarting) delays readiness instead of ending the process. When the database is there this
 * resolves once Gatehouse is ready, as before; otherwise once the first attempt has failed, with
 * `ready` settling later. `clock` is for tests.
 */
export async function startGatehouse(config: Config, logger: Logger, options: { clock?: Clock } = {}): Promise<RunningGatehouse> {
  const { orm, embedded } = await openConfiguredDatabase(config, logger);
  const app = createApp(config, logger, orm, options);
  let port: number;
  try {
    port = await app.listenBeforeReady();
  } catch (error) {
    await app.close().catch(() => {});
    await orm.close();
    await embedded?.stop();
    throw error;
  }

  const stopping = new AbortController();
  let firstAttempt!: (outcome: "done" | "retrying") => void;
  const firstAttemptOver = new Promise<"done" | "retrying">((resolve) => (firstAttempt = resolve));
  const ready = retryWhileDatabaseUnavailable(
    async () => {
      await migrateAndLog(orm, logger);
      await bootstrapAdmin(orm, config, logger);
      await app.prepare();
    },
    logger,
    { signal: stopping.signal, onFirstAttempt: firstAttempt },
  );
  // Nobody may be listening to `ready` yet when it fails; the failure is reported below or by the caller.
  ready.catch(() => {});

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      stopping.abort(new Error("Gatehouse is stopping"));
      await ready.catch(() => {});
      await app.close();
      await orm.close();
      await embedded?.stop();
    })());

  const outcome = await Promise.race([firstAttemptOver, ready.then(() => "done" as const, (error: unknown) => ({ error }))]);
  if (typeof outcome === "object") {
    await stop();
    throw outcome.error;
  }
  logger.info({ port, host: config.host, tls: Boolean(config.tls), ready: outcome === "done" }, "Gatehouse is serving");
  if (outcome === "retrying") {
    ready.then(
      () => logger.info({ port }, "database reached: Gatehouse is ready"),
      (err: unknown) => {
        if (!stopping.signal.aborted) logger.error({ err }, "start-up failed");
      },
    );
  }
  return { port, orm, ready, stop };
}
