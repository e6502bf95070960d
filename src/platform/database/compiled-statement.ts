import { CompiledQuery, type Kysely, type QueryResult, type RawBuilder } from "kysely";

/**
 * Statements on the hot paths (the token rotation, the rate-limit reservation) are written once
 * with Kysely's `sql` tag, but with placeholders (slots) where their values go, and compiled to
 * SQL text on first use. Each call then only binds its values to that text.
 *
 * Building and compiling the template on every call cost more than the rest of the statement's
 * JavaScript: a sixth of the memory a refresh allocated, and a fresh SQL string each time that the
 * driver then had to flatten and hash to find its prepared statement (docs/benchmarks.md). The
 * text of a compiled statement is one constant string.
 */

/** A placeholder for one value of a compiled statement. */
class Slot {
  readonly set: SlotSet<object>;
  readonly name: string;
  constructor(set: SlotSet<object>, name: string) {
    this.set = set;
    this.name = name;
  }
}

/** The placeholders of one statement (or of one part of it, such as a StatementGate) and how to bind them. */
export interface SlotSet<V extends object> {
  /** One placeholder per value, to interpolate in the statement's `sql` template like the value itself. */
  readonly $: { readonly [K in keyof V]-?: unknown };
  /** A call's values for these placeholders. */
  bind(values: V): Binding;
}

export interface Binding {
  readonly set: SlotSet<object>;
  readonly values: object;
}

export function slots<V extends object>(): SlotSet<V> {
  const made = new Map<string, Slot>();
  const set: SlotSet<V> = {
    $: new Proxy({} as SlotSet<V>["$"], {
      get(_, name) {
        if (typeof name !== "string") return undefined;
        let slot = made.get(name);
        if (!slot) made.set(name, (slot = new Slot(set as SlotSet<object>, name)));
        return slot;
      },
    }),
    bind: (values) => ({ set: set as SlotSet<object>, values }),
  };
  return set;
}

export interface CompiledStatement<Row> {
  /** Runs the statement with every slot it holds bound by one of `bindings`. */
  execute(db: Kysely<any>, ...bindings: Binding[]): Promise<QueryResult<Row>>;
}

/**
 * A statement compiled once, from `build`'s template, when it first runs. Every value in the
 * template must be a slot: a plain value would be compiled into it and bound to every later call.
 */
export function compiledStatement<Row>(build: () => RawBuilder<Row>): CompiledStatement<Row> {
  let compiled: { text: string; slots: Slot[] } | undefined;
  return {
    async execute(db, ...bindings) {
      compiled ??= compile(build(), db);
      const parameters = compiled.slots.map((slot) => bindSlot(slot, bindings));
      return db.executeQuery<Row>(CompiledQuery.raw(compiled.text, parameters));
    },
  };
}

function compile(template: RawBuilder<unknown>, db: Kysely<any>): { text: string; slots: Slot[] } {
  const { sql, parameters } = template.compile(db);
  const slots = parameters.map((parameter, i) => {
    if (!(parameter instanceof Slot)) throw new Error(`compiled statement: parameter $${i + 1} is a value, not a slot: ${sql}`);
    return parameter;
  });
  return { text: sql, slots };
}

function bindSlot(slot: Slot, bindings: Binding[]): unknown {
  for (const binding of bindings) {
    if (binding.set !== slot.set) continue;
    if (!(slot.name in binding.values)) break;
    const value = (binding.values as Record<string, unknown>)[slot.name];
    // What node-postgres would send for a Date, an instant with its offset, without the cost of
    // its formatting (every timestamp column is timestamptz).
    return value instanceof Date ? value.toISOString() : value;
  }
  throw new Error(`compiled statement: no value bound for slot "${slot.name}"`);
}
