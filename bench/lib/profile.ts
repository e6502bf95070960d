import { readFile } from "node:fs/promises";

/** The parts of a V8 .cpuprofile this summary reads. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FrameTime {
  readonly frame: string;
  readonly ms: number;
  /** Share of the busy (non-idle) time in the window. */
  readonly pct: number;
  /** For the top self-time frames: the call paths that reach them most (nearest caller first). */
  callers?: { path: string; ms: number }[];
}

export interface ProfileSummary {
  id: string;
  title: string;
  throughput: number;
  /** The measured window, and how much of it the main thread was busy. */
  windowMs: number;
  busyMs: number;
  topSelf: FrameTime[];
  byComponent: FrameTime[];
  /** Self time of every component in the window, in ms, not only the top ones (for comparing two profiles). */
  componentMs?: Record<string, number>;
  /** Gatehouse's own functions (src/) by inclusive time: where its time goes, callees included. */
  topInclusiveSrc: FrameTime[];
  /** Memory allocated per call over the same kind of window, from a separate sampling (allocation-sampler.ts). */
  allocation?: AllocationSummary;
}

export interface AllocationShare {
  readonly frame: string;
  readonly bytesPerCall: number;
}

export interface AllocationSummary {
  readonly calls: number;
  readonly bytesPerCall: number;
  /** By the component of the function that allocated (as for CPU time). */
  readonly byComponent: AllocationShare[];
  /** By the nearest Gatehouse (src/) function on the allocating stack: what Gatehouse code made, itself or through a library. */
  readonly bySrcFunction: AllocationShare[];
}

const ROOT = new URL("../../", import.meta.url).href;

function shortUrl(url: string): string {
  if (url === "") return "";
  let path = url.startsWith(ROOT) ? url.slice(ROOT.length) : url;
  const nm = path.lastIndexOf("node_modules/");
  if (nm >= 0) path = path.slice(nm);
  return path;
}

/** Which part of the stack a frame belongs to: a src/ feature, gen/, an npm package, Node itself or V8. */
function componentOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const path = shortUrl(url);
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return pkg[1]!;
  if (path.startsWith("node:")) return `node:${path.slice(5).split("/").slice(0, 2).join("/")}`;
  if (path.startsWith("src/")) return path.split("/").slice(0, path.startsWith("src/platform/") ? 3 : 2).join("/");
  if (path.startsWith("gen/")) return "gen";
  return path;
}

const IDLE = new Set(["(idle)"]);
const CALLER_DEPTH = 6;
const CALLERS_FOR_TOP = 6;

/**
 * Self and inclusive time per frame over the samples inside `windowMicros` (CLOCK_MONOTONIC µs,
 * the clock V8 stamps samples with), so start-up and shutdown stay out of the picture.
 */
