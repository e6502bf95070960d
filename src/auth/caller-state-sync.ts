import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { reasonOf } from "../platform/errors/gatehouse-error.ts";

/** Methods that never end a session nor change a user another session belongs to. */
const LEAVES_CALLERS_ALONE = new Set([
  ...["Register", "Refresh", "GetMe", "ListSessions", "Introspect"].map((method) => `${AuthService.typeName}/${method}`),
  ...["CreateUser", "GetUser", "ListUsers", "CreateInvitation", "ListInvitations", "DeleteInvitation", "ListAuditEvents"].map(
    (method) => `${UserService.typeName}/${method}`,
  ),
]);
const REFRESH = `${AuthService.typeName}/Refresh`;

/**
 * Read-your-writes for the caller cache on this instance: a call that may have ended sessions
 * or changed users (logout, a password change, disabling a user, …) answers only after the
 * notifications of its own commits have reached this instance's cache, so the caller's next
 * call (here) is judged on the new state. A refresh that detected token reuse revoked its
 * session before failing, so it waits too. Without a listener (`catchUp` resolves false at
 * once) there is nothing cached to wait for.
 */
export function createCallerStateSyncInterceptor(catchUp: () => Promise<boolean>): Interceptor {
  return (next) => async (req) => {
    const procedure = `${req.service.typeName}/${req.method.name}`;
    if (req.service.typeName.startsWith("grpc.")) return next(req);
    try {
      const res = await next(req);
      if (!LEAVES_CALLERS_ALONE.has(procedure)) await catchUp();
      return res;
    } catch (error) {
      if (procedure === REFRESH && error instanceof ConnectError && reasonOf(error) === "REFRESH_TOKEN_REUSED") await catchUp();
      throw error;
    }
  };
}
