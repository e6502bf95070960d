import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/**
 * Failed password checks of one sign-in identifier from one client address (see
 * login-throttle.ts). `identifierKey` is a SHA-256 digest of what was typed, never the text.
 * `failures` restarts when the last failure is older than GATEHOUSE_LOGIN_FAILURE_WINDOW and the
 * row goes when the password is right.
 */
export const LoginFailureEntity = defineEntity({
  name: "LoginFailure",
  tableName: "login_failures",
  properties: {
    identifierKey: p.type("bytea").columnType("bytea").primary(),
    address: p.string().length(64).primary(),
    failures: p.integer().default(0),
    lastFailureTime: p.datetime().index("login_failures_last_failure_time_idx"),
  },
});

export type LoginFailure = InferEntity<typeof LoginFailureEntity>;
