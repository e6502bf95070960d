import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/platform/database/embedded-postgres.ts";
import { createLogger } from "../../src/platform/observability/logger.ts";

let embedded: EmbeddedDatabase | undefined;
let dataDir: string | undefined;

/**
 * Runs once before every test file: without DATABASE_URL, one embedded PostgreSQL cluster serves
 * the whole run, and each test server gets a fresh database on it (see harness.ts).
 */
export async function globalSetup(): Promise<void> {
  if (process.env.DATABASE_URL) {
    process.env.GATEHOUSE_TEST_ADMIN_URL = parseableByNewUrl(process.env.DATABASE_URL);
    return;
  }
  dataDir = await mkdtemp(join(tmpdir(), "gatehouse-test-"));
  embedded = await startEmbeddedPostgres(dataDir, createLogger("warn"));
  process.env.GATEHOUSE_TEST_ADMIN_URL = embedded.adminUrl;
}

export async function globalTeardown(): Promise<void> {
  await embedded?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}

/**
 * The test helpers make per-test URLs from the admin URL with `new URL()`, which refuses a user
 * name before an empty host (`postgres://postgres@/test?host=/var/run/postgresql`, a form libpq
 * and pg accept and Gatehouse honours). For pg an empty host means localhost, and a `host`
 * parameter overrides it anyway, so naming localhost there changes nothing.
 */
function parseableByNewUrl(url: string): string {
  return URL.canParse(url) ? url : url.replace(/^(postgres(?:ql)?:\/\/[^@/?#]*@)(?=[/?#]|$)/, "$1localhost");
}
