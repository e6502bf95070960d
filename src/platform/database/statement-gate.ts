import type { RawBuilder } from "kysely";

/**
 * A check that one module runs inside another module's statement, so that checking and working
 * cost one round trip instead of two (e.g. counting a refresh against its rate limit, inside the
 * token rotation). The statement that carries a gate:
 * - puts `ctes` first in its WITH list (they name themselves, and must not clash with its own);
 * - does its work only where `admits` holds (a boolean SQL expression);
 * - selects from `verdict` (a one-row FROM item) `left join`ed to its own result, with `columns`
 *   first, so a row comes back whether or not the work was admitted, for the gate's owner to read.
 */
export interface StatementGate {
  readonly ctes: RawBuilder<unknown>;
  readonly admits: RawBuilder<unknown>;
  readonly verdict: RawBuilder<unknown>;
  readonly columns: RawBuilder<unknown>;
}

/** A statement that can carry a gate: it returns the gate's row (always) and its own result. */
export type GateCarrier<T> = (gate: StatementGate) => Promise<{ gateRow: Record<string, unknown>; result: T }>;
