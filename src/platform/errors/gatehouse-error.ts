import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "./error-details.ts";
import { ERROR_DOMAIN, REASONS, type Reason } from "./reasons.ts";

export interface GatehouseErrorOptions {
  /** Extra key/values for the ErrorInfo (never a secret). */
  metadata?: Record<string, string>;
  /** For RATE_LIMITED: how long the caller should wait. */
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * The one way handlers and services report a failure: a ConnectError whose code follows from the
 * reason, carrying a google.rpc.ErrorInfo (and RetryInfo when a delay applies).
 */
export function gatehouseError(reason: Reason, message?: string, options: GatehouseErrorOptions = {}): ConnectError {
  const { code, message: fallback } = REASONS[reason];
  const details = [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason, domain: ERROR_DOMAIN, metadata: options.metadata ?? {} }) },
  ];
  const error = new ConnectError(message ?? fallback, code, undefined, details, options.cause);
  if (options.retryAfterMs !== undefined) {
    error.details.push({
      desc: RetryInfoSchema,
      value: create(RetryInfoSchema, { retryDelay: durationFromMs(options.retryAfterMs) }),
    });
    error.metadata.set("retry-after", String(Math.max(1, Math.ceil(options.retryAfterMs / 1000))));
  }
  return error;
}

/** The reason of a Gatehouse error, read back from its ErrorInfo detail. */
export function reasonOf(error: ConnectError): string | undefined {
  return error.findDetails(ErrorInfoSchema).find((info) => info.domain === ERROR_DOMAIN)?.reason;
}
