import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import type { Logger } from "../observability/logger.ts";
import { isDatabaseUnavailable, isQueryCancelled } from "./database-errors.ts";
import { gatehouseError, reasonOf } from "./gatehouse-error.ts";

/** The protovalidate rule id that SPEC §6 reports as PASSWORD_MISMATCH rather than VALIDATION_FAILED. */
const PASSWORD_CONFIRMATION_RULE = "password_confirmation.matches";

/**
 * The single place where failures become wire errors. Gatehouse errors pass through; validation
 * failures gain their ErrorInfo and a readable message; database outages become `unavailable`;
 * anything else becomes `internal` with nothing of its text, stack or SQL sent to the caller.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (error) {
      throw toWireError(error, req.signal, logger, req.method.name);
    }
  };
}

export function toWireError(error: unknown, signal: AbortSignal, logger: Logger, method: string): ConnectError {
  if (error instanceof ConnectError) {
    if (reasonOf(error) !== undefined) return error;
    if (error.code === Code.InvalidArgument) return withValidationReason(error);
    // A deliberate code (unimplemented, deadline_exceeded, …) stands; only internal/unknown, whose
    // text may come from anywhere, is replaced below.
    if (error.code !== Code.Internal && error.code !== Code.Unknown) return error;
  }
  if (signal.aborted) {
    return new ConnectError("The call ran out of time before it finished.", Code.DeadlineExceeded);
  }
  if (isQueryCancelled(error)) {
    return new ConnectError("The call took too long and was stopped.", Code.DeadlineExceeded);
  }
  if (isDatabaseUnavailable(error)) {
    logger.warn({ method, err: error }, "database unavailable");
    return gatehouseError("DATABASE_UNAVAILABLE");
  }
  logger.error({ method, err: error }, "unexpected error");
  return new ConnectError("Something went wrong on our side; the error was logged.", Code.Internal);
}

function withValidationReason(error: ConnectError): ConnectError {
  const violations = error.findDetails(ViolationsSchema).flatMap((v) => v.violations);
  if (violations.length === 0) {
    return gatehouseError("VALIDATION_FAILED", error.rawMessage || undefined, { cause: error });
  }
  const mismatch = violations.some((v) => v.ruleId === PASSWORD_CONFIRMATION_RULE);
  const described = violations
    .map((v) => {
      const path = (v.field?.elements ?? []).map((e) => e.fieldName).join(".");
      return path ? `${path}: ${v.message}` : v.message;
    })
    .join("; ");
  const wire = gatehouseError(mismatch ? "PASSWORD_MISMATCH" : "VALIDATION_FAILED", `The request is not valid: ${described}.`);
  wire.details.push(...error.details);
  return wire;
}
