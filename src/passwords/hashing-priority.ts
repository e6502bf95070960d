import { readdirSync, readFileSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/**
 * Runs libuv's thread pool, where argon2 hashes, `levels` nice levels below the event loop (as
 * `nice -n levels` would, up to 19). When every core is busy hashing a flood of sign-ins (several
 * instances on one host, or other work beside Gatehouse), the kernel then hands a core to the
 * event loop as soon as a cheap call arrives, instead of letting it wait for a hash's time slice
 * to run out.
 *
 * Linux keeps a nice value per thread, and libuv names its pool threads `libuv-worker`; only those
 * are changed, never the event loop. The pool's other work (file writes, DNS lookups) is short and
 * shares the priority. A thread already at a lower priority is left as it is (raising it back would
 * need privileges). Call it from the event loop's thread: its own nice value is the starting point.
 *
 * Returns false only when the pool has not started yet (libuv starts it on first use), so the
 * caller tries again after its next hash; true once done, or when this system has no such threads.
 */
export function lowerThreadPoolPriority(levels: number): boolean {
  let threads: string[];
  try {
    threads = readdirSync("/proc/self/task");
  } catch {
    return true; // not Linux: nothing to do
  }
  const nice = Math.min(19, getPriority() + levels);
  let found = false;
  for (const thread of threads) {
    let name: string;
    try {
      name = readFileSync(`/proc/self/task/${thread}/comm`, "utf8");
    } catch {
      continue; // the thread has exited
    }
    if (name !== "libuv-worker\n") continue;
    found = true;
    const id = Number(thread);
    try {
      if (getPriority(id) < nice) setPriority(id, nice);
    } catch {
      return true; // not permitted in this sandbox: the pool keeps the event loop's priority
    }
  }
  return found;
}
