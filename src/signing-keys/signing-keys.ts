import { createPrivateKey, type JsonWebKey as NodeJwk, type KeyObject } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from "jose";
import { sql, type Kysely } from "kysely";
import { outsideCall } from "../platform/database/call-scope.ts";
import { recordAuditEvent } from "../audit/audit-log.ts";
import type { Clock } from "../platform/clock.ts";
import type { Config, SigningAlgorithm } from "../platform/config/config.ts";
import { openPrivateJwk, sealPrivateJwk } from "./private-key-sealing.ts";

/** How long an instance trusts its in-memory copy of the key table before reading it again. */
export const KEY_CACHE_MS = 60_000;
/** An unknown `kid` makes an instance re-read the key table at most this often (a rotation elsewhere). */
const UNKNOWN_KID_RELOAD_MS = 1_000;
/** Clock leeway of token verification; a retired key stays published at least this much longer. */
export const VERIFY_LEEWAY_SECONDS = 30;

export interface ActiveSigningKey {
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  /** A node:crypto key (see access-token.ts for why tokens are not signed through WebCrypto). */
  readonly privateKey: KeyObject;
}

export interface SigningKeys {
  /** The key new access tokens are signed with: the newest unretired key of the configured algorithm. */
  active(): Promise<ActiveSigningKey>;
  /** The public key for a `kid`, if Gatehouse published one; undefined for anything else. */
  verificationKey(kid: string): Promise<CryptoKey | undefined>;
  /** The JWKS document: every public key a still-valid token may have been signed with. */
  jwks(): Promise<{ keys: JWK[] }>;
}

interface KeyRow {
  kid: string;
  algorithm: string;
  public_jwk: JWK;
  /** A private JWK, sealed when GATEHOUSE_SIGNING_KEY_SECRET is set (see private-key-sealing.ts). */
  private_jwk: unknown;
  retire_time: Date | null;
  remove_time: Date | null;
}

interface LoadedKeys {
  readonly at: number;
  readonly active: ActiveSigningKey;
  readonly published: JWK[];
  readonly publicKeys: ReadonlyMap<string, CryptoKey>;
}

type KeyConfig = Pick<Config, "signingAlg" | "accessTokenTtlMs" | "signingKeySecret">;

/**
 * The signing keys every instance shares through the `signing_keys` table. Private keys are
 * read from the database, never from a file, so any number of instances sign with the same key
 * and a rotation made by one (or by `gatehouse keys rotate`) reaches the others within
 * KEY_CACHE_MS. The first instance to need a key generates it.
 */
export function createSigningKeys(options: { db: () => Kysely<unknown>; config: KeyConfig; clock: Clock }): SigningKeys {
  const { db, config, clock } = options;
  let loaded: LoadedKeys | undefined;
  let loading: Promise<LoadedKeys> | undefined;

  const reload = (): Promise<LoadedKeys> =>
    // Shared by every call waiting for it: not cut short when the call that started it ends.
    (loading ??= outsideCall(async () => {
      try {
        await ensureSigningKey(db(), config, clock);
        loaded = await loadKeys(db(), config, clock);
        return loaded;
      } finally {
        loading = undefined;
      }
    }));

  /** Age of the cache by the application clock (a clock set backwards counts as stale). */
  const age = (keys: LoadedKeys) => {
    const ms = clock.now().getTime() - keys.at;
    return ms < 0 ? Number.POSITIVE_INFINITY : ms;
  };
  const fresh = async (): Promise<LoadedKeys> => {
    if (loaded && age(loaded) < KEY_CACHE_MS) return loaded;
    return reload();
  };

  return {
    active: async () => (await fresh()).active,
    async verificationKey(kid) {
      const keys = await fresh();
      const key = keys.publicKeys.get(kid);
      if (key || age(keys) < UNKNOWN_KID_RELOAD_MS) return key;
      return (await reload()).publicKeys.get(kid);
    },
    jwks: async () => ({ keys: (await fresh()).published }),
  };
}

/**
 * Makes sure a key of the configured algorithm is active, generating one when there is none
 * (first start, or the algorithm was changed). An advisory lock keeps instances that start
 * together from each generating one.
 */
