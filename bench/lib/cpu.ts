import { readdirSync, readFileSync } from "node:fs";

/**
 * How busy the machine's cores were, and how much of that was NOT this benchmark (its own
 * process tree: servers, PostgreSQL, load generators). The machine may be shared, so every
 * scenario records the other processes' CPU, and the run waits for them to quieten first.
 * Times are in clock ticks from /proc; children already reaped count through cutime/cstime.
 */
interface CpuSnapshot {
  readonly at: number;
  readonly busyTicks: number;
  /** Of which ticks the hypervisor gave the vCPUs to someone else (steal): the VM was not running. */
  readonly stealTicks: number;
  /** Microseconds some / all runnable tasks were stalled on I/O (PSI), when the kernel has it. */
  readonly ioSomeMicros: number;
  readonly ioFullMicros: number;
  /** CPU ticks of every process in this benchmark's tree, with its command name. */
  readonly processes: ReadonlyMap<number, { readonly ticks: number; readonly comm: string }>;
}

const TICKS_PER_SECOND = 100;

function systemTicks(): { busy: number; steal: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, _idle = 0, _iowait = 0, irq = 0, softirq = 0, steal = 0] = fields;
  return { busy: user + nice + system + irq + softirq + steal, steal };
}

/**
 * Process trees outside this benchmark's own that count as part of it: an external PostgreSQL
 * (DATABASE_URL) running on this machine, whose server the benchmark loads as much as its own
 * cluster. Without it that server's CPU would read as "not the benchmark".
 */
const adoptedRoots = new Set<number>();

/** Counts the process `pid` and its descendants as the benchmark's own from the next snapshot on. */
export function adoptProcessTree(pid: number): void {
  adoptedRoots.add(pid);
}

/** A process as /proc/<pid>/stat shows it; undefined when there is none (or it left while we looked). */
export function processStat(pid: number | string): { ppid: number; ticks: number; comm: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the command: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
    const ticks = Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
    return { ppid: Number(rest[1]), ticks, comm };
  } catch {
    return undefined;
  }
}

function ownTree(roots: ReadonlySet<number>): Map<number, { ticks: number; comm: string }> {
  const all = new Map<number, { ppid: number; ticks: number; comm: string }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = processStat(entry);
    if (stat) all.set(Number(entry), stat);
  }
  const tree = new Map<number, { ticks: number; comm: string }>();
  for (const [pid, info] of all) {
    for (let at: number | undefined = pid; at !== undefined && at > 0; at = all.get(at)?.ppid) {
      if (roots.has(at)) {
        tree.set(pid, { ticks: info.ticks, comm: info.comm });
        break;
      }
    }
  }
  return tree;
}

function ioPressure(): { some: number; full: number } {
  try {
    const text = readFileSync("/proc/pressure/io", "utf8");
    const total = (kind: string) => Number(new RegExp(`^${kind} .*total=(\\d+)`, "m").exec(text)?.[1] ?? 0);
    return { some: total("some"), full: total("full") };
  } catch {
    return { some: 0, full: 0 };
  }
}

export function cpuSnapshot(): CpuSnapshot {
  const io = ioPressure();
  try {
    const ticks = systemTicks();
    return { at: performance.now(), busyTicks: ticks.busy, stealTicks: ticks.steal, ioSomeMicros: io.some, ioFullMicros: io.full, processes: ownTree(new Set([process.pid, ...adoptedRoots])) };
  } catch {
    return { at: performance.now(), busyTicks: 0, stealTicks: 0, ioSomeMicros: io.some, ioFullMicros: io.full, processes: new Map() };
  }
}

export interface CpuUse {
  /** Cores busy on the whole machine, on average. */
  readonly busyCores: number;
  /** Of which not this benchmark: processes outside it, and time the hypervisor took (steal). */
  readonly otherCores: number;
  /**
   * Of `otherCores`, the steal: on a VM, time its vCPUs wanted to run but the host ran something
   * else. Absent in reports written before it was recorded.
   */
  readonly stealCores?: number;
  /** Of which: the servers under test, PostgreSQL, the load generators. */
  readonly serverCores: number;
  readonly postgresCores: number;
  loadCores: number;
  /**
   * Share of the time (%) some / all runnable tasks on the machine waited for the disk (PSI). Ours
   * included — PostgreSQL's commits wait for fsync — but a high "full" share means the disk,
   * shared with other processes, stalled everything.
   */
  readonly ioSomePct: number;
  readonly ioFullPct: number;
  /**
   * The WAL flushes (`fdatasync`) that PostgreSQL's sessions made to commit, from the load's start
   * to its end (warm-up included; the sessions' last second or so is reported later), and their
   * mean time: what a durable commit waited for on this disk under this load. Embedded PostgreSQL
   * only; absent in older reports.
   */
  walFlushes?: number;
  walFlushMeanMs?: number;
}

/**
 * CPU use between two snapshots; `servers` names the pids of the servers under test. Load
 * generators may have left before `end`, so they report their own use (filled in by the caller).
 */
export function cpuSince(start: CpuSnapshot, end: CpuSnapshot = cpuSnapshot(), roles: { servers?: readonly number[] } = {}): CpuUse {
  const seconds = (end.at - start.at) / 1000;
  const cores = (ticks: number) => round2(seconds > 0 ? ticks / TICKS_PER_SECOND / seconds : 0);
  const delta = (pid: number) => (end.processes.get(pid)?.ticks ?? start.processes.get(pid)?.ticks ?? 0) - (start.processes.get(pid)?.ticks ?? 0);
  const servers = new Set(roles.servers ?? []);
  let own = 0;
  let server = 0;
  let postgres = 0;
  for (const pid of new Set([...start.processes.keys(), ...end.processes.keys()])) {
    const ticks = delta(pid);
    own += ticks;
    if (servers.has(pid)) server += ticks;
    else if ((end.processes.get(pid) ?? start.processes.get(pid))!.comm.startsWith("postgres")) postgres += ticks;
  }
  const busy = end.busyTicks - start.busyTicks;
  return {
    busyCores: cores(busy),
    otherCores: cores(Math.max(0, busy - own)),
    stealCores: cores(Math.max(0, end.stealTicks - start.stealTicks)),
    serverCores: cores(server),
    postgresCores: cores(postgres),
    loadCores: 0,
    ioSomePct: round2(seconds > 0 ? (end.ioSomeMicros - start.ioSomeMicros) / 1e4 / seconds : 0),
    ioFullPct: round2(seconds > 0 ? (end.ioFullMicros - start.ioFullMicros) / 1e4 / seconds : 0),
  };
}

const round2 = (value: number) => Math.round(value * 100) / 100;

/**
 * Waits until processes outside the benchmark use less than `maxCores` over a 2 s window, for at
 * most `timeoutMs`; returns the last reading either way.
 */
export async function waitForQuiet(maxCores: number, timeoutMs: number, onWait?: (use: CpuUse) => void): Promise<CpuUse> {
  const deadline = performance.now() + timeoutMs;
  for (let warned = false; ; ) {
    const start = cpuSnapshot();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const use = cpuSince(start);
    if (use.otherCores < maxCores || performance.now() > deadline) return use;
    if (!warned) onWait?.(use);
    warned = true;
  }
}
