import type { ServiceImpl } from "@connectrpc/connect";
import type { UserService } from "../../gen/gatehouse/user/v1/user_pb.js";
import { notBuiltYet } from "../platform/server/unimplemented.ts";

/** Wire ↔ domain for gatehouse.user.v1.UserService. */
export function createUserHandler(): ServiceImpl<typeof UserService> {
  return {
    createUser: () => notBuiltYet("CreateUser"),
    getUser: () => notBuiltYet("GetUser"),
    listUsers: () => notBuiltYet("ListUsers"),
    updateUser: () => notBuiltYet("UpdateUser"),
    deleteUser: () => notBuiltYet("DeleteUser"),
    setPassword: () => notBuiltYet("SetPassword"),
    createInvitation: () => notBuiltYet("CreateInvitation"),
    listInvitations: () => notBuiltYet("ListInvitations"),
    deleteInvitation: () => notBuiltYet("DeleteInvitation"),
  };
}
