import { createContextKey } from "@connectrpc/connect";
import type { Kysely } from "kysely";
import type { EntityManager } from "../database/orm.ts";

/** Where the call came from, as far as Gatehouse may believe it. */
export interface ClientInfo {
  readonly ipAddress: string;
  readonly userAgent: string;
}

/** Request-scoped values, set by interceptors and read by handlers with `ctx.values.get(...)`. */
export const kRequestId = createContextKey<string>("", { description: "request id" });
export const kClient = createContextKey<ClientInfo>({ ipAddress: "", userAgent: "" }, { description: "client" });
/** The pool's Kysely, bound to no transaction: what the call's plain SQL statements run on. */
export const kKysely = createContextKey<Kysely<any> | undefined>(undefined, { description: "Kysely of the pool" });
/** The call's own EntityManager, forked on first use (most calls never touch the ORM). */
export const kEntityManager = createContextKey<(() => EntityManager) | undefined>(undefined, {
  description: "request-scoped EntityManager",
});
