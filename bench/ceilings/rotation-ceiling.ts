import { generateKeyPairSync } from "node:crypto";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { signCompactJws } from "../../src/auth/access-token.ts";
import type { ActiveSigningKey } from "../../src/signing-keys/signing-keys.ts";
import { prepareMarkedStatements } from "../../src/platform/database/prepared-statements.ts";
import { newRefreshToken } from "../../src/sessions/refresh-token.ts";
import { insertSession, rotateRefreshToken, type SessionLifetimes } from "../../src/sessions/session-store.ts";

/** Sessions rotated by the ceiling: more than calls in flight, so a call never waits for a chain. */
const CHAINS = 64;
const LIFETIMES: SessionLifetimes = { sessionTtlMs: 30 * 86_400_000, sessionIdleTtlMs: 7 * 86_400_000 };
const CLIENT = { userAgent: "gatehouse-bench", ipAddress: "127.0.0.1" };

/**
 * The durable part of a refresh, without Gatehouse around it (bench/ceilings/echo-server.ts
 * `--rotation`): sessions of the first seeded users, each with a refresh-token chain that this
 * process rotates with Gatehouse's own statement, one rotation per call, then signs claims of an
 * access token's size with Gatehouse's own JWS signing (Ed25519). A rotation that does not happen
 * is an error, so the ceiling never measures less work.
 */
export async function rotationCeiling(databaseUrl: string) {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  prepareMarkedStatements(pool);
  const db = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
  const key: ActiveSigningKey = { kid: "bench", alg: "EdDSA", privateKey: generateKeyPairSync("ed25519").privateKey };
  const header = { alg: key.alg, kid: key.kid, typ: "at+jwt" };

  const { rows: users } = await sql<{ id: string }>`select id from users order by create_time limit ${CHAINS}`.execute(db);
  if (users.length === 0) throw new Error("rotation ceiling: the database has no users to start sessions for");
  const free: { sessionId: string; userId: string; tokenHash: Buffer }[] = [];
  for (let i = 0; i < CHAINS; i++) {
    const { id } = users[i % users.length]!;
    const first = newRefreshToken();
    const session = await insertSession(db, { userId: id, refreshTokenHash: first.hash, now: new Date(), lifetimes: LIFETIMES, client: CLIENT });
    free.push({ sessionId: session.id, userId: id, tokenHash: first.hash });
  }

  return {
    async rotate(): Promise<void> {
      const chain = free.pop();
      if (!chain) throw new Error(`rotation ceiling: more than ${CHAINS} calls in flight`);
      try {
        const successor = newRefreshToken();
        const now = new Date();
        const { rotated } = await rotateRefreshToken(db, { tokenHash: chain.tokenHash, successorHash: successor.hash, now, lifetimes: LIFETIMES, client: CLIENT });
        if (!rotated) throw new Error(`rotation ceiling: session ${chain.sessionId} did not rotate`);
        chain.tokenHash = successor.hash;
        const claims = { iss: "http://localhost:8080", sub: chain.userId, aud: "gatehouse", sid: chain.sessionId, roles: rotated.roles, iat: 0, exp: 0, jti: successor.token };
        signCompactJws(header, claims, key);
      } finally {
        free.push(chain);
      }
    },
    close: () => db.destroy(),
  };
}
