import assert from "node:assert/strict";
import { test } from "node:test";
import { runGatehouse } from "../support/process.ts";

// --help never needs configuration or a database: it works with an empty environment.
for (const [args, expected] of [
  [["--help"], /^Usage: gatehouse <command>/],
  [["help"], /^Usage: gatehouse <command>/],
  [["serve", "--help"], /^Usage: gatehouse serve\n/],
  [["migrate", "--help"], /^Usage: gatehouse migrate\n/],
  [["keys", "--help"], /^Usage: gatehouse keys rotate\n/],
  [["keys", "rotate", "--help"], /^Usage: gatehouse keys rotate\n/],
  [["create-admin", "--help"], /^Usage: gatehouse create-admin /],
  [["seed", "-h"], /^Usage: gatehouse seed /],
  [["help", "migrate"], /^Usage: gatehouse migrate\n/],
] as const) {
  test(`gatehouse ${args.join(" ")} prints its help and exits 0`, async () => {
    const { code, stdout, stderr } = await runGatehouse([...args], {});
    assert.equal(code, 0, stderr);
    assert.match(stdout, expected);
  });
}

test("the overview lists every command", async () => {
  const { stdout } = await runGatehouse(["--help"], {});
  for (const command of ["serve", "migrate", "keys rotate", "create-admin", "seed"]) assert.match(stdout, new RegExp(`\\n  ${command} `));
});

test("an unknown command exits 2 with the usage", async () => {
  const { code, stderr } = await runGatehouse(["frobnicate"], {});
  assert.equal(code, 2);
  assert.match(stderr, /Unknown command "frobnicate"/);
});
