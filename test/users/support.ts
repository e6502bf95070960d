import assert from "node:assert/strict";
import type { Client } from "@connectrpc/connect";
import type { UserService, User } from "../../gen/gatehouse/user/v1/user_pb.js";
import { startTestServer, type ProtocolName, type TestServer } from "../support/harness.ts";
import { bearer, rejects } from "../support/rpc-assertions.ts";

export { bearer, rejects };

/** The admin every users test server bootstraps from GATEHOUSE_BOOTSTRAP_ADMIN_*. */
export const ROOT = { username: "root", email: "root@example.com", password: "granite lantern quietly hums" };

/** The password of users these tests create. */
export const PASSWORD = "copper kettle under moonlight";

export const BOOTSTRAP_ENV = {
  GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL: ROOT.email,
  GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME: ROOT.username,
  GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD: ROOT.password,
};

/** A test server with the `root` admin bootstrapped and the extra roles `manager` and `driver`. */
export function startUsersServer(env: Record<string, string> = {}): Promise<TestServer> {
  return startTestServer({ ...BOOTSTRAP_ENV, GATEHOUSE_ROLES: "manager,driver", ...env });
}

/** Signs in with a username and password and returns the access token. */
export async function signIn(server: TestServer, username: string, password: string): Promise<string> {
  const { tokens } = await server.auth().login({ identifier: { case: "username", value: username }, password });
  assert.ok(tokens?.accessToken);
  return tokens.accessToken;
}

let counter = 0;
/** A username no other test of this process has used. */
export function uniqueName(prefix = "u"): string {
  counter++;
  return `${prefix}${process.pid.toString(36)}${counter}`.slice(0, 32);
}

export interface TestUser {
  readonly user: User;
  readonly password: string;
  /** An access token of a fresh session of this user. */
  readonly token: string;
}

/** Creates a user through CreateUser (as `adminToken`) and signs it in. */
export async function createUser(
  server: TestServer,
  adminToken: string,
  fields: { roles?: string[]; firstName?: string; lastName?: string; username?: string; email?: string } = {},
): Promise<TestUser> {
  const username = fields.username ?? uniqueName();
  const { user } = await server.users().createUser(
    {
      user: {
        username,
        email: fields.email ?? `${username}@example.com`,
        firstName: fields.firstName ?? "Test",
        lastName: fields.lastName ?? "User",
        roles: fields.roles ?? [],
      },
      password: PASSWORD,
    },
    bearer(adminToken),
  );
  assert.ok(user);
  return { user, password: PASSWORD, token: await signIn(server, user.username, PASSWORD) };
}

/** The protocols every rule is checked over: what curl sends, and what backend services use. */
export const RULE_PROTOCOLS: readonly ProtocolName[] = ["connect-json", "grpc"];

export type UsersClient = Client<typeof UserService>;
