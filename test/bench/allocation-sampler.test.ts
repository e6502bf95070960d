/**
 * The benchmark's allocation sampler (bench/lib/allocation-sampler.ts), preloaded into a real
 * server process: between two SIGUSR2 it samples what the process allocates and counts the calls
 * it serves over HTTP/1.1 and HTTP/2, and the summary divides one by the other.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { summariseAllocation } from "../../bench/lib/profile.ts";

const SAMPLER = new URL("../../bench/lib/allocation-sampler.ts", import.meta.url).href;

/** One port, two servers: HTTP/1.1 on it, h2c on the next. Each answer allocates 64 KiB on purpose. */
const SERVER = `
import { createServer } from "node:http";
import { createServer as createH2 } from "node:http2";
const answer = (res) => res.end(String(new Array(8192).fill(0).length));
const h1 = createServer((req, res) => answer(res)).listen(0, "127.0.0.1", () => {
  const h2 = createH2((req, res) => answer(res)).listen(0, "127.0.0.1", () => console.log(JSON.stringify({ h1: h1.address().port, h2: h2.address().port })));
});`;

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

test("between two SIGUSR2, the sampler counts the calls served over HTTP/1.1 and HTTP/2 and what they allocated", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gatehouse-allocation-"));
  dirs.push(dir);
  const file = join(dir, "allocation.json");
  const child = spawn(process.execPath, [`--import=${SAMPLER}`, "--input-type=module", "-e", SERVER], {
    env: { ...process.env, GATEHOUSE_BENCH_ALLOCATION_FILE: file },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let said = "";
  child.stderr!.on("data", (chunk: Buffer) => (said += chunk.toString()));
  const saying = async (pattern: RegExp) => {
    for (let i = 0; i < 200 && !pattern.test(said); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.match(said, pattern);
  };
  try {
    const [line] = (await once(child.stdout!, "data")) as [Buffer];
    const ports = JSON.parse(line.toString()) as { h1: number; h2: number };
    const h1 = () => fetch(`http://127.0.0.1:${ports.h1}/`).then((res) => res.text());
    await h1(); // before the window: not counted

    child.kill("SIGUSR2");
    await saying(/allocation sampler: sampling/);
    for (let i = 0; i < 20; i++) assert.equal(await h1(), "8192");
    const session = connect(`http://127.0.0.1:${ports.h2}`);
    for (let i = 0; i < 5; i++) {
      const stream = session.request({ ":path": "/" });
      stream.end();
      stream.resume();
      await once(stream, "end");
    }
    session.close();
    child.kill("SIGUSR2");
    await saying(/allocation sampler: 25 calls, written to /);

    const summary = await summariseAllocation(file);
    assert.equal(summary.calls, 25, "20 HTTP/1.1 requests and 5 HTTP/2 streams, none from before the window");
    assert.ok(summary.bytesPerCall >= 64 * 1024, `each call allocated its 64 KiB array at least: ${summary.bytesPerCall} bytes`);
    assert.ok(summary.byComponent.length > 0);
    assert.equal(summary.bySrcFunction[0]?.frame, "(no Gatehouse function on the stack)");
  } finally {
    child.kill("SIGKILL");
  }
});
