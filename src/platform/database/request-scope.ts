import type { HandlerContext, Interceptor } from "@connectrpc/connect";
import type { EntityManager, MikroORM } from "@mikro-orm/postgresql";
import { kEntityManager } from "../server/context.ts";
import { runInCall } from "./call-scope.ts";

/**
 * Gives every call its own EntityManager fork, so no identity map is shared between calls, and
 * binds the database work the call starts to its signal, so none of it outlives the call.
 */
export function createRequestScopeInterceptor(orm: MikroORM): Interceptor {
  return (next) => (req) => {
    req.contextValues.set(kEntityManager, orm.em.fork());
    return runInCall(req.signal, () => next(req));
  };
}

/** The calling request's own EntityManager. */
export function entityManager(ctx: HandlerContext): EntityManager {
  const em = ctx.values.get(kEntityManager);
  if (!em) throw new Error("no EntityManager in this call's context; is the request-scope interceptor installed?");
  return em;
}
