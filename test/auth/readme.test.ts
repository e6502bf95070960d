import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { startTestServer, type TestServer } from "../support/harness.ts";

/** The shell blocks of the README's auth section, in order. */
async function readmeShellBlocks(): Promise<string[]> {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("<!-- auth:start -->"), readme.indexOf("<!-- auth:end -->"));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

function bash(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn("bash", ["-euo", "pipefail", "-c", script], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stdout, stderr })));
}

describe("the README's curl walk-through", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  test("runs as written: sign up, sign in, GetMe, refresh, sign out, then introspect the dead token", async () => {
    const blocks = await readmeShellBlocks();
    assert.equal(blocks.length, 2, "the flow and the Introspect example");
    const script = blocks.join("\n").replaceAll("http://localhost:8080", server.baseUrl);
    // Each curl answer on its own line, so the outputs can be told apart.
    const { code, stdout, stderr } = await bash(script.replaceAll("-d '{}'\n", "-d '{}'; echo\n").replace(/(\n\s+-d '\{"username"[^\n]*)\n/, "$1; echo\n"));
    assert.equal(code, 0, stderr);
    const lines = stdout.trim().split("\n");
    assert.match(lines[0]!, /"user":\{[^}]*"username":"grace"/, "Register");
    assert.match(lines[1]!, /"email":"grace@example.com"/, "GetMe with the signed-in token");
    assert.equal(lines[2], "{}", "Logout");
    assert.match(lines[3]!, /"code":"unauthenticated".*SESSION_REVOKED/, "GetMe after logout");
    assert.equal(lines[4], "{}", "Introspect: not active");
    const sessions = await server.sql<{ revoke_reason: string | null }>("select revoke_reason from sessions order by create_time");
    assert.deepEqual(sessions.map((s) => s.revoke_reason), [null, "logout"], "the refresh stayed in the signed-in session");
    const tokens = await server.sql("select 1 from refresh_tokens where rotate_time is not null");
    assert.equal(tokens.length, 1, "one refresh happened");
  });
});
