import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../src/platform/errors/error-details.ts";
import { startTestServer, type TestServer } from "../support/harness.ts";

/**
 * Fifty sign-ups racing for one identity, written in every form that means the same thing.
 * Exactly one wins; the others are told why (EMAIL_TAKEN, USERNAME_TAKEN), never a 5xx.
 * (The 20-way race of test/auth/register.test.ts uses one spelling; the invitation and
 * concurrent-update races live in test/users/.)
 */

const PASSWORD = "cobalt meadow after the rain";

/** Each character in upper or lower case, from the bits of `n`: 50 distinct spellings of one address. */
function caseVariant(text: string, n: number): string {
  let bit = 0;
  return [...text].map((ch) => (/[a-z]/i.test(ch) ? ((n >> bit++) & 1 ? ch.toUpperCase() : ch.toLowerCase()) : ch)).join("");
}

/** Full-width forms (NFKC folds them back): `ｂｏｂ` for `bob`. */
const fullWidth = (text: string) => [...text].map((ch) => (/[a-z0-9]/i.test(ch) ? String.fromCodePoint(ch.codePointAt(0)! + 0xfee0) : ch)).join("");

async function outcome(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => "ok",
    (e: unknown) => {
      const error = ConnectError.from(e);
      return `${Code[error.code]} ${error.findDetails(ErrorInfoSchema)[0]?.reason ?? error.rawMessage}`;
    },
  );
}

describe("registration races", () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.stop());

  const count = (outcomes: string[]) => outcomes.reduce<Record<string, number>>((all, o) => ({ ...all, [o]: (all[o] ?? 0) + 1 }), {});

  test("50 concurrent sign-ups of one email in 50 spellings of its case make exactly one user; 49 are EMAIL_TAKEN", async () => {
    const email = "Race.Winner@Example.com";
    const spellings = Array.from({ length: 50 }, (_, i) => caseVariant(email, i * 37 + 1));
    assert.equal(new Set(spellings).size, 50, "fifty different spellings");
    const outcomes = await Promise.all(
      spellings.map((spelling, i) =>
        outcome(server.auth(i % 2 ? "grpc" : "connect-json").register({ username: `racer${i}`, email: spelling, password: PASSWORD })),
      ),
    );
    assert.deepEqual(count(outcomes), { ok: 1, "AlreadyExists EMAIL_TAKEN": 49 });
    const rows = await server.sql<{ email: string }>("select email from users where lower(email) = lower($1)", [email]);
    assert.deepEqual(rows, [{ email: "race.winner@example.com" }], "stored once, normalised");
  });

  test("NFC, NFD and full-width forms of one non-ASCII address are all refused, so no two of them can exist", async () => {
    const nfc = "Zoë.Müller@example.com".normalize("NFC");
    const forms = [nfc, nfc.normalize("NFD"), nfc.toUpperCase(), nfc.normalize("NFD").toLowerCase(), fullWidth("zoe.muller") + "@example.com"];
    assert.notEqual(forms[0], forms[1], "NFC and NFD differ in code points");
    const outcomes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        outcome(server.auth(i % 2 ? "grpc" : "connect-json").register({ username: `uni${i}`, email: forms[i % forms.length]!, password: PASSWORD })),
      ),
    );
    assert.deepEqual(count(outcomes), { "InvalidArgument VALIDATION_FAILED": 50 });
    assert.deepEqual(await server.sql("select 1 from users where username like 'uni%'"), []);
  });

  test("50 concurrent sign-ups of one username in case and full-width forms make exactly one user; 49 are USERNAME_TAKEN", async () => {
    const name = "quick.fox";
    const forms = Array.from({ length: 50 }, (_, i) => (i % 5 === 4 ? fullWidth(caseVariant(name, i)) : caseVariant(name, i)));
    const outcomes = await Promise.all(
      forms.map((username, i) =>
        outcome(server.auth(i % 2 ? "grpc" : "connect-json").register({ username, email: `fox${i}@example.com`, password: PASSWORD })),
      ),
    );
    assert.deepEqual(count(outcomes), { ok: 1, "AlreadyExists USERNAME_TAKEN": 49 });
    assert.deepEqual(await server.sql("select username from users where username = $1", [name]), [{ username: name }]);
  });
});
