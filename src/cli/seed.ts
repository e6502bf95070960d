import { randomBytes } from "node:crypto";
import type { Writable } from "node:stream";
import { sql } from "kysely";
import { createPasswordHasher } from "../passwords/password-hasher.ts";
import type { Config } from "../platform/config/config.ts";
import type { Logger } from "../platform/observability/logger.ts";
import { sqlExecutor, type Db } from "../users/transaction.ts";
import { parseFlags, UsageError } from "./arguments.ts";
import { openCommandDatabase } from "./database.ts";

/** Every seeded user signs in with this; seeded users are for benchmarks, never for a real server. */
export const SEED_PASSWORD = "gatehouse seeded user";

export const SEED_USAGE = `Usage: gatehouse seed [--count <n>] [--prefix <text>]

Creates <n> fake users (default 1000) for benchmarks, in batches of 5,000 rows per INSERT, all
with the role "user" and the password "${SEED_PASSWORD}". Usernames are <prefix><number>
(default prefix "seed-" plus 4 random characters and "-"), emails <username>@example.test.
Never run it against a server with real users.`;

const FIRST_NAMES = ["Ada", "Alan", "Barbara", "Claude", "Donald", "Edsger", "Frances", "Grace", "Hedy", "Ivan", "Joan", "John", "Katherine", "Ken", "Leslie", "Margaret", "Niklaus", "Radia", "Sophie", "Tim"];
const LAST_NAMES = ["Allen", "Berners-Lee", "Dijkstra", "Hamilton", "Hopper", "Johnson", "Kay", "Knuth", "Lamarr", "Liskov", "Lovelace", "Perlman", "Ritchie", "Shannon", "Sutherland", "Thompson", "Turing", "Wilson", "Wing", "Wirth"];

export const SEED_BATCH_SIZE = 5_000;
const MAX_COUNT = 10_000_000;

export interface SeedOptions {
  count: number;
  /** Usernames are `${prefix}${n}`, n from 1; at most 32 characters in all. */
  prefix: string;
  /** One argon2id hash, computed once and shared by every seeded user. */
  passwordHash: string;
  batchSize?: number;
  onProgress?: (inserted: number) => void;
}

/**
 * Inserts fake users in batches: each batch is one INSERT … SELECT over generate_series, so
 * PostgreSQL builds the rows itself and the client sends a few parameters per 5,000 users.
 * `create_time` is clock_timestamp(), distinct per row, as real sign-ups would be.
 */
export async function seedUsers(db: Db, options: SeedOptions): Promise<number> {
  const batchSize = options.batchSize ?? SEED_BATCH_SIZE;
  let inserted = 0;
  for (let from = 1; from <= options.count; from += batchSize) {
    const to = Math.min(options.count, from + batchSize - 1);
    const result = await sql`INSERT INTO users (username, email, password_hash, first_name, last_name, roles, create_time, update_time)
      SELECT ${options.prefix} || n, ${options.prefix} || n || '@example.test', ${options.passwordHash},
        (${FIRST_NAMES}::text[])[1 + n % ${FIRST_NAMES.length}],
        (${LAST_NAMES}::text[])[1 + (n / ${FIRST_NAMES.length}) % ${LAST_NAMES.length}],
        ARRAY['user']::text[], clock_timestamp(), clock_timestamp()
      FROM generate_series(${from}::int, ${to}::int) AS n`.execute(db);
    inserted += Number(result.numAffectedRows ?? 0);
    options.onProgress?.(inserted);
  }
  // What autovacuum would do a little later, at once: fresh statistics so the planner picks the
  // list indexes, and the GIN index's pending list merged so role lookups do not scan it.
  await sql`VACUUM (ANALYZE) users`.execute(db);
  return inserted;
}

/** `gatehouse seed`: returns the exit code. */
export async function runSeed(
  args: readonly string[],
  config: Config,
  logger: Logger,
  io: { stdout: Writable; stderr: Writable & { isTTY?: boolean } } = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  let count: number;
  let prefix: string;
  try {
    const flags = parseFlags(args, ["count", "prefix"]);
    const countText = flags.get("count") ?? "1000";
    count = /^\d+$/.test(countText) ? Number(countText) : Number.NaN;
    if (!Number.isSafeInteger(count) || count < 1 || count > MAX_COUNT) {
      throw new UsageError(`--count must be a whole number from 1 to ${MAX_COUNT}`);
    }
    prefix = flags.get("prefix") ?? `seed-${randomBytes(3).toString("hex").slice(0, 4)}-`;
    if (!/^[a-z0-9._-]*$/.test(prefix) || prefix.length + String(count).length > 32 || prefix.length + String(count).length < 3) {
      throw new UsageError("--prefix must be letters a-z, digits, '.', '_' or '-', short enough that usernames stay within 32 characters");
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`gatehouse seed: ${error.message}\n\n${SEED_USAGE}\n`);
    return 2;
  }

  const database = await openCommandDatabase(config, logger, io.stderr, "seed");
  if (!database) return 1;
  const { orm, embedded } = database;
  try {
    const passwordHash = await createPasswordHasher(config).hash(SEED_PASSWORD);
    const started = performance.now();
    let lastReport = 0;
    const inserted = await seedUsers(sqlExecutor(orm.em.fork()), {
      count,
      prefix,
      passwordHash,
      onProgress: (done) => {
        const now = performance.now();
        if (done < count && now - lastReport < 250) return;
        lastReport = now;
        const rate = Math.round(done / ((now - started) / 1000));
        const line = `seeded ${done.toLocaleString("en")} / ${count.toLocaleString("en")} users (${rate.toLocaleString("en")}/s)`;
        io.stderr.write(io.stderr.isTTY ? `\r${line}` : `${line}\n`);
      },
    });
    if (io.stderr.isTTY) io.stderr.write("\n");
    const seconds = (performance.now() - started) / 1000;
    io.stdout.write(
      `Created ${inserted.toLocaleString("en")} users in ${seconds.toFixed(1)} s (${Math.round(inserted / seconds).toLocaleString("en")} users/s): ` +
        `usernames ${prefix}1 … ${prefix}${count}, password "${SEED_PASSWORD}".\n`,
    );
    return 0;
  } catch (error) {
    if ((error as { code?: unknown }).code === "23505") {
      io.stderr.write(`gatehouse seed: users with the prefix "${prefix}" exist already; choose another --prefix\n`);
      return 1;
    }
    throw error;
  } finally {
    await orm.close();
    await embedded?.stop();
  }
}
