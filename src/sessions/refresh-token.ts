import { hash, randomFillSync } from "node:crypto";

/** 256 random bits, base64url without padding: 43 characters. */
const REFRESH_TOKEN = /^[A-Za-z0-9_-]{43}$/;

export interface NewRefreshToken {
  /** Given to the client once; never stored. */
  readonly token: string;
  /** What the database keeps: SHA-256 of the token. A dump of the table yields no usable token. */
  readonly hash: Buffer;
}

export function newRefreshToken(): NewRefreshToken {
  const token = drawRandomBase64url();
  return { token, hash: hashRefreshToken(token)! };
}

/**
 * Randomness for refresh tokens, drawn from the CSPRNG 128 tokens at a time (as Node does for
 * randomUUID): a draw of 32 bytes cost a call into OpenSSL of ~5 µs, several times that on a
 * busy VM, and one is made on every refresh and sign-in. Each token's bytes are zeroed once they
 * are taken, so the pool only ever holds tokens not yet issued.
 */
const POOL = Buffer.alloc(32 * 128);
let taken = POOL.length;

function drawRandomBase64url(): string {
  if (taken === POOL.length) {
    randomFillSync(POOL);
    taken = 0;
  }
  const start = taken;
  taken += 32;
  const token = POOL.toString("base64url", start, taken);
  POOL.fill(0, start, taken);
  return token;
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
