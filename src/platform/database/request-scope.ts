import type { HandlerContext, Interceptor } from "@connectrpc/connect";
import type { EntityManager, MikroORM } from "@mikro-orm/postgresql";
import type { Kysely } from "kysely";
import { kEntityManager, kKysely } from "../server/context.ts";
import { runInCall } from "./call-scope.ts";

/**
 * Gives every call its own EntityManager fork, so no identity map is shared between calls, and
 * binds the database work the call starts to its signal, so none of it outlives the call. The
 * fork is made on first use: the hot calls (refresh, GetMe, Introspect) run plain Kysely
 * statements and never need one.
 */
export function createRequestScopeInterceptor(orm: MikroORM): Interceptor {
  return (next) => (req) => {
    let em: EntityManager | undefined;
    req.contextValues.set(kEntityManager, () => (em ??= orm.em.fork()));
    req.contextValues.set(kKysely, orm.em.getKysely());
    return runInCall(req.signal, () => next(req));
  };
}

/** The calling request's own EntityManager. */
export function entityManager(ctx: Pick<HandlerContext, "values">): EntityManager {
  const em = ctx.values.get(kEntityManager);
  if (!em) throw new Error("no EntityManager in this call's context; is the request-scope interceptor installed?");
  return em();
}

/** The Kysely the calling request's plain SQL statements (and their transactions) run on. */
export function callKysely(ctx: Pick<HandlerContext, "values">): Kysely<any> {
  const db = ctx.values.get(kKysely);
  if (!db) throw new Error("no database in this call's context; is the request-scope interceptor installed?");
  return db;
}
