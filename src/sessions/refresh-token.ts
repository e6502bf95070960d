import { hash, randomBytes } from "node:crypto";

/** 256 random bits, base64url without padding: 43 characters. */
const REFRESH_TOKEN = /^[A-Za-z0-9_-]{43}$/;

export interface NewRefreshToken {
  /** Given to the client once; never stored. */
  readonly token: string;
  /** What the database keeps: SHA-256 of the token. A dump of the table yields no usable token. */
  readonly hash: Buffer;
}

export function newRefreshToken(): NewRefreshToken {
  const token = randomBytes(32).toString("base64url");
  return { token, hash: hashRefreshToken(token)! };
}

/**
 * The stored form of a presented refresh token, or undefined when it cannot be one of ours
 * (so junk never reaches the database). A fast hash is right here: the token has 256 bits of
 * entropy, so there is nothing to slow a guesser down for.
 */
export function hashRefreshToken(token: string): Buffer | undefined {
  if (!REFRESH_TOKEN.test(token)) return undefined;
  return hash("sha256", token, "buffer");
}
