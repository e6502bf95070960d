import { readdirSync, readFileSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/**
 * Gives libuv's thread pool, where argon2 hashes, a lower CPU priority (a higher nice value) than
 * the event loop. When every core is busy hashing a flood of sign-ins (several instances on one
 * host, or other work beside Gatehouse), the kernel then hands a core to the event loop as soon as
 * a cheap call arrives, instead of letting it wait for a hash's time slice to run out.
 *
 * Linux keeps a nice value per thread, and libuv names its pool threads `libuv-worker`; only those
 * are changed, never the event loop. The pool's other work (file writes, DNS lookups) is short and
 * shares the priority. A thread already at a lower priority is left as it is (raising it back would
 * need privileges).
 *
 * Returns false only when the pool has not started yet (libuv starts it on first use), so the
 * caller tries again after its next hash; true once done, or when this system has no such threads.
 */
export function lowerThreadPoolPriority(nice: number): boolean {
  let threads: string[];
  try {
    threads = readdirSync("/proc/self/task");
  } catch {
    return true; // not Linux: nothing to do
  }
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
