import { AsyncLocalStorage } from "node:async_hooks";
import { connect as connectSocket, type Socket } from "node:net";
import type pg from "pg";

/**
 * Ties database work to the call that started it, so that no query outlives its call: when the
 * call's signal aborts (its deadline, the server's cap, or the client going away), the query it
 * is running is cancelled on the server, a connection it is still waiting for is given back, and
 * its connection runs nothing more but a ROLLBACK. A transaction cut short this way is rolled
 * back whole, never committed after its caller has been told it failed.
 *
 * The call travels in an AsyncLocalStorage set by the request-scope interceptor, so every query
 * path (MikroORM, the kysely `sql` tag, transactions) is covered at the one place they meet: the
 * pool's `connect()`. The one exception is the statement pipeline (statement-pipeline.ts), whose
 * statements are not cancelled once sent; it sends nothing for a call that has already ended.
 */
const calls = new AsyncLocalStorage<CallScope>();

/** The connections a call holds now (usually one), and its checkouts still waiting for one. */
interface CallWork {
  readonly held: Set<pg.PoolClient>;
  readonly waiting: Set<() => void>;
}

/**
 * One call, as its database work sees it. A call that never touches the database costs this one
 * small object; one that does adds a single abort listener to its signal, however many
 * connections it takes. (A listener added and removed per checkout, and a wrapper around each
 * checkout's release, had the server promote ~45 % more of every refresh to the old generation:
 * docs/benchmarks.md.)
 */
class CallScope {
  readonly signal: AbortSignal;
  #work: CallWork | undefined;

  constructor(signal: AbortSignal) {
    this.signal = signal;
  }

  /** The call's database work; the first ask starts listening for the call's end. */
  work(): CallWork {
    if (!this.#work) {
      const work: CallWork = (this.#work = { held: new Set(), waiting: new Set() });
      this.signal.addEventListener(
        "abort",
        () => {
          for (const client of work.held) cancelRunningQuery(client as unknown as ClientInternals);
          for (const stop of work.waiting) stop();
          work.waiting.clear();
        },
        { once: true },
      );
    }
    return this.#work;
  }
}

/** Runs `work` on behalf of a call whose end is `signal`. */
export function runInCall<T>(signal: AbortSignal, work: () => T): T {
  return calls.run(new CallScope(signal), work);
}

/**
 * Runs `work` on behalf of no call: for work one call starts but others share (a cache reload
 * they all await), which must not be cut short when that one call ends.
 */
export function outsideCall<T>(work: () => T): T {
  return calls.exit(work);
}

/**
 * For database work that is not bound to a connection of the pool (the statement pipeline): the
 * error to fail with when the current call has already ended, undefined while it runs or outside
 * any call.
 */
export function endedCallError(): Error | undefined {
  return calls.getStore()?.signal.aborted ? callEnded() : undefined;
}

/** PostgreSQL's query_canceled code, so the error maps like a cancelled statement. */
const QUERY_CANCELED = "57014";

function callEnded(): Error {
  return Object.assign(new Error("the call ended; its database work was stopped"), { code: QUERY_CANCELED });
}

/** What pg keeps about a connection that a cancel request needs (undocumented but stable members). */
interface ClientInternals {
  processID: number | null;
  secretKey: number | null;
  host: string;
  port: number;
  _getActiveQuery?: () => unknown;
}

/** Installs the call binding on a pg pool (MikroORM's `onPoolCreated`). */
export function bindPoolToCalls(pool: pg.Pool): void {
  const original = pool.connect.bind(pool) as (callback?: unknown) => Promise<pg.PoolClient> | undefined;
  const connect = () => original() as Promise<pg.PoolClient>;
  /** The call each checked-out connection works for. */
  const holders = new WeakMap<pg.PoolClient, CallScope>();
  const guarded = new WeakSet<pg.PoolClient>();

  const guardQueries = (client: pg.PoolClient): void => {
    if (guarded.has(client)) return;
    guarded.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    client.query = ((...args: unknown[]) => {
      const text = typeof args[0] === "string" ? args[0] : undefined;
      if (holders.get(client)?.signal.aborted && text !== undefined && !/^\s*rollback\b/i.test(text)) {
        const callback = args.find((arg) => typeof arg === "function") as ((error: Error) => void) | undefined;
        if (callback) return void process.nextTick(callback, callEnded());
        return Promise.reject(callEnded());
      }
      return query(...args);
    }) as typeof client.query;
  };

  // Every release, however it is made (client.release(), pool.query(), an error), passes here
  // before the connection is idle again.
  pool.on("release", (_error: Error | undefined, client: pg.PoolClient) => {
    holders.get(client)?.work().held.delete(client);
    holders.delete(client);
  });

  const hold = (client: pg.PoolClient, scope: CallScope): pg.PoolClient => {
    guardQueries(client);
    holders.set(client, scope);
    scope.work().held.add(client);
    return client;
  };

  const checkout = (scope: CallScope): Promise<pg.PoolClient> => {
    if (scope.signal.aborted) return Promise.reject(callEnded());
    const { waiting } = scope.work();
    return new Promise<pg.PoolClient>((resolve, reject) => {
      const pending = connect();
      const stop = () => {
        reject(callEnded());
        pending.then((client) => client.release(), () => {});
      };
      waiting.add(stop);
      pending.then(
        (client) => {
          if (!waiting.delete(stop)) return; // the call ended first: `stop` gives it back
          resolve(hold(client, scope));
        },
        (error: unknown) => {
          waiting.delete(stop);
          reject(error);
        },
      );
    });
  };

  // kysely calls connect(); pg's own pool.query() calls connect(callback). Both are bound.
  pool.connect = ((callback?: (error: Error | undefined, client?: pg.PoolClient, done?: (release?: unknown) => void) => void) => {
    const scope = calls.getStore();
    if (scope === undefined) return original(callback);
    const checkedOut = checkout(scope);
    if (typeof callback !== "function") return checkedOut;
    checkedOut.then(
      (client) => callback(undefined, client, (error) => client.release(error as Error | boolean | undefined)),
      (error: Error) => callback(error, undefined, () => {}),
    );
    return undefined;
  }) as typeof pool.connect;
}

/**
 * Sends PostgreSQL a CancelRequest for the connection's running statement (protocol §53.2.9): a
 * fresh socket, 16 bytes, no authentication, no pool slot. Nothing happens if none is running.
 */
function cancelRunningQuery(client: ClientInternals): void {
  const { processID, secretKey, host, port } = client;
  if (!processID || secretKey === null || client._getActiveQuery?.() == null) return;
  const message = Buffer.alloc(16);
  message.writeInt32BE(16, 0);
  message.writeInt32BE(80877102, 4);
  message.writeInt32BE(processID, 8);
  message.writeInt32BE(secretKey, 12);
  const socket: Socket = host.startsWith("/") ? connectSocket({ path: `${host}/.s.PGSQL.${port}` }) : connectSocket({ host, port });
  socket.setTimeout(5_000, () => socket.destroy());
  socket.on("error", () => socket.destroy());
  socket.once("connect", () => socket.end(message));
}