export async function ensureSigningKey(db: Kysely<unknown>, config: KeyConfig, clock: Clock): Promise<void> {
  const { rows } = await sql<{ kid: string }>`
    select kid from signing_keys where retire_time is null and algorithm = ${config.signingAlg} limit 1`.execute(db);
  if (rows.length > 0) return;
  await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('gatehouse.signing_keys'))`.execute(trx);
    const again = await sql`select kid from signing_keys where retire_time is null and algorithm = ${config.signingAlg} limit 1`.execute(trx);
    if (again.rows.length > 0) return;
    await insertNewKey(trx, config, clock);
  });
}

/**
 * Starts signing with a fresh key. The keys signing until now are retired, but their public
 * halves stay in the JWKS until every token they may have signed has expired: the access-token
 * lifetime, plus the time other instances may keep signing from their cache, plus the leeway.
 */
export async function rotateSigningKey(db: Kysely<unknown>, config: KeyConfig, clock: Clock): Promise<{ kid: string; retired: string[] }> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('gatehouse.signing_keys'))`.execute(trx);
    const now = clock.now();
    const removeTime = new Date(now.getTime() + config.accessTokenTtlMs + KEY_CACHE_MS + VERIFY_LEEWAY_SECONDS * 1000);
    const retired = await sql<{ kid: string }>`
      update signing_keys set retire_time = ${now}, remove_time = ${removeTime}
      where retire_time is null returning kid`.execute(trx);
    const kid = await insertNewKey(trx, config, clock);
    const retiredKids = retired.rows.map((row) => row.kid);
    await recordAuditEvent(trx, { type: "signing_key_rotated", time: now, details: { kid, algorithm: config.signingAlg, retired_kids: retiredKids } });
    return { kid, retired: retiredKids };
  });
}

/** Forgets keys whose every token has expired. */
export async function deleteRemovedSigningKeys(db: Kysely<unknown>, now: Date): Promise<number> {
  const result = await sql`delete from signing_keys where remove_time is not null and remove_time <= ${now}`.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

async function insertNewKey(db: Kysely<unknown>, config: KeyConfig, clock: Clock): Promise<string> {
  const alg = config.signingAlg;
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, crv: alg === "EdDSA" ? "Ed25519" : undefined });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const published: JWK = { ...publicJwk, kid, alg, use: "sig" };
  const privateJwk = sealPrivateJwk({ ...(await exportJWK(privateKey)), kid, alg }, kid, config.signingKeySecret);
  await sql`
    insert into signing_keys (kid, algorithm, public_jwk, private_jwk, create_time)
    values (${kid}, ${alg}, ${JSON.stringify(published)}::jsonb, ${JSON.stringify(privateJwk)}::jsonb, ${clock.now()})`.execute(db);
  return kid;
}

async function loadKeys(db: Kysely<unknown>, config: KeyConfig, clock: Clock): Promise<LoadedKeys> {
  const alg = config.signingAlg;
  const now = clock.now();
  // Only the newest active key's private half leaves the database.
  const { rows } = await sql<KeyRow>`
    select kid, algorithm, public_jwk, retire_time, remove_time,
           case when retire_time is null and algorithm = ${alg}
                 and create_time = max(create_time) filter (where retire_time is null and algorithm = ${alg}) over ()
                then private_jwk end as private_jwk
    from signing_keys
    where remove_time is null or remove_time > ${now}
    order by create_time desc`.execute(db);
  const activeRow = rows.find((row) => row.private_jwk !== null);
  if (!activeRow) throw new Error("no active signing key after ensureSigningKey");
  const publicKeys = new Map<string, CryptoKey>();
  const published: JWK[] = [];
  // Verification accepts only the configured algorithm, so only its keys are published.
  for (const row of rows.filter((r) => r.algorithm === alg)) {
    publicKeys.set(row.kid, (await importJWK(row.public_jwk, alg)) as CryptoKey);
    published.push(row.public_jwk);
  }
  return {
    at: now.getTime(),
    active: {
      kid: activeRow.kid,
      alg,
      privateKey: createPrivateKey({ key: openPrivateJwk(activeRow.private_jwk, activeRow.kid, config.signingKeySecret) as NodeJwk, format: "jwk" }),
    },
    published,
    publicKeys,
  };
}
