import { sql, type Kysely } from "kysely";

/**
 * The one source of "now" for every expiry decision (tokens, sessions, invitations, keys).
 * Tests pass a clock they can move instead of sleeping.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** How often a database clock measures its offset again. */
const SYNC_INTERVAL_MS = 5 * 60_000;

export interface DatabaseClock extends Clock {
  /** Measures the offset to the database's clock; until the first sync, the system clock is used. */
  sync(): Promise<void>;
  /** The last measured offset (database minus this host), in ms. */
  readonly offsetMs: number;
  stop(): void;
}

/**
 * The system clock corrected to the database server's clock, so that every instance decides
 * expiry by one clock even when a host's clock is minutes off (THREATS: "a clock 5 minutes off
 * on one instance"). The offset is measured at start and every few minutes, halving the round
 * trip; a failed measurement keeps the last offset.
 */
export function createDatabaseClock(readDatabaseTime: () => Promise<Date>, onError: (error: unknown) => void): DatabaseClock {
  let offsetMs = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const sync = async () => {
    const sent = Date.now();
    const databaseTime = await readDatabaseTime();
    const received = Date.now();
    offsetMs = databaseTime.getTime() - (sent + received) / 2;
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      sync().catch(onError).finally(schedule);
    }, SYNC_INTERVAL_MS);
    timer.unref();
  };
  schedule();

  return {
    now: () => new Date(Date.now() + offsetMs),
    sync,
    get offsetMs() {
      return offsetMs;
    },
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** The database server's current time (`clock_timestamp()`, not the transaction's start). */
export async function readDatabaseTime(db: Kysely<any>): Promise<Date> {
  const { rows } = await sql<{ now: Date | string }>`select clock_timestamp() as now`.execute(db);
  const value = rows[0]!.now;
  return value instanceof Date ? value : new Date(value);
}
