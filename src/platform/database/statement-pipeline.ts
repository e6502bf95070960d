import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type { Logger } from "../observability/logger.ts";
import { endedCallError } from "./call-scope.ts";
import { markPreparedStatements } from "./prepared-statements.ts";

/**
 * One connection on which short statements that stand alone are pipelined (node-postgres'
 * `pipeline` mode): each is sent without waiting for the answer to the one before, and one
 * PostgreSQL backend runs them back to back. The refresh-token rotation runs here: PostgreSQL
 * spends about a third less CPU on a rotation than when the same rotations are spread over
 * pooled connections, each of whose backends sleeps and wakes several times a statement
 * (docs/benchmarks.md, "The rotations pipelined on one connection").
 *
 * What a statement here does not get, unlike one on the pool:
 * - a transaction: each statement commits on its own, and `begin` is refused (it would take every
 *   statement queued behind it into the transaction);
 * - cancellation when its call ends: a statement already sent runs to its end, since a cancel
 *   request would stop whichever statement the backend is running. A call that has already ended
 *   sends nothing;
 * - long waits: a statement waiting for a row lock holds up every statement behind it, so the
 *   connection has a short `lock_timeout`. The statement that waited too long fails (55P03, read as
 *   "database unavailable") and the ones behind it go on.
 *
 * When the connection drops, the statements in flight fail with it and the next one opens a new
 * connection.
 */
export interface StatementPipeline {
  /** Runs single statements only; a transaction on it fails. */
  readonly db: Kysely<any>;
  /** Statements sent on the connection and not answered yet. */
  readonly inFlight: number;
  close(): Promise<void>;
}

const PIPELINE_LOCK_TIMEOUT_MS = 1_000;

const TRANSACTION_CONTROL = /^\s*(begin|start\s+transaction|savepoint|commit|rollback|end)\b/i;

const closedError = () => new Error("the statement pipeline is closed");

export function openStatementPipeline(options: {
  connectionString: string;
  statementTimeoutMs: number;
  lockTimeoutMs?: number;
  logger: Logger;
}): StatementPipeline {
  const log = options.logger.child({ component: "statement-pipeline" });
  let current: Promise<pg.Client> | undefined;
  let closed = false;
  const statements = { inFlight: 0 };

  const open = (): Promise<pg.Client> => {
    const client = new pg.Client({
      // The pool's URL, read whole; an application_name in it wins over this one, as in the pool.
      connectionString: options.connectionString,
      application_name: "gatehouse-pipeline",
      connectionTimeoutMillis: 5_000,
      statement_timeout: options.statementTimeoutMs,
      lock_timeout: options.lockTimeoutMs ?? PIPELINE_LOCK_TIMEOUT_MS,
      pipeline: true,
    } as pg.ClientConfig);
    const forget = () => {
      if (current === opened) current = undefined;
    };
    // Without a listener, a connection cut by the server would crash the process.
    client.on("error", (error) => {
      forget();
      log.warn({ err: error }, "statement pipeline connection lost; the next statement opens a new one");
    });
    client.on("end", forget);
    markPreparedStatements(client);
    guardQueries(client, forget, statements);
    Object.assign(client, { release: () => {} });
    const opened = client.connect().then(
      async () => {
        if (!closed) return client;
        await client.end().catch(() => {});
        throw closedError();
      },
      (error: unknown) => {
        forget();
        throw error;
      },
    );
    current = opened;
    return opened;
  };

  // Kysely asks its "pool" for a connection per statement and releases it after: every statement
  // gets the same pipelined client, and releasing it does nothing.
  const pool = {
    connect: (): Promise<pg.Client> => {
      if (closed) return Promise.reject(closedError());
      const ended = endedCallError();
      if (ended) return Promise.reject(ended);
      return current ?? open();
    },
    end: async () => {},
  };
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool: pool as unknown as pg.Pool }) });

  return {
    db,
    get inFlight() {
      return statements.inFlight;
    },
    async close() {
      closed = true;
      const client = await current?.catch(() => undefined);
      current = undefined;
      await client?.end().catch(() => {});
    },
  };
}

/**
 * Refuses transaction control, counts the statements in flight, and forgets the connection as
 * soon as a statement fails with an error that ends the session (FATAL: the backend was
 * terminated, the server is shutting down). The socket closes a moment later; a statement sent
 * in between would be lost with it.
 */
function guardQueries(client: pg.Client, forget: () => void, statements: { inFlight: number }): void {
  const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
  client.query = ((...args: unknown[]) => {
    const text = typeof args[0] === "string" ? args[0] : (args[0] as { text?: unknown } | undefined)?.text;
    if (typeof text === "string" && TRANSACTION_CONTROL.test(text)) {
      return Promise.reject(new Error("the statement pipeline runs single statements; transactions belong on the pool"));
    }
    statements.inFlight++;
    return query(...args).then(
      (result) => {
        statements.inFlight--;
        return result;
      },
      (error: unknown) => {
        statements.inFlight--;
        const severity = (error as { severity?: unknown } | undefined)?.severity;
        if (severity === "FATAL" || severity === "PANIC") forget();
        throw error;
      },
    );
  }) as typeof client.query;
}
