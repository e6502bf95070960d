import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { startTestServer, type TestServer } from "../support/harness.ts";

const README = fileURLToPath(new URL("../../README.md", import.meta.url));
const ADMIN_PASSWORD = "oak barrel midnight";

/** The shell block under "### With curl" in the README's users section. */
async function usersCurlBlock(): Promise<string> {
  const readme = await readFile(README, "utf8");
  const section = readme.slice(readme.indexOf("<!-- users:start -->"), readme.indexOf("<!-- users:end -->"));
  const match = /### With curl[\s\S]*?^```sh\n([\s\S]*?)^```$/m.exec(section);
  assert.ok(match, "the users section has a curl block");
  return match[1]!;
}

describe("the README's user-management walk-through", () => {
  let server: TestServer;
  before(async () => {
    // As the README's reader has it: an admin `admin` whose password is in $ADMIN_PASSWORD.
    server = await startTestServer({
      GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: "admin@example.com",
      GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: "admin",
      GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
    });
  });
  after(() => server.stop());

  test("runs as written and does what it says", async () => {
    const script = `set -euo pipefail\n${(await usersCurlBlock()).replaceAll("http://localhost:8080", server.baseUrl)}`;
    const output = await new Promise<string>((resolve, reject) =>
      execFile("bash", ["-c", script], { env: { PATH: process.env.PATH ?? "", ADMIN_PASSWORD }, timeout: 60_000 }, (error, stdout, stderr) =>
        error ? reject(new Error(`${error.message}\n${stdout}\n${stderr}`)) : resolve(stdout + stderr),
      ),
    );
    assert.doesNotMatch(output, /"code":"(invalid_argument|unauthenticated|permission_denied|not_found|already_exists|internal|unavailable|unimplemented)"/);
    assert.match(output, /"username":"grace".*"totalSize":1/, "ListUsers found grace");
    assert.match(output, /"lastName":"Murray Hopper"/);
    assert.match(output, /"disabled":true/);
    assert.match(output, /"username":"linus".*"roles":\["user"\]/, "linus registered with the invitation");
    assert.match(output, /"useCount":1/);
    assert.equal((await server.sql("select 1 from users where username = 'grace'")).length, 0, "grace was deleted at the end");
    const [invitation] = await server.sql<{ use_count: number; email: string }>("select use_count, email from invitations");
    assert.deepEqual(invitation, { use_count: 1, email: "linus@example.com" });
  });
});
