import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { sql } from "kysely";
import { outsideCall } from "../platform/database/call-scope.ts";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";
import type { Db } from "./transaction.ts";

/**
 * Opaque, tamper-evident page tokens for the list methods. A token is
 * `base64url(JSON payload) "." base64url(HMAC-SHA256)`; the payload names the list it belongs
 * to and a digest of the filter and order it was issued for, so a token edited by hand, taken
 * from another list, or replayed with another filter is refused with `invalid_argument`.
 *
 * The HMAC key is one row in `page_token_keys`, shared by every instance.
 */
export interface PageTokens {
  /** Signs `cursor` for the list `kind` queried with `scope` (its filter and order). */
  issue(db: Db, kind: string, scope: unknown, cursor: unknown): Promise<string>;
  /** The cursor inside `token`, after checking its signature, list and scope; undefined for "". */
  read(db: Db, kind: string, scope: unknown, token: string): Promise<unknown>;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** 0 → the default, anything above the maximum → the maximum (AIP-158); negative is refused. */
export function pageSizeOf(requested: number): number {
  if (!Number.isInteger(requested) || requested < 0) {
    throw gatehouseError("VALIDATION_FAILED", "page_size must not be negative.", { metadata: { field: "page_size" } });
  }
  return requested === 0 ? DEFAULT_PAGE_SIZE : Math.min(requested, MAX_PAGE_SIZE);
}

const VERSION = 1;

interface Payload {
  v: number;
  k: string;
  s: string;
  c: unknown;
}

export function createPageTokens(): PageTokens {
  let key: Promise<Buffer> | undefined;
  const loadKey = (db: Db): Promise<Buffer> => {
    // Shared by every call waiting for it: not cut short when the call that started it ends.
    key ??= outsideCall(() => loadOrCreateKey(db)).catch((error: unknown) => {
      key = undefined;
      throw error;
    });
    return key;
  };
  const mac = (secret: Buffer, body: string) => createHmac("sha256", secret).update(`gatehouse page token\n${body}`).digest();

  return {
    async issue(db, kind, scope, cursor) {
      const payload: Payload = { v: VERSION, k: kind, s: scopeDigest(scope), c: cursor };
      const body = Buffer.from(JSON.stringify(payload), "utf8").toString("base64url");
      return `${body}.${mac(await loadKey(db), body).toString("base64url")}`;
    },

    async read(db, kind, scope, token) {
      if (token === "") return undefined;
      const invalid = () =>
        gatehouseError("VALIDATION_FAILED", "The page token is not valid for this list; start again from the first page.", {
          metadata: { field: "page_token" },
        });
      const [body, signature, ...rest] = token.split(".");
      if (!body || !signature || rest.length > 0) throw invalid();
      const expected = mac(await loadKey(db), body);
      const given = Buffer.from(signature, "base64url");
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid();
      let payload: Payload;
      try {
        payload = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Payload;
      } catch {
        throw invalid();
      }
      if (payload.v !== VERSION || payload.k !== kind || payload.s !== scopeDigest(scope)) throw invalid();
      return payload.c;
    },
  };
}

function scopeDigest(scope: unknown): string {
  return createHash("sha256").update(JSON.stringify(scope ?? null)).digest("base64url").slice(0, 22);
}

/** The first instance to need a key creates it; a racing one keeps the winner's (ON CONFLICT DO NOTHING). */
async function loadOrCreateKey(db: Db): Promise<Buffer> {
  await sql`INSERT INTO page_token_keys (id, key) VALUES (1, ${randomBytes(32)}) ON CONFLICT (id) DO NOTHING`.execute(db);
  const { rows } = await sql<{ key: Buffer }>`SELECT key FROM page_token_keys WHERE id = 1`.execute(db);
  const secret = rows[0]?.key;
  if (!secret || secret.length < 32) throw new Error("page_token_keys holds no usable key");
  return secret;
}
