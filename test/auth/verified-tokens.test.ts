import assert from "node:assert/strict";
import { KeyObject } from "node:crypto";
import { describe, test } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import { generateKeyPair, type CryptoKey } from "jose";
import { createAccessTokens } from "../../src/auth/access-token.ts";
import { reasonOf } from "../../src/platform/errors/gatehouse-error.ts";
import { VERIFY_LEEWAY_SECONDS, type SigningKeys } from "../../src/signing-keys/signing-keys.ts";
import { createManualClock } from "../support/manual-clock.ts";

const CONFIG = { issuer: "https://id.example.test", audience: "api", accessTokenTtlMs: 15 * 60_000, signingAlg: "EdDSA" } as const;
const SUBJECT = { userId: "0193b1c4-7d2e-7c4a-9f1e-000000000001", sessionId: "0193b1c4-7d2e-7c4a-9f1e-000000000002", roles: ["user"] };

/** Signing keys held in memory; `publicKey` can be swapped (a reload) or withdrawn (a removal). */
async function memoryKeys() {
  const pair = await generateKeyPair("EdDSA", { extractable: true });
  const state: { publicKey: CryptoKey | undefined } = { publicKey: pair.publicKey };
  const keys: SigningKeys = {
    active: async () => ({ kid: "k1", alg: "EdDSA", privateKey: KeyObject.from(pair.privateKey) }),
    verificationKey: async (kid) => (kid === "k1" ? state.publicKey : undefined),
    jwks: async () => ({ keys: [] }),
  };
  return { keys, state, pair };
}

async function reason(call: Promise<unknown>): Promise<string | undefined> {
  try {
    await call;
    return "accepted";
  } catch (error) {
    return error instanceof ConnectError ? reasonOf(error) : String(error);
  }
}

describe("access tokens verified once are remembered, never beyond what a full check would accept", () => {
  test("a remembered token still expires", async () => {
    const clock = createManualClock();
    const { keys } = await memoryKeys();
    const tokens = createAccessTokens({ config: CONFIG, clock, keys });
    const { token } = await tokens.issue(SUBJECT);
    assert.equal((await tokens.verify(token)).userId, SUBJECT.userId);
    assert.equal((await tokens.verify(token)).userId, SUBJECT.userId);
    clock.advance(CONFIG.accessTokenTtlMs + VERIFY_LEEWAY_SECONDS * 1000);
    assert.equal(await reason(tokens.verify(token)), "TOKEN_EXPIRED");
  });

  test("a token whose key was withdrawn is refused, though it passed before", async () => {
    const clock = createManualClock();
    const { keys, state } = await memoryKeys();
    const tokens = createAccessTokens({ config: CONFIG, clock, keys });
    const { token } = await tokens.issue(SUBJECT);
    await tokens.verify(token);
    state.publicKey = undefined;
    assert.equal(await reason(tokens.verify(token)), "TOKEN_INVALID");
  });

  test("after a key reload the token is checked again against the new key object", async () => {
    const clock = createManualClock();
    const { keys, state } = await memoryKeys();
    const tokens = createAccessTokens({ config: CONFIG, clock, keys });
    const { token } = await tokens.issue(SUBJECT);
    await tokens.verify(token);
    // Same kid, another key: a full check runs and the signature no longer matches.
    state.publicKey = (await generateKeyPair("EdDSA")).publicKey;
    assert.equal(await reason(tokens.verify(token)), "TOKEN_INVALID");
  });

  test("a remembered token's signature does not vouch for another payload", async () => {
    const clock = createManualClock();
    const { keys } = await memoryKeys();
    const tokens = createAccessTokens({ config: CONFIG, clock, keys });
    const { token } = await tokens.issue(SUBJECT);
    await tokens.verify(token);
    const [header, payload, signature] = token.split(".");
    const claims = JSON.parse(Buffer.from(payload!, "base64url").toString("utf8")) as Record<string, unknown>;
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, roles: ["admin"] })).toString("base64url")}.${signature}`;
    assert.equal(await reason(tokens.verify(forged)), "TOKEN_INVALID");
  });
});
