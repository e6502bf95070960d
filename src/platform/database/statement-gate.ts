import type { RawBuilder } from "kysely";
import { compiledStatement, type Binding, type CompiledStatement } from "./compiled-statement.ts";

/**
 * A check that one module runs inside another module's statement, so that checking and working
 * cost one round trip instead of two (e.g. counting a refresh against its rate limit, inside the
 * token rotation). The statement that carries a gate:
 * - puts `ctes` first in its WITH list (they name themselves, and must not clash with its own);
 * - does its work only where `admits` holds (a boolean SQL expression);
 * - selects from `verdict` (a one-row FROM item) `left join`ed to its own result, with `columns`
 *   first, so a row comes back whether or not the work was admitted, for the gate's owner to read.
 *
 * The parts are templates with slots (compiled-statement.ts), the same objects on every call of
 * one kind of gate, so a carrier compiles its statement once per kind (`gatedStatements`).
 */
export interface GateSql {
  readonly ctes: RawBuilder<unknown>;
  readonly admits: RawBuilder<unknown>;
  readonly verdict: RawBuilder<unknown>;
  readonly columns: RawBuilder<unknown>;
}

export interface StatementGate {
  readonly sql: GateSql;
  /** This call's values for the slots of `sql`. */
  readonly binding: Binding;
}

/** A statement that can carry a gate: it returns the gate's row (always) and its own result. */
export type GateCarrier<T> = (gate: StatementGate) => Promise<{ gateRow: Record<string, unknown>; result: T }>;

/** A carrier's statement for each kind of gate, compiled once per kind. */
export function gatedStatements<Row>(build: (gate: GateSql) => RawBuilder<Row>): (gate: GateSql) => CompiledStatement<Row> {
  const byGate = new WeakMap<GateSql, CompiledStatement<Row>>();
  return (gate) => {
    let statement = byGate.get(gate);
    if (!statement) byGate.set(gate, (statement = compiledStatement(() => build(gate))));
    return statement;
  };
}
