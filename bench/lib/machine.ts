import { closeSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { join } from "node:path";
import { round, summarise } from "./stats.ts";

export interface Machine {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGb: number;
  readonly kernel: string;
  readonly node: string;
}

/** What the figures were measured on: nproc, memory and the CPU model from /proc/cpuinfo. */
export function describeMachine(): Machine {
  let cpuModel = "unknown";
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux
  }
  let kernel = "unknown";
  try {
    kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  } catch {
    // not Linux
  }
  return {
    cpuModel,
    cores: availableParallelism(),
    memoryGb: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel,
    node: process.version,
  };
}

/** How long the disk takes to make a small write durable: what every synchronous commit waits for. */
export interface DiskFlush {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly samples: number;
}

const FLUSH_PROBE_BYTES = 8192;

/**
 * Times `samples` rewrites of one 8 kB block in a file under `dir`, each followed by `fdatasync`,
 * as PostgreSQL writes and flushes a WAL page at commit (`pg_test_fsync` measures the same). The
 * file is written and flushed once before timing, so its size is not what the samples wait for,
 * and is removed afterwards. Measured on an idle machine it is a floor: under load a flush can
 * take several times as long.
 */
export function measureDiskFlush(dir: string, samples = 200): DiskFlush {
  const path = join(dir, "gatehouse-bench-flush-probe");
  const block = Buffer.alloc(FLUSH_PROBE_BYTES, 0x5a);
  const fd = openSync(path, "w");
  const times: number[] = [];
  try {
    writeSync(fd, block, 0, block.length, 0);
    fdatasyncSync(fd);
    for (let i = 0; i < samples; i++) {
      const start = process.hrtime.bigint();
      writeSync(fd, block, 0, block.length, 0);
      fdatasyncSync(fd);
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  const summary = summarise(times);
  return { p50Ms: round(summary.p50), p99Ms: round(summary.p99), samples };
}
