import type { Kysely } from "kysely";
import type { EntityManager } from "../platform/database/orm.ts";

/** A Kysely handle for raw SQL: the pool, or one open transaction. No schema typing is needed. */
export type Db = Kysely<unknown>;

/** Where raw SQL runs for this EntityManager: its open transaction if it has one, else its pool. */
export function sqlExecutor(em: EntityManager): Db {
  return em.getKysely() as unknown as Db;
}

/** PostgreSQL's "try again" answers: a deadlock victim (40P01) or a serialization failure (40001). */
function isRetryable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (code === "40P01" || code === "40001") return true;
    current = current.cause;
  }
  return false;
}

const ATTEMPTS = 3;

/**
 * Runs `work` in one transaction and retries it (from the start, on a fresh transaction) when
 * PostgreSQL picked it as a deadlock victim, so a rare lock cycle with another feature's
 * transaction costs a retry rather than an `internal` error.
 */
export async function inTransaction<T>(em: EntityManager, work: (db: Db) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await em.transactional((tx) => work(sqlExecutor(tx)));
    } catch (error) {
      if (attempt >= ATTEMPTS || !isRetryable(error)) throw error;
    }
  }
}
