import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import type { UserRecord } from "../users/user-mapper.ts";

/**
 * Who is calling, as established by the authentication interceptor from a verified access token
 * and the user's CURRENT row (roles and disabled state come from the database, not the token).
 */
export interface Caller {
  readonly userId: string;
  readonly sessionId: string;
  readonly roles: readonly string[];
  readonly isAdmin: boolean;
  /** The user's row as read (or cached) when the call was authenticated. */
  readonly user: UserRecord;
}

export const kCaller = createContextKey<Caller | undefined>(undefined, { description: "authenticated caller" });

/** The caller of a protected method; the interceptor has already refused calls without one. */
export function requireCaller(ctx: HandlerContext): Caller {
  const caller = ctx.values.get(kCaller);
  if (!caller) throw gatehouseError("TOKEN_MISSING");
  return caller;
}

/** The caller, who must be an administrator. Check this before looking anything up. */
export function requireAdmin(ctx: HandlerContext): Caller {
  const caller = requireCaller(ctx);
  if (!caller.isAdmin) throw gatehouseError("ADMIN_REQUIRED");
  return caller;
}
