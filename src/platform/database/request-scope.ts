import type { Interceptor } from "@connectrpc/connect";
import type { MikroORM } from "@mikro-orm/postgresql";
import { kEntityManager } from "../server/context.ts";

/** Gives every call its own EntityManager fork, so no identity map is shared between calls. */
export function createRequestScopeInterceptor(orm: MikroORM): Interceptor {
  return (next) => (req) => {
    req.contextValues.set(kEntityManager, orm.em.fork());
    return next(req);
  };
}
