import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * `gatehouse/client` resolves to dist/client (built JavaScript). `npm test` builds it before the
 * suite; a test file run on its own builds it here when it is missing.
 */
export async function ensureClientBuilt(): Promise<void> {
  if (existsSync(join(ROOT, "dist/client/index.js"))) return;
  await promisify(execFile)(join(ROOT, "node_modules/.bin/tsc"), ["-p", join(ROOT, "tsconfig.client.json")], { cwd: ROOT });
}
