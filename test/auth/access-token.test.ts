import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, jwtVerify, SignJWT, type JWK, type JWTPayload } from "jose";
import { createManualClock } from "../support/manual-clock.ts";
import { startTestServer, type ProtocolName, type TestServer } from "../support/harness.ts";
import { bearer, registerUser, unauthenticated, type RegisteredUser } from "./support.ts";

const PROTOCOLS: ProtocolName[] = ["connect-json", "grpc"];

describe("access tokens and the authentication of calls", () => {
  const clock = createManualClock();
  let server: TestServer;
  let alice: RegisteredUser;
  /** The server's own private signing key, read from its database, to forge tokens that differ in exactly one property. */
  let serverKey: { kid: string; key: Awaited<ReturnType<typeof importJWK>> };

  before(async () => {
    server = await startTestServer({}, { clock });
    alice = await registerUser(server.auth());
    const [row] = await server.sql<{ kid: string; private_jwk: JWK }>(
      "select kid, private_jwk from signing_keys where retire_time is null",
    );
    serverKey = { kid: row!.kid, key: await importJWK(row!.private_jwk, "EdDSA") };
  });
  after(() => server.stop());

  /** A token signed with the server's real key; `edit` changes one thing. */
  async function forge(edit: { header?: Record<string, unknown>; claims?: JWTPayload; omit?: string[] } = {}): Promise<string> {
    const nowSeconds = Math.floor(clock.now().getTime() / 1000);
    const claims: JWTPayload = {
      iss: "http://localhost:8080",
      sub: alice.user.id,
      aud: "gatehouse",
      exp: nowSeconds + 600,
      iat: nowSeconds,
      jti: crypto.randomUUID(),
      sid: alice.tokens.sessionId,
      roles: ["user"],
      ...edit.claims,
    };
    for (const name of edit.omit ?? []) delete claims[name];
    return new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid: serverKey.kid, typ: "at+jwt", ...edit.header } as never)
      .sign(serverKey.key);
  }

  test("a forged token with nothing changed is accepted (the forging helper is faithful)", async () => {
    const res = await server.auth().getMe({}, bearer(await forge()));
    assert.equal(res.user?.id, alice.user.id);
  });

  for (const protocol of PROTOCOLS) {
    test(`${protocol}: a protected method needs a token, and a valid one works`, async () => {
      const auth = server.auth(protocol);
      await unauthenticated(auth.getMe({}), "TOKEN_MISSING");
      await unauthenticated(auth.getMe({}, { headers: { authorization: "" } }), "TOKEN_MISSING");
      await unauthenticated(auth.getMe({}, { headers: { authorization: `Basic ${btoa("a:b")}` } }), "TOKEN_INVALID");
      await unauthenticated(auth.getMe({}, bearer("not-a-jwt")), "TOKEN_INVALID");
      const res = await auth.getMe({}, bearer(alice.tokens.accessToken));
      assert.equal(res.user?.username, alice.username);
      assert.equal(res.user?.email, alice.email);
      assert.deepEqual(res.user?.roles, ["user"]);
    });
  }

  test("the scheme is case-insensitive", async () => {
    const res = await server.auth().getMe({}, { headers: { authorization: `bearer ${alice.tokens.accessToken}` } });
    assert.equal(res.user?.id, alice.user.id);
  });

  test("tokens carry the header and claims of SPEC §3", async () => {
    const token = alice.tokens.accessToken;
    const header = decodeProtectedHeader(token);
    assert.equal(header.typ, "at+jwt");
    assert.equal(header.alg, "EdDSA");
    assert.equal(header.kid, serverKey.kid);
    const claims = decodeJwt(token);
    assert.equal(claims.iss, "http://localhost:8080");
    assert.equal(claims.aud, "gatehouse");
    assert.equal(claims.sub, alice.user.id);
    assert.equal(claims.sid, alice.tokens.sessionId);
    assert.deepEqual(claims.roles, ["user"]);
    assert.equal(typeof claims.jti, "string");
    assert.equal(claims.exp! - claims.iat!, 15 * 60, "15 minutes by default");
    assert.equal(alice.tokens.tokenType, "Bearer");
    assert.equal(Number(alice.tokens.accessTokenExpireTime?.seconds), claims.exp);
  });

  test("an independent verifier accepts them with the JWKS (jose createRemoteJWKSet)", async () => {
    const jwks = createRemoteJWKSet(new URL(`${server.baseUrl}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(alice.tokens.accessToken, jwks, {
      issuer: "http://localhost:8080",
      audience: "gatehouse",
      typ: "at+jwt",
      algorithms: ["EdDSA"],
      currentDate: clock.now(),
    });
    assert.equal(payload.sub, alice.user.id);
    assert.equal(protectedHeader.kid, serverKey.kid);
    // …and refuses a token whose payload was edited.
    await assert.rejects(jwtVerify(tamper(alice.tokens.accessToken, { roles: ["admin"] }), jwks, { currentDate: clock.now() }));
  });

  test("the JWKS is public, cacheable and holds public keys only", async () => {
    const res = await fetch(`${server.baseUrl}/.well-known/jwks.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("cache-control") ?? "", /public, max-age=\d+/);
    const body = (await res.json()) as { keys: JWK[] };
    assert.equal(body.keys.length, 1);
    const [key] = body.keys;
    assert.equal(key!.kid, serverKey.kid);
    assert.equal(key!.kty, "OKP");
    assert.equal(key!.crv, "Ed25519");
    assert.equal(key!.alg, "EdDSA");
    assert.equal(key!.use, "sig");
    assert.equal(key!.d, undefined, "no private part");
  });

  describe("forged and broken tokens are refused", () => {
    const refused = async (token: string, reason = "TOKEN_INVALID") => {
      for (const protocol of PROTOCOLS) await unauthenticated(server.auth(protocol).getMe({}, bearer(token)), reason);
      const introspection = await server.auth().introspect({ token });
      assert.equal(introspection.active, false);
    };

    test("alg none, in any spelling", async () => {
      const [, payload] = alice.tokens.accessToken.split(".");
      for (const alg of ["none", "None", "NONE", "nOnE"]) {
        const header = b64({ alg, typ: "at+jwt", kid: serverKey.kid });
        await refused(`${header}.${payload}.`);
        await refused(`${header}.${payload}.${b64("x")}`);
      }
    });

    test("HS256 signed with the server's public key as the secret", async () => {
      const [jwk] = ((await (await fetch(`${server.baseUrl}/.well-known/jwks.json`)).json()) as { keys: JWK[] }).keys;
      const claims = decodeJwt(alice.tokens.accessToken);
      for (const secret of [JSON.stringify(jwk), jwk!.x!, Buffer.from(jwk!.x!, "base64url").toString("latin1")]) {
        const token = await new SignJWT(claims)
          .setProtectedHeader({ alg: "HS256", kid: serverKey.kid, typ: "at+jwt" })
          .sign(new TextEncoder().encode(secret));
        await refused(token);
      }
    });

    test("an edited payload: other roles, other subject, other session", async () => {
      await refused(tamper(alice.tokens.accessToken, { roles: ["admin"] }));
      const bob = await registerUser(server.auth());
      await refused(tamper(alice.tokens.accessToken, { sub: bob.user.id }));
      await refused(tamper(alice.tokens.accessToken, { sid: bob.tokens.sessionId }));
    });

    test("a key Gatehouse does not know, and unknown or path-like kids", async () => {
      const attacker = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
      const claims = decodeJwt(alice.tokens.accessToken);
      for (const kid of [serverKey.kid, "unknown", "../../../etc/passwd", "x".repeat(300)]) {
        await refused(await new SignJWT(claims).setProtectedHeader({ alg: "EdDSA", kid, typ: "at+jwt" }).sign(attacker.privateKey));
      }
      await refused(await forge({ header: { kid: "unknown" } }));
      await refused(await forge({ header: { kid: undefined } }));
    });

    test("jku, x5u and jwk headers, even on an otherwise valid token; nothing is fetched", async () => {
      let fetched = 0;
      const trap = (await import("node:http")).createServer((_req, res) => {
        fetched++;
        res.end("{}");
      });
      await new Promise<void>((resolve) => trap.listen(0, "127.0.0.1", resolve));
      const url = `http://127.0.0.1:${(trap.address() as { port: number }).port}/jwks.json`;
      try {
        const attacker = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
        await refused(await forge({ header: { jku: url } }));
        await refused(await forge({ header: { x5u: url } }));
        await refused(await forge({ header: { jwk: await exportJWK(attacker.publicKey) } }));
        await refused(
          await new SignJWT(decodeJwt(alice.tokens.accessToken))
            .setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", jwk: await exportJWK(attacker.publicKey) } as never)
            .sign(attacker.privateKey),
        );
        assert.equal(fetched, 0, "no URL from a token header was ever fetched");
      } finally {
        trap.close();
      }
    });

    test("wrong iss, aud or typ; missing or string exp; future nbf or iat; bad sub, sid or roles", async () => {
      const now = Math.floor(clock.now().getTime() / 1000);
      await refused(await forge({ claims: { iss: "https://evil.example.com" } }));
      await refused(await forge({ claims: { aud: "another-service" } }));
      await refused(await forge({ header: { typ: "JWT" } }));
      await refused(await forge({ header: { typ: undefined } }));
      await refused(await forge({ omit: ["exp"] }));
      await refused(await forge({ claims: { exp: String(now + 600) as never } }));
      await refused(await forge({ omit: ["iat"] }));
      await refused(await forge({ claims: { nbf: now + 3600 } }));
      await refused(await forge({ claims: { iat: now + 3600 } }));
      await refused(await forge({ omit: ["jti"] }));
      await refused(await forge({ omit: ["sid"] }));
      await refused(await forge({ claims: { sub: "not-a-uuid" } }));
      await refused(await forge({ claims: { sid: "'; drop table users; --" } }));
      await refused(await forge({ claims: { roles: "admin" as never } }));
      await refused(await forge({ header: { crit: ["b64"], b64: true } }));
    });

    test("a token living longer than Gatehouse would ever issue", async () => {
      const now = Math.floor(clock.now().getTime() / 1000);
      await refused(await forge({ claims: { iat: now - 3600, exp: now + 3600 } }), "TOKEN_EXPIRED");
    });

    test("a refresh token or garbage in place of an access token", async () => {
      await refused(alice.tokens.refreshToken);
      await refused("a.b.c");
      await refused(`${alice.tokens.accessToken}x`);
    });

    test("expired, moving the clock: accepted within the leeway, refused after", async () => {
      const bob = await registerUser(server.auth());
      clock.advance(15 * 60_000 + 20_000);
      try {
        const res = await server.auth().getMe({}, bearer(bob.tokens.accessToken));
        assert.equal(res.user?.id, bob.user.id, "20 s past exp is inside the leeway");
        clock.advance(60_000);
        for (const protocol of PROTOCOLS) await unauthenticated(server.auth(protocol).getMe({}, bearer(bob.tokens.accessToken)), "TOKEN_EXPIRED");
        assert.equal((await server.auth().introspect({ token: bob.tokens.accessToken })).active, false);
      } finally {
        clock.set(new Date());
      }
    });
  });

  describe("revocation takes effect on the very next call", () => {
    for (const protocol of PROTOCOLS) {
      test(`${protocol}: logout`, async () => {
        const auth = server.auth(protocol);
        const bob = await registerUser(auth);
        await auth.logout({}, bearer(bob.tokens.accessToken));
        await unauthenticated(auth.getMe({}, bearer(bob.tokens.accessToken)), "SESSION_REVOKED");
      });

      test(`${protocol}: a deleted user`, async () => {
        const auth = server.auth(protocol);
        const bob = await registerUser(auth);
        await server.sql("delete from users where id = $1", [bob.user.id]);
        await unauthenticated(auth.getMe({}, bearer(bob.tokens.accessToken)), "SESSION_REVOKED");
        assert.equal((await auth.introspect({ token: bob.tokens.accessToken })).active, false);
      });

      test(`${protocol}: a disabled user`, async () => {
        const auth = server.auth(protocol);
        const bob = await registerUser(auth);
        await server.sql("update users set disabled = true where id = $1", [bob.user.id]);
        await unauthenticated(auth.getMe({}, bearer(bob.tokens.accessToken)), "SESSION_REVOKED");
        assert.equal((await auth.introspect({ token: bob.tokens.accessToken })).active, false);
      });
    }

    test("roles come from the database, not from the token", async () => {
      const bob = await registerUser(server.auth());
      // Changed behind Gatehouse's back (plain SQL): instances learn of it by a database
      // notification, so the new roles show within its delivery time, not necessarily on the
      // very next call (caller-cache.ts). Changes made through the API are seen at once.
      const rolesSoon = async (expected: string[]) => {
        const deadline = Date.now() + 2_000;
        for (;;) {
          const { roles } = await server.auth().introspect({ token: bob.tokens.accessToken });
          if (JSON.stringify(roles) === JSON.stringify(expected) || Date.now() > deadline) return roles;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      assert.deepEqual(await rolesSoon(["user"]), ["user"]);
      await server.sql("update users set roles = '{admin}' where id = $1", [bob.user.id]);
      assert.deepEqual(await rolesSoon(["admin"]), ["admin"]);
      await server.sql("update users set roles = '{user}' where id = $1", [bob.user.id]);
      assert.deepEqual(await rolesSoon(["user"]), ["user"]);
      assert.deepEqual(decodeJwt(bob.tokens.accessToken).roles, ["user"], "the token itself never changed");
    });
  });
});

function b64(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

/** The same token with its payload edited and the original signature kept. */
function tamper(token: string, changes: JWTPayload): string {
  const [header, , signature] = token.split(".");
  return `${header}.${b64({ ...decodeJwt(token), ...changes })}.${signature}`;
}
