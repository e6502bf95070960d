import { createContextKey } from "@connectrpc/connect";
import type { EntityManager } from "../database/orm.ts";

/** Where the call came from, as far as Gatehouse may believe it. */
export interface ClientInfo {
  readonly ipAddress: string;
  readonly userAgent: string;
}

/** Request-scoped values, set by interceptors and read by handlers with `ctx.values.get(...)`. */
export const kRequestId = createContextKey<string>("", { description: "request id" });
export const kClient = createContextKey<ClientInfo>({ ipAddress: "", userAgent: "" }, { description: "client" });
export const kEntityManager = createContextKey<EntityManager | undefined>(undefined, {
  description: "request-scoped EntityManager",
});
