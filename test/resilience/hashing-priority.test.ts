import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { getPriority } from "node:os";
import { after, describe, test } from "node:test";
import { createTestDatabase, postJson } from "../support/harness.ts";
import { spawnGatehouse } from "../support/process.ts";

/**
 * The threads that hash run at a lower priority than the event loop, so that a host whose cores
 * are all hashing still answers cheap calls promptly. Checked on real processes: the kernel's
 * own record of each thread's nice value.
 */

const linuxOnly = process.platform !== "linux" && "nice values per thread are Linux's";

/** Each thread of a process by name, with its nice value. */
function threadPriorities(pid: number): { name: string; nice: number }[] {
  return readdirSync(`/proc/${pid}/task`).map((thread) => ({
    name: readFileSync(`/proc/${pid}/task/${thread}/comm`, "utf8").trim(),
    nice: getPriority(Number(thread)),
  }));
}

function nicesOf(pid: number, name: string): number[] {
  return threadPriorities(pid)
    .filter((thread) => thread.name === name)
    .map((thread) => thread.nice);
}

describe("the priority of the hashing threads", { skip: linuxOnly }, () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  /** A real `gatehouse serve` that has hashed one password (a sign-up), with the given nice setting. */
  async function servedAfterASignUp(env: Record<string, string>) {
    const db = await createTestDatabase();
    cleanups.push(db.drop);
    const proc = await spawnGatehouse({ DATABASE_URL: db.url, GATEHOUSE_ARGON2_MEMORY_KIB: "1024", GATEHOUSE_ARGON2_ITERATIONS: "1", ...env });
    cleanups.push(() => proc.stop());
    const name = `nice${randomBytes(4).toString("hex")}`;
    const res = await postJson(`http://127.0.0.1:${proc.port}`, "/gatehouse.auth.v1.AuthService/Register", {
      username: name,
      email: `${name}@example.com`,
      password: "a kettle sings at dawn",
    });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    return proc.child.pid!;
  }

  // A spawned server starts at this thread's nice value (0, unless the tests themselves run niced).
  const inherited = getPriority();

  test("by default the pool hashes 10 nice levels below the event loop, which keeps its priority", async () => {
    const pid = await servedAfterASignUp({});
    const pool = nicesOf(pid, "libuv-worker");
    assert.ok(pool.length > 0, "libuv's pool has started");
    assert.deepEqual(pool, pool.map(() => Math.min(19, inherited + 10)));
    assert.deepEqual(nicesOf(pid, "MainThread"), [inherited]);
  });

  test("GATEHOUSE_HASH_NICE sets it, and 0 leaves every thread as it was", async () => {
    const lowest = await servedAfterASignUp({ GATEHOUSE_HASH_NICE: "19" });
    assert.deepEqual(new Set(nicesOf(lowest, "libuv-worker")), new Set([19]));
    const untouched = await servedAfterASignUp({ GATEHOUSE_HASH_NICE: "0" });
    assert.deepEqual(new Set(threadPriorities(untouched).map((thread) => thread.nice)), new Set([inherited]));
  });

  test("the levels count from the event loop's own nice value, up to 19, and a lower pool is never raised", async () => {
    // In a process of its own: nice values cannot be taken back without privileges.
    const script = `
      import { randomBytes } from "node:crypto";
      import { readdirSync, readFileSync } from "node:fs";
      import { getPriority, setPriority } from "node:os";
      import { promisify } from "node:util";
      import { lowerThreadPoolPriority } from ${JSON.stringify(new URL("../../src/passwords/hashing-priority.ts", import.meta.url).href)};
      const pool = () => readdirSync("/proc/self/task").filter((t) => readFileSync("/proc/self/task/" + t + "/comm", "utf8") === "libuv-worker\\n").map(Number);
      const nices = () => [...new Set(pool().map((t) => getPriority(t)))];
      const seen = { beforeThePool: lowerThreadPoolPriority(10) };
      await promisify(randomBytes)(16); // starts libuv's pool
      setPriority(2); // this (the event loop's) thread only
      seen.started = lowerThreadPoolPriority(10);
      seen.fromTwo = nices();
      for (const t of pool()) setPriority(t, 15);
      lowerThreadPoolPriority(1);
      seen.notRaised = nices();
      lowerThreadPoolPriority(18);
      seen.capped = nices();
      seen.eventLoop = getPriority();
      console.log(JSON.stringify(seen));
    `;
    const child = spawnSync(process.execPath, ["--input-type=module", "--eval", script], { encoding: "utf8" });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(JSON.parse(child.stdout), {
      beforeThePool: false,
      started: true,
      fromTwo: [12],
      notRaised: [15],
      capped: [19],
      eventLoop: 2,
    });
  });
});
