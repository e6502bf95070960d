import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import { hashRefreshToken, newRefreshToken } from "../../src/sessions/refresh-token.ts";

test("refresh tokens: 256 random bits each, never repeated across refills of the random pool, stored as SHA-256", () => {
  const seen = new Set<string>();
  // 1,000 tokens draw the pool (128 tokens) empty several times.
  for (let i = 0; i < 1_000; i++) {
    const { token, hash } = newRefreshToken();
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(token, "base64url").length, 32);
    assert.notEqual(token, Buffer.alloc(32).toString("base64url"), "a token is never the zeroed bytes of a used slot");
    assert.ok(!seen.has(token), `token ${i} repeats an earlier one`);
    seen.add(token);
    assert.deepEqual(hash, createHash("sha256").update(token).digest());
    assert.deepEqual(hashRefreshToken(token), hash);
  }
  // Every bit position takes both values: a stuck byte (a pool slice read after zeroing, say) shows here.
  const bytes = [...seen].map((token) => Buffer.from(token, "base64url"));
  for (let bit = 0; bit < 256; bit++) {
    const ones = bytes.filter((b) => (b[bit >> 3]! >> (bit & 7)) & 1).length;
    assert.ok(ones > 400 && ones < 600, `bit ${bit} was set in ${ones} of 1,000 tokens`);
  }
});

test("refresh tokens: anything that is not 43 base64url characters never reaches the database", () => {
  for (const junk of ["", "x".repeat(42), "x".repeat(44), `${"x".repeat(42)}=`, `${"x".repeat(42)}+`, `${"x".repeat(42)}\n`]) {
    assert.equal(hashRefreshToken(junk), undefined, JSON.stringify(junk));
  }
});