export async function summariseProfile(file: string, windowMicros: readonly [number, number], top = 15): Promise<Omit<ProfileSummary, "id" | "title" | "throughput">> {
  const profile = JSON.parse(await readFile(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const frameOf = (id: number) => {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const name = functionName || "(anonymous)";
    return url ? `${name} ${shortUrl(url)}:${lineNumber + 1}` : name;
  };

  const self = new Map<string, number>();
  // frame → caller path → ms, for the self-time ranking's top entries.
  const callerPaths = new Map<string, Map<string, number>>();
  const pathOf = (id: number): string => {
    const names: string[] = [];
    for (let at = parent.get(id); at !== undefined && names.length < CALLER_DEPTH; at = parent.get(at)) {
      const node = byId.get(at)!;
      if (node.callFrame.url === "" && node.callFrame.functionName.startsWith("(")) break;
      names.push(frameOf(at));
    }
    return names.join(" ← ");
  };
  const inclusive = new Map<string, number>();
  const components = new Map<string, number>();
  let busy = 0;
  let total = 0;
  let time = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i] ?? 0;
    if (time < windowMicros[0] || time > windowMicros[1]) continue;
    // A sample stands for the interval until the next one.
    const weight = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    total += weight;
    const id = profile.samples[i]!;
    const node = byId.get(id)!;
    if (IDLE.has(node.callFrame.functionName)) continue;
    busy += weight;
    const frame = frameOf(id);
    self.set(frame, (self.get(frame) ?? 0) + weight);
    let paths = callerPaths.get(frame);
    if (!paths) callerPaths.set(frame, (paths = new Map()));
    const path = pathOf(id);
    paths.set(path, (paths.get(path) ?? 0) + weight);
    const component = componentOf(node.callFrame.url, node.callFrame.functionName);
    components.set(component, (components.get(component) ?? 0) + weight);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const { url } = byId.get(at)!.callFrame;
      if (!shortUrl(url).startsWith("src/")) continue;
      const key = frameOf(at);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + weight);
    }
  }
  const ranked = (map: Map<string, number>, n: number): FrameTime[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([frame, ms]) => ({ frame, ms: Math.round(ms), pct: busy ? Math.round((ms / busy) * 1000) / 10 : 0 }));
  const topSelf = ranked(self, top);
  for (const entry of topSelf.slice(0, CALLERS_FOR_TOP)) {
    entry.callers = [...(callerPaths.get(entry.frame) ?? new Map<string, number>()).entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 2)
      .map(([path, ms]) => ({ path, ms: Math.round(ms) }));
  }
  return {
    windowMs: Math.round(total),
    busyMs: Math.round(busy),
    topSelf,
    byComponent: ranked(components, top),
    componentMs: Object.fromEntries([...components].map(([component, ms]) => [component, Math.round(ms * 10) / 10])),
    topInclusiveSrc: ranked(inclusive, top),
  };
}

/** The parts of a V8 sampling heap profile this summary reads. */
interface SamplingHeapProfile {
  head: SamplingHeapNode;
  samples: { size: number; nodeId: number }[];
}
interface SamplingHeapNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children: SamplingHeapNode[];
}

/** Bytes allocated per call, in all and by where, from a file that allocation-sampler.ts wrote. */
export async function summariseAllocation(file: string, top = 10): Promise<AllocationSummary> {
  const { calls, profile } = JSON.parse(await readFile(file, "utf8")) as { calls: number; profile: SamplingHeapProfile };
  const sizeOf = new Map<number, number>();
  for (const sample of profile.samples) sizeOf.set(sample.nodeId, (sizeOf.get(sample.nodeId) ?? 0) + sample.size);
  const frame = ({ functionName, url, lineNumber }: SamplingHeapNode["callFrame"]) =>
    `${functionName || "(anonymous)"}${url ? ` ${shortUrl(url)}:${lineNumber + 1}` : ""}`;

  let total = 0;
  const byComponent = new Map<string, number>();
  const bySrc = new Map<string, number>();
  const add = (map: Map<string, number>, key: string, bytes: number) => map.set(key, (map.get(key) ?? 0) + bytes);
  const walk = (node: SamplingHeapNode, nearestSrc: string | undefined) => {
    const src = shortUrl(node.callFrame.url).startsWith("src/") ? frame(node.callFrame) : nearestSrc;
    const bytes = sizeOf.get(node.id) ?? 0;
    if (bytes > 0) {
      total += bytes;
      add(byComponent, componentOf(node.callFrame.url, node.callFrame.functionName), bytes);
      add(bySrc, src ?? "(no Gatehouse function on the stack)", bytes);
    }
    for (const child of node.children) walk(child, src);
  };
  walk(profile.head, undefined);

  const perCall = (bytes: number) => (calls > 0 ? Math.round(bytes / calls) : 0);
  const ranked = (map: Map<string, number>) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([key, bytes]) => ({ frame: key, bytesPerCall: perCall(bytes) }));
  return { calls, bytesPerCall: perCall(total), byComponent: ranked(byComponent), bySrcFunction: ranked(bySrc) };
}
