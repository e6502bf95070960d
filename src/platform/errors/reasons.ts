import { Code } from "@connectrpc/connect";

/**
 * Every error reason Gatehouse returns (SPEC §6), with its code and the message a person sees
 * when the handler has nothing more specific to say.
 */
export const REASONS = {
  VALIDATION_FAILED: { code: Code.InvalidArgument, message: "The request is not valid." },
  PASSWORD_MISMATCH: { code: Code.InvalidArgument, message: "The password confirmation does not match the password." },
  WEAK_PASSWORD: { code: Code.InvalidArgument, message: "This password is too easy to guess; choose another." },
  INVALID_INVITATION: { code: Code.InvalidArgument, message: "This invitation code is not valid." },
  USERNAME_TAKEN: { code: Code.AlreadyExists, message: "This username is already taken." },
  EMAIL_TAKEN: { code: Code.AlreadyExists, message: "An account with this email address already exists." },
  INVALID_CREDENTIALS: { code: Code.Unauthenticated, message: "The sign-in details are not correct." },
  TOKEN_MISSING: { code: Code.Unauthenticated, message: "Sign in first: this call needs an access token." },
  TOKEN_INVALID: { code: Code.Unauthenticated, message: "The access token is not valid." },
  TOKEN_EXPIRED: { code: Code.Unauthenticated, message: "The access token has expired; refresh it and try again." },
  SESSION_REVOKED: { code: Code.Unauthenticated, message: "This session has ended; sign in again." },
  REFRESH_TOKEN_REUSED: {
    code: Code.Unauthenticated,
    message: "This refresh token was already used, so the session was ended for safety; sign in again.",
  },
  ADMIN_REQUIRED: { code: Code.PermissionDenied, message: "Only an administrator may do this." },
  ACCOUNT_DISABLED: { code: Code.PermissionDenied, message: "This account is disabled." },
  REGISTRATION_CLOSED: { code: Code.PermissionDenied, message: "Sign-up is closed on this server." },
  LAST_ADMIN: { code: Code.PermissionDenied, message: "This would leave the server without an administrator." },
  USER_NOT_FOUND: { code: Code.NotFound, message: "No such user." },
  SESSION_NOT_FOUND: { code: Code.NotFound, message: "No such session." },
  INVITATION_NOT_FOUND: { code: Code.NotFound, message: "No such invitation." },
  RATE_LIMITED: { code: Code.ResourceExhausted, message: "Too many attempts; wait a moment and try again." },
  DATABASE_UNAVAILABLE: { code: Code.Unavailable, message: "The service is temporarily unavailable; try again shortly." },
} as const satisfies Record<string, { code: Code; message: string }>;

export type Reason = keyof typeof REASONS;

/** The `domain` of every ErrorInfo Gatehouse sends. */
export const ERROR_DOMAIN = "gatehouse";
