import assert from "node:assert/strict";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "../../src/platform/errors/error-details.ts";
import type { TestServer } from "../support/harness.ts";

/** Call options for a request that a trusted proxy forwarded for `ip`. */
export function from(ip: string, accessToken?: string) {
  return { headers: { "x-forwarded-for": ip, ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}) } };
}

/** What a call answered: "ok", or its reason; for RATE_LIMITED also the retry delay (ms) it carried. */
export interface Outcome {
  readonly reason: string;
  readonly message?: string;
  readonly retryAfterMs?: number;
}

/** Runs a call and reduces its answer to an Outcome, checking the details every refusal must carry. */
export async function outcomeOf(call: Promise<unknown>): Promise<Outcome> {
  try {
    await call;
    return { reason: "ok" };
  } catch (e) {
    const error = ConnectError.from(e);
    const reason = error.findDetails(ErrorInfoSchema)[0]?.reason ?? `no reason (${Code[error.code]}: ${error.message})`;
    if (reason !== "RATE_LIMITED") return { reason, message: error.rawMessage };
    assert.equal(error.code, Code.ResourceExhausted);
    const retry = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
    assert.ok(retry, "RATE_LIMITED carries a google.rpc.RetryInfo");
    const retryAfterMs = durationMs(retry);
    assert.equal(error.metadata.get("retry-after"), String(Math.max(1, Math.ceil(retryAfterMs / 1000))), "and a Retry-After header in seconds");
    return { reason, message: error.rawMessage, retryAfterMs };
  }
}

/** Signs in by email from `ip` with `password`. */
export function loginFrom(server: TestServer, ip: string, email: string, password: string) {
  return outcomeOf(server.auth().login({ identifier: { case: "email", value: email }, password }, from(ip)));
}
