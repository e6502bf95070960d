import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../support/harness.ts";
import { ROOT } from "./client-build.ts";

/**
 * Every ```sh block of the README that runs curl (or buf curl) is run, in order and in one shell
 * (later blocks use variables set by earlier ones, as a reader's terminal would), against a fresh
 * server — so the README cannot rot. Where a block says what comes back (`# → …"reason":"X"…`),
 * that reason must be in its output.
 */
const README = join(ROOT, "README.md");
const DOCUMENTED_URL = "http://localhost:8080";
const ADMIN_PASSWORD = "an admin passphrase for the readme";

function curlBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  for (const match of markdown.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    const body = match[1] ?? "";
    if (/\bcurl\b/.test(body)) blocks.push(body);
  }
  return blocks;
}

function runShell(script: string, env: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile("bash", ["-c", script], { env, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, output: stdout + stderr });
    });
  });
}

describe("the README's curl commands", () => {
  let server: TestServer;
  let blocks: string[];
  before(async () => {
    blocks = curlBlocks(await readFile(README, "utf8"));
    // The user-management walk-through signs in as the first admin, with $ADMIN_PASSWORD.
    server = await startTestServer({
      GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: "admin@example.com",
      GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: "admin",
      GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    });
  });
  after(() => server.stop());

  test("there are curl examples to check", () => {
    assert.ok(blocks.length >= 2, `found ${blocks.length} blocks`);
  });

  test("each runs against a fresh server and answers as documented", async () => {
    const marker = (i: number) => `::readme-block-${i}::`;
    const script = [
      "set -eo pipefail",
      ...blocks.map((block, i) => `echo '${marker(i)}'\n${block.replaceAll(DOCUMENTED_URL, server.baseUrl)}`),
      `echo '${marker(blocks.length)}'`,
    ].join("\n");
    const { code, output } = await runShell(script, {
      PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH ?? ""}`,
      HOME: process.env.HOME ?? "/tmp",
      ADMIN_PASSWORD,
    });

    for (let i = 0; i < blocks.length; i++) {
      const start = output.indexOf(marker(i));
      const end = output.indexOf(marker(i + 1));
      const block = blocks[i]!;
      const where = `README block ${i + 1}:\n${block}\noutput:\n${output.slice(start, end === -1 ? undefined : end)}`;
      assert.ok(start !== -1 && end !== -1, `the shell stopped (exit ${code}) in ${where}`);
      const answer = output.slice(start + marker(i).length, end);
      assert.doesNotMatch(answer, /"code":\s*"(internal|unimplemented|unknown)"/, where);
      assert.doesNotMatch(answer, /curl: \(\d+\)/, where);
      for (const [, reason] of block.matchAll(/^# →.*"reason":"([A-Z_]+)"/gm)) {
        assert.match(answer, new RegExp(`"reason":\\s*"${reason}"`), where);
      }
    }
    assert.equal(code, 0, output);
  });
});
