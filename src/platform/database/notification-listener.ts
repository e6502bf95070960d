import { randomUUID } from "node:crypto";
import pg from "pg";
import type { Logger } from "../observability/logger.ts";

/**
 * One connection of its own that LISTENs on a PostgreSQL channel, for caches that must forget
 * what other writers changed (NOTIFY is sent by triggers, so every writer counts: any instance,
 * the CLI, an operator's SQL). PostgreSQL delivers notifications in commit order and only of
 * committed transactions.
 *
 * While the connection is down nothing can be trusted to arrive, so `listening` is false and the
 * subscriber is told to drop everything (`onReset`); the listener reconnects with a backoff. A
 * heartbeat round trip every `heartbeatMs` catches a connection that died silently.
 */
export interface NotificationListener {
  /** True while notifications arrive: only then may anything be cached on their strength. */
  readonly listening: boolean;
  /**
   * Resolves true once every notification committed before this call has been handed to
   * `onMessage`; false when that cannot be confirmed (not listening, or no answer in time; the
   * listener then resets, so the subscriber drops what it holds).
   */
  catchUp(): Promise<boolean>;
  close(): Promise<void>;
}

const SYNC_PREFIX = "sync:";

export function createNotificationListener(options: {
  connectionString: string;
  channel: string;
  onMessage: (payload: string) => void;
  onReset: () => void;
  logger: Logger;
  heartbeatMs?: number;
  catchUpTimeoutMs?: number;
}): NotificationListener {
  const { connectionString, channel, onMessage, onReset, logger } = options;
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  const catchUpTimeoutMs = options.catchUpTimeoutMs ?? 2_000;
  const log = logger.child({ component: "notifications", channel });
  // Our own sync markers carry this instance's nonce, so other instances' markers are ignored.
  const nonce = randomUUID();
  let client: pg.Client | undefined;
  let listening = false;
  let closed = false;
  let failures = 0;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let nextSync = 0;
  const waiting = new Map<string, () => void>();

  const reset = (reason: string, error?: unknown) => {
    const wasListening = listening;
    listening = false;
    clearInterval(heartbeatTimer);
    const old = client;
    client = undefined;
    old?.removeAllListeners("notification");
    old?.end().catch(() => {});
    onReset();
    for (const resolve of waiting.values()) resolve();
    waiting.clear();
    if (wasListening) log.warn({ err: error, reason }, "stopped listening for notifications; caching is off until the connection is back");
    if (!closed) scheduleReconnect();
  };

  const scheduleReconnect = () => {
    clearTimeout(reconnectTimer);
    const delay = Math.min(30_000, 250 * 2 ** Math.min(failures, 7));
    reconnectTimer = setTimeout(() => void connect(), delay);
    reconnectTimer.unref();
  };

  const connect = async () => {
    if (closed || client) return;
    // The pool's URL, read whole; an application_name in it wins over this one, as in the pool.
    const candidate = new pg.Client({ connectionString, application_name: "gatehouse-listen", keepAlive: true, connectionTimeoutMillis: 5_000 });
    client = candidate;
    candidate.on("error", (error) => {
      if (client === candidate) reset("connection error", error);
    });
    candidate.on("end", () => {
      if (client === candidate) reset("connection ended");
    });
    candidate.on("notification", (message) => {
      const payload = message.payload ?? "";
      if (payload.startsWith(SYNC_PREFIX)) {
        const resolve = waiting.get(payload);
        waiting.delete(payload);
        resolve?.();
        return;
      }
      onMessage(payload);
    });
    try {
      await candidate.connect();
      await candidate.query(`listen "${channel}"`);
      if (client !== candidate || closed) return;
      failures = 0;
      listening = true;
      heartbeatTimer = setInterval(() => {
        void catchUp().then((ok) => {
          if (!ok && listening) reset("heartbeat unanswered");
        });
      }, heartbeatMs);
      heartbeatTimer.unref();
      log.debug("listening for notifications");
    } catch (error) {
      failures++;
      if (client === candidate) {
        client = undefined;
        candidate.end().catch(() => {});
        if (failures === 1) log.warn({ err: error }, "could not listen for notifications; caching is off until it can");
        if (!closed) scheduleReconnect();
      }
    }
  };

  const catchUp = async (): Promise<boolean> => {
    const current = client;
    if (!listening || !current) return false;
    const marker = `${SYNC_PREFIX}${nonce}:${nextSync++}`;
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<boolean>((resolve) => {
      waiting.set(marker, () => resolve(client === current && listening));
      timer = setTimeout(() => resolve(false), catchUpTimeoutMs);
      timer.unref();
    });
    try {
      await current.query("select pg_notify($1, $2)", [channel, marker]);
    } catch (error) {
      clearTimeout(timer);
      waiting.delete(marker);
      if (client === current) reset("sync failed", error);
      return false;
    }
    // The query's answer may come before or after the marker; the marker is what settles it.
    const ok = await arrived;
    clearTimeout(timer);
    waiting.delete(marker);
    if (!ok && client === current) reset("sync unanswered");
    return ok;
  };

  void connect();

  return {
    get listening() {
      return listening;
    },
    catchUp,
    async close() {
      closed = true;
      clearTimeout(reconnectTimer);
      clearInterval(heartbeatTimer);
      listening = false;
      const old = client;
      client = undefined;
      for (const resolve of waiting.values()) resolve();
      waiting.clear();
      await old?.end().catch(() => {});
    },
  };
}
