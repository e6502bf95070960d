import assert from "node:assert/strict";
import { Code, type Client } from "@connectrpc/connect";
import type { AuthService, TokenPair } from "../../gen/gatehouse/auth/v1/auth_pb.js";
import type { User } from "../../gen/gatehouse/user/v1/user_pb.js";
import { bearer, rejects } from "../support/rpc-assertions.ts";

export { bearer, rejects };

/** A strong-enough password nobody else uses in these tests. */
export const PASSWORD = "violet tractor sings at dawn";

let counter = 0;
/** A username and email no other test of this process has used. */
export function uniqueIdentity(prefix = "user") {
  counter++;
  const username = `${prefix}${process.pid}x${counter}`.slice(0, 32);
  return { username, email: `${username}@example.com` };
}

export interface RegisteredUser {
  readonly user: User;
  readonly tokens: TokenPair;
  readonly username: string;
  readonly email: string;
  readonly password: string;
}

/** Registers a fresh user through the API and returns it with its first token pair. */
export async function registerUser(auth: Client<typeof AuthService>, overrides: { password?: string; prefix?: string } = {}): Promise<RegisteredUser> {
  const { username, email } = uniqueIdentity(overrides.prefix);
  const password = overrides.password ?? PASSWORD;
  const res = await auth.register({ username, email, password, firstName: "Test", lastName: "User" });
  assert.ok(res.user && res.tokens, "Register returns the user and tokens");
  return { user: res.user, tokens: res.tokens, username, email, password };
}

export const unauthenticated = (call: Promise<unknown>, reason: string) => rejects(call, Code.Unauthenticated, reason);
