import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { checkPasswordPolicy, COMMON_PASSWORD_COUNT } from "../../src/passwords/password-policy.ts";
import { reasonOf } from "../../src/platform/errors/gatehouse-error.ts";

function weak(password: string, context: { username?: string; email?: string } = {}): string {
  try {
    checkPasswordPolicy(password, context);
  } catch (error) {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.InvalidArgument);
    assert.equal(reasonOf(error), "WEAK_PASSWORD");
    return error.rawMessage;
  }
  assert.fail(`"${password}" was accepted`);
}

describe("password policy (NIST SP 800-63B: length and a block-list, no composition rules)", () => {
  test("the shipped common-password list has well over 10,000 entries that the length rule lets through", () => {
    assert.ok(COMMON_PASSWORD_COUNT >= 10_000, String(COMMON_PASSWORD_COUNT));
  });

  test("8 to 128 characters, counted after NFKC normalisation, in code points", () => {
    assert.match(weak("short1!"), /8 to 128/);
    assert.match(weak("x".repeat(129)), /8 to 128/);
    checkPasswordPolicy("x".repeat(128).replace(/^x{8}/, "zqvkwjmp"), {});
    checkPasswordPolicy("🐢🐢🐢🐢🐢🐢🐢🐢", {}); // 8 code points, 16 UTF-16 units
    assert.match(weak("🐢🐢🐢🐢🐢🐢🐢"), /8 to 128/);
    // U+FDFA expands to 18 characters under NFKC: 8 of them are 144 characters.
    assert.match(weak("\uFDFA".repeat(8)), /8 to 128/);
  });

  test("no composition rules: long plain phrases are fine", () => {
    checkPasswordPolicy("correct horse battery staple", {});
    checkPasswordPolicy("ümlaute überall größer", {});
  });

  test("common passwords are refused whatever their case or width", () => {
    for (const password of ["password", "PASSWORD1", "iloveyou", "Sunshine", "１２３４５６７８", "ｐａｓｓｗｏｒｄ"]) {
      assert.match(weak(password), /common/, password);
    }
  });

  test("not the username or the email, compared case-insensitively", () => {
    assert.match(weak("Ada.Lovelace", { username: "ada.lovelace" }), /username or the email/);
    assert.match(weak("ADA@EXAMPLE.COM", { username: "ada", email: "ada@example.com" }), /username or the email/);
    checkPasswordPolicy("ada.lovelace!", { username: "ada.lovelace" });
    checkPasswordPolicy("zebra crossing", {});
  });
});
