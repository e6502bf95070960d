import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import type { JWK } from "jose";

/** A private JWK encrypted with AES-256-GCM, as stored in `signing_keys.private_jwk`. */
interface SealedJwk {
  sealed: "A256GCM";
  iv: string;
  ciphertext: string;
  tag: string;
}

function isSealed(value: unknown): value is SealedJwk {
  return typeof value === "object" && value !== null && (value as { sealed?: unknown }).sealed === "A256GCM";
}

/** One AES key per signing key, derived from the configured secret; the kid is also the AAD. */
function keyFor(secret: string, kid: string): Buffer {
  return Buffer.from(hkdfSync("sha256", secret, "gatehouse signing keys", `private jwk ${kid}`, 32));
}

/**
 * What to store for a private key: sealed when GATEHOUSE_SIGNING_KEY_SECRET is set, so that a
 * dump of the database alone cannot mint access tokens; plain otherwise.
 */
export function sealPrivateJwk(jwk: JWK, kid: string, secret: string | undefined): JWK | SealedJwk {
  if (secret === undefined) return jwk;
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", keyFor(secret, kid), iv).setAAD(Buffer.from(kid));
  const ciphertext = Buffer.concat([cipher.update(JSON.stringify(jwk), "utf8"), cipher.final()]);
  return {
    sealed: "A256GCM",
    iv: iv.toString("base64url"),
    ciphertext: ciphertext.toString("base64url"),
    tag: cipher.getAuthTag().toString("base64url"),
  };
}

/** The private JWK of a stored row; a sealed one needs the secret it was sealed with. */
export function openPrivateJwk(stored: unknown, kid: string, secret: string | undefined): JWK {
  if (!isSealed(stored)) return stored as JWK;
  if (secret === undefined) {
    throw new Error(`signing key ${kid} is encrypted: set GATEHOUSE_SIGNING_KEY_SECRET to the secret it was stored with`);
  }
  try {
    const decipher = createDecipheriv("aes-256-gcm", keyFor(secret, kid), Buffer.from(stored.iv, "base64url"))
      .setAAD(Buffer.from(kid))
      .setAuthTag(Buffer.from(stored.tag, "base64url"));
    const plain = Buffer.concat([decipher.update(Buffer.from(stored.ciphertext, "base64url")), decipher.final()]);
    return JSON.parse(plain.toString("utf8")) as JWK;
  } catch (cause) {
    throw new Error(`signing key ${kid} cannot be decrypted: GATEHOUSE_SIGNING_KEY_SECRET is not the secret it was stored with`, { cause });
  }
}
