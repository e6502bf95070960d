import { dictionary } from "@zxcvbn-ts/language-common";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;

/**
 * Common passwords, from the MIT-licensed list zxcvbn-ts ships (about 49,000 entries, all
 * lower-case). Only those long enough to pass the length rule matter; a Set makes each check O(1).
 */
const COMMON_PASSWORDS: ReadonlySet<string> = new Set(
  dictionary["passwords-common"].filter((password) => [...password].length >= PASSWORD_MIN_LENGTH),
);

/** How many entries the common-password check knows (for tests and the README). */
export const COMMON_PASSWORD_COUNT = COMMON_PASSWORDS.size;

/**
 * NIST SP 800-63B: length and a block-list, no composition rules. The password is judged in the
 * form it is hashed in (NFKC), so its length is the length of what is stored. Throws
 * `invalid_argument` WEAK_PASSWORD, with a message saying which rule failed.
 */
export function checkPasswordPolicy(password: string, context: { username?: string; email?: string }): void {
  const normalised = password.normalize("NFKC");
  const length = [...normalised].length;
  if (length < PASSWORD_MIN_LENGTH || length > PASSWORD_MAX_LENGTH) {
    throw gatehouseError(
      "WEAK_PASSWORD",
      `A password must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters long.`,
    );
  }
  const folded = normalised.toLowerCase();
  const same = (other: string | undefined) => other !== undefined && other !== "" && folded === other.normalize("NFKC").toLowerCase().trim();
  if (same(context.username) || same(context.email)) {
    throw gatehouseError("WEAK_PASSWORD", "The password must not be the same as the username or the email address.");
  }
  if (COMMON_PASSWORDS.has(folded)) {
    throw gatehouseError("WEAK_PASSWORD", "This password is one of the most commonly used passwords; choose another.");
  }
}
