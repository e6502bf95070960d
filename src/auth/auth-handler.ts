import type { ServiceImpl } from "@connectrpc/connect";
import type { AuthService } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import { notBuiltYet } from "../platform/server/unimplemented.ts";

/** Wire ↔ domain for gatehouse.auth.v1.AuthService. */
export function createAuthHandler(): ServiceImpl<typeof AuthService> {
  return {
    register: () => notBuiltYet("Register"),
    login: () => notBuiltYet("Login"),
    refresh: () => notBuiltYet("Refresh"),
    logout: () => notBuiltYet("Logout"),
    logoutAll: () => notBuiltYet("LogoutAll"),
    getMe: () => notBuiltYet("GetMe"),
    changePassword: () => notBuiltYet("ChangePassword"),
    listSessions: () => notBuiltYet("ListSessions"),
    revokeSession: () => notBuiltYet("RevokeSession"),
    introspect: () => notBuiltYet("Introspect"),
  };
}
