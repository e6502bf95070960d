import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { gatehouseRuntime } from "../../bench/lib/processes.ts";

const dockerfile = readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8");

/** `ENV A=1 \ B=2` instructions of the final stage, continuation lines joined. */
function dockerEnv(text: string): Record<string, string> {
  const finalStage = text.slice(text.lastIndexOf("\nFROM "));
  const env: Record<string, string> = {};
  for (const [, body] of finalStage.replace(/\\\n\s*/g, " ").matchAll(/^ENV\s+(.+)$/gm)) {
    for (const [, name, value] of body!.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S*)/g)) env[name!] = value!;
  }
  return env;
}

test("the Docker image runs Gatehouse with the runtime settings of `npm start`", () => {
  const { nodeFlags, env } = gatehouseRuntime();
  assert.ok(nodeFlags.length > 0 && Object.keys(env).length > 0, "npm start sets node flags and environment");

  const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile);
  assert.ok(entrypoint, "the Dockerfile has an exec-form ENTRYPOINT");
  const words = JSON.parse(entrypoint[1]!) as string[];
  assert.equal(words[0], "node");
  assert.deepEqual(words.slice(1, words.indexOf("src/main.ts")), [...nodeFlags], "the same node flags");
  assert.match(dockerfile, /^CMD \["serve"\]$/m);

  const image = dockerEnv(dockerfile);
  for (const [name, value] of Object.entries(env)) assert.equal(image[name], value, `ENV ${name} as npm start sets it`);
});
