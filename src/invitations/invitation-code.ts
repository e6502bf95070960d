import { createHash, randomBytes } from "node:crypto";

/** 256 random bits: far beyond guessing, and as long as a refresh token. */
const CODE_BYTES = 32;

/** A fresh invitation code, base64url: shown once to the admin, never stored. */
export function generateInvitationCode(): string {
  return randomBytes(CODE_BYTES).toString("base64url");
}

/**
 * The only form of a code the database ever holds. A plain SHA-256 is enough: the code is
 * 256 random bits, so there is nothing to brute-force that a slow hash would protect.
 */
export function hashInvitationCode(code: string): Buffer {
  return createHash("sha256").update(code, "utf8").digest();
}
