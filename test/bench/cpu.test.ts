import assert from "node:assert/strict";
import { test } from "node:test";
import { cpuSince, cpuSnapshot } from "../../bench/lib/cpu.ts";

type Snapshot = ReturnType<typeof cpuSnapshot>;

const snapshot = (at: number, busyTicks: number, stealTicks: number, processes: [number, number, string][]): Snapshot => ({
  at,
  busyTicks,
  stealTicks,
  ioSomeMicros: 0,
  ioFullMicros: 0,
  processes: new Map(processes.map(([pid, ticks, comm]) => [pid, { ticks, comm }])),
});

test("CPU use splits the benchmark's processes from the rest, and reports the hypervisor's steal apart", () => {
  // 10 s; 100 ticks a second per core.
  const start = snapshot(0, 1_000, 50, [
    [10, 100, "node"],
    [20, 200, "postgres"],
  ]);
  const end = snapshot(10_000, 3_000, 350, [
    [10, 900, "node"],
    [20, 600, "postgres"],
  ]);
  const use = cpuSince(start, end, { servers: [10] });
  assert.equal(use.busyCores, 2);
  assert.equal(use.serverCores, 0.8);
  assert.equal(use.postgresCores, 0.4);
  // Not the benchmark: 2,000 busy ticks - 1,200 of its own = 0.8 cores, of which 300 ticks of steal.
  assert.equal(use.otherCores, 0.8);
  assert.equal(use.stealCores, 0.3);
});

test("a live snapshot reads steal from /proc/stat, never more than the busy time", () => {
  const start = cpuSnapshot();
  const use = cpuSince(start, cpuSnapshot());
  assert.ok(use.stealCores !== undefined && use.stealCores >= 0);
  assert.ok(start.stealTicks <= start.busyTicks);
});
