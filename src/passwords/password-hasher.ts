import * as argon2 from "argon2";
import type { Config } from "../platform/config/config.ts";
import { lowerThreadPoolPriority } from "./hashing-priority.ts";

export interface PasswordVerification {
  readonly ok: boolean;
  /** The stored hash was made with other parameters than the configured ones. */
  readonly needsRehash: boolean;
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(hash: string, password: string): Promise<PasswordVerification>;
  /** Spends the same time as a real verification, for unknown users (no timing oracle). */
  verifyDummy(password: string): Promise<void>;
  /** Hashes waiting for a slot, for the metrics. */
  readonly queueDepth: number;
}

/**
 * argon2id on libuv's thread pool (off the event loop), with at most `hashConcurrency` hashes at
 * once: a login flood queues here instead of exhausting memory (each hash holds m KiB) or
 * starving the pool that other calls need. The pool runs `hashNice` nice levels below the event
 * loop (hashing-priority.ts), so hashing yields the CPU to it.
 */
export function createPasswordHasher(config: Pick<Config, "argon2" | "hashConcurrency" | "hashNice">): PasswordHasher {
  const options = {
    type: argon2.argon2id,
    memoryCost: config.argon2.memoryKib,
    timeCost: config.argon2.iterations,
    parallelism: config.argon2.parallelism,
  } as const;
  const slots = createSemaphore(config.hashConcurrency);
  let dummyHash: Promise<string> | undefined;
  let poolLowered = config.hashNice === 0;
  // Called once a hash is queued, when libuv's pool has surely started.
  const lowerPool = <T>(hashing: Promise<T>): Promise<T> => {
    if (!poolLowered) poolLowered = lowerThreadPoolPriority(config.hashNice);
    return hashing;
  };

  const hash = (password: string) => slots.run(() => lowerPool(argon2.hash(password.normalize("NFKC"), options)));
  const verify = async (stored: string, password: string): Promise<PasswordVerification> => {
    const ok = await slots.run(() => lowerPool(argon2.verify(stored, password.normalize("NFKC")).catch(() => false)));
    return { ok, needsRehash: ok && argon2.needsRehash(stored, options) };
  };

  return {
    hash,
    verify,
    async verifyDummy(password) {
      dummyHash ??= hash("gatehouse dummy password for unknown users");
      await verify(await dummyHash, password);
    },
    get queueDepth() {
      return slots.waiting;
    },
  };
}

function createSemaphore(limit: number) {
  let active = 0;
  const queue: (() => void)[] = [];
  return {
    get waiting() {
      return queue.length;
    },
    async run<T>(task: () => Promise<T>): Promise<T> {
      if (active >= limit) await new Promise<void>((resolve) => queue.push(resolve));
      active++;
      try {
        return await task();
      } finally {
        active--;
        queue.shift()?.();
      }
    },
  };
}
