import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../src/platform/errors/error-details.ts";

/** Call options that present an access token. */
export function bearer(accessToken: string) {
  return { headers: { authorization: `Bearer ${accessToken}` } };
}

/** Awaits a call that must fail, and checks its code and ErrorInfo reason. */
export async function rejects(call: Promise<unknown>, code: Code, reason: string): Promise<ConnectError> {
  const error = await call.then(
    () => assert.fail(`expected ${Code[code]} ${reason}, but the call succeeded`),
    (e: unknown) => ConnectError.from(e),
  );
  const info = error.findDetails(ErrorInfoSchema)[0];
  assert.equal(`${Code[error.code]} ${info?.reason}`, `${Code[code]} ${reason}`, error.message);
  assert.equal(info?.domain, "gatehouse");
  return error;
}
