import type { CallerState } from "./credential-store.ts";

/**
 * The channel the database triggers notify (migration caller_state_notifications): `s:<session
 * id>` when a session is revoked, re-timed or deleted; `u:<user id>` when a user row changes
 * in any way (roles, disabled, profile, sign-in time) or is deleted.
 */
export const CALLER_STATE_CHANNEL = "gatehouse_caller_state";

/**
 * Live callers (session still standing, user enabled) by session id, so an authenticated call
 * whose session was seen recently needs no database round trip. Correctness rests on
 * invalidation, not on expiry:
 *
 * - every change that could end a session or alter a user is NOTIFYed by a trigger, and the
 *   entries it concerns are dropped when the notification arrives (on every instance);
 * - an answer read from the database is only stored if no notification at all arrived while it
 *   was being read (`generation`), so a read that raced a revocation is never kept;
 * - nothing is stored while the listener is down, and everything is dropped when it goes down;
 * - only live states are stored, and on every hit expiry is checked again against the clock,
 *   so an entry whose session has timed out is never served (the caller reads the database).
 *
 * The cost of caching is the delivery time of a notification between instances (milliseconds):
 * a call that reaches another instance within that time after a revocation commits can still
 * pass. On the instance that made the change there is no such window: mutating calls wait for
 * their own notifications before they answer (the caller-state sync interceptor).
 *
 * Entries also expire after `ttlMs`, a bound on any staleness the design above misses, and the
 * cache holds at most `maxEntries` (oldest dropped first).
 */
export interface CallerCache {
  /** A live caller stored for this session and user, if any. */
  get(sessionId: string, userId: string, nowMs: number): CallerState | undefined;
  /** Call before reading from the database; pass the value to `set`. */
  readonly generation: number;
  /** Stores a live caller read after `generation` was taken, unless anything changed since. */
  set(sessionId: string, state: CallerState, generation: number, nowMs: number): void;
  /** Applies one notification payload. */
  invalidate(payload: string): void;
  /** Drops everything (the listener lost its connection). */
  clear(): void;
  readonly size: number;
  /** Lookups answered from memory, and those that had to read the database. */
  readonly hits: number;
  readonly misses: number;
}

interface Entry {
  readonly state: CallerState;
  readonly storedAtMs: number;
}

export function createCallerCache(options: { isListening: () => boolean; ttlMs?: number; maxEntries?: number }): CallerCache {
  const ttlMs = options.ttlMs ?? 60_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const entries = new Map<string, Entry>();
  const sessionsByUser = new Map<string, Set<string>>();
  let generation = 0;
  let hits = 0;
  let misses = 0;

  const clear = () => {
    generation++;
    entries.clear();
    sessionsByUser.clear();
  };

  const remove = (sessionId: string) => {
    const entry = entries.get(sessionId);
    if (!entry) return;
    entries.delete(sessionId);
    const sessions = sessionsByUser.get(entry.state.user.id);
    sessions?.delete(sessionId);
    if (sessions?.size === 0) sessionsByUser.delete(entry.state.user.id);
  };

  return {
    get(sessionId, userId, nowMs) {
      const entry = entries.get(sessionId);
      if (entry && entry.state.user.id === userId && nowMs - entry.storedAtMs <= ttlMs && options.isListening()) {
        hits++;
        return entry.state;
      }
      misses++;
      if (entry) remove(sessionId);
      return undefined;
    },

    get generation() {
      return generation;
    },

    set(sessionId, state, takenGeneration, nowMs) {
      if (takenGeneration !== generation || !options.isListening()) return;
      if (state.session.revoke_time !== null || state.user.disabled) return;
      remove(sessionId);
      while (entries.size >= maxEntries) remove(entries.keys().next().value!);
      entries.set(sessionId, { state, storedAtMs: nowMs });
      let sessions = sessionsByUser.get(state.user.id);
      if (!sessions) sessionsByUser.set(state.user.id, (sessions = new Set()));
      sessions.add(sessionId);
    },

    invalidate(payload) {
      generation++;
      const id = payload.slice(2);
      if (payload.startsWith("s:")) remove(id);
      else if (payload.startsWith("u:")) for (const sessionId of [...(sessionsByUser.get(id) ?? [])]) remove(sessionId);
      else clear(); // not ours to understand: be safe
    },

    clear,

    get size() {
      return entries.size;
    },
    get hits() {
      return hits;
    },
    get misses() {
      return misses;
    },
  };
}
