import { readFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";

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
