import { gatehouseError } from "../platform/errors/gatehouse-error.ts";

const USERNAME = /^[a-z0-9._-]{3,32}$/;

/**
 * The one form a username is stored and compared in: NFKC (so full-width `ａｄｍｉｎ` is `admin`)
 * and lower-case. Anything outside `[a-z0-9._-]{3,32}` afterwards is refused, which also keeps
 * `@` out, so a username can never equal an email address.
 */
export function normaliseUsername(raw: string): string {
  const username = raw.normalize("NFKC").toLowerCase();
  if (!USERNAME.test(username)) {
    throw gatehouseError(
      "VALIDATION_FAILED",
      "A username must be 3 to 32 characters: letters a-z, digits, dots, underscores or hyphens.",
      { metadata: { field: "username" } },
    );
  }
  return username;
}

/** Emails are stored trimmed and lower-cased, so the unique index is case-insensitive by construction. */
export function normaliseEmail(raw: string): string {
  return raw.trim().normalize("NFKC").toLowerCase();
}

/** Lenient form for looking a sign-in identifier up: never throws, so bad input looks like an unknown user. */
export function lookupUsername(raw: string): string {
  return raw.normalize("NFKC").toLowerCase();
}
