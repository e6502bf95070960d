import type { MikroORM } from "@mikro-orm/postgresql";
import { createApp } from "./app.ts";
import type { Clock } from "./platform/clock.ts";
import type { Config } from "./platform/config/config.ts";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "./platform/database/embedded-postgres.ts";
import { migrate, openDatabase } from "./platform/database/orm.ts";
import type { Logger } from "./platform/observability/logger.ts";
import { bootstrapAdmin } from "./users/first-admin.ts";

export interface RunningGatehouse {
  readonly port: number;
  readonly orm: MikroORM;
  /** Drains in-flight calls, closes the pool and stops the embedded database if one was started. */
  stop(): Promise<void>;
}

/** Opens the database the configuration names (or an embedded one) and applies pending migrations. */
export async function connectDatabase(
  config: Config,
  logger: Logger,
): Promise<{ orm: MikroORM; embedded: EmbeddedDatabase | undefined }> {
  const embedded = config.databaseUrl ? undefined : await startEmbeddedPostgres(config.dataDir, logger);
  try {
    const orm = await openDatabase({ url: config.databaseUrl ?? embedded!.url, logger });
    const applied = await migrate(orm);
    if (applied.length > 0) logger.info({ applied }, "database migrated");
    return { orm, embedded };
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}

/** Everything `gatehouse serve` does: database, migrations, server, listen. `clock` is for tests. */
export async function startGatehouse(config: Config, logger: Logger, options: { clock?: Clock } = {}): Promise<RunningGatehouse> {
  const { orm, embedded } = await connectDatabase(config, logger);
  try {
    await bootstrapAdmin(orm, config, logger);
  } catch (error) {
    await orm.close();
    await embedded?.stop();
    throw error;
  }
  const server = createApp(config, logger, orm, options);
  let port: number;
  try {
    port = await server.listen();
  } catch (error) {
    await orm.close();
    await embedded?.stop();
    throw error;
  }
  logger.info({ port, host: config.host, tls: Boolean(config.tls) }, "Gatehouse is serving");
  let stopping: Promise<void> | undefined;
  return {
    port,
    orm,
    stop: () =>
      (stopping ??= (async () => {
        await server.close();
        await orm.close();
        await embedded?.stop();
      })()),
  };
}
