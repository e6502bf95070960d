// Writes a new migration for whatever the entities changed, diffed against a scratch database
// that has every committed migration applied. Usage: npm run migration:create -- <name>
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPostgres } from "../src/platform/database/embedded-postgres.ts";
import { migrate, openDatabase } from "../src/platform/database/orm.ts";
import { createLogger } from "../src/platform/observability/logger.ts";

const name = process.argv[2];
if (!name || !/^[a-z0-9-]+$/.test(name)) {
  console.error("Usage: npm run migration:create -- <name-in-kebab-case>");
  process.exit(2);
}
const logger = createLogger("warn");
const dir = await mkdtemp(join(tmpdir(), "gatehouse-migration-"));
const database = await startEmbeddedPostgres(dir, logger);
try {
  const orm = await openDatabase({ url: database.url, logger });
  await migrate(orm);
  const result = await orm.migrator.create(undefined, false, false, name);
  console.log(result.fileName ? `wrote ${result.fileName}` : "the entities match the migrations; nothing to write");
  await orm.close();
} finally {
  await database.stop();
  await rm(dir, { recursive: true, force: true });
}
