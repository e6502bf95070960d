import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "./logger.ts";
import { reasonOf } from "../errors/gatehouse-error.ts";
import { kClient, kRequestId } from "../server/context.ts";

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * One log line per call: request id (taken from `x-request-id` when it is well-formed), procedure,
 * client IP (as far as Gatehouse believes it, see kClient), code as Connect writes it (`ok`,
 * `invalid_argument`, …) with the ErrorInfo reason of a failure, and duration. Never the message
 * bodies or headers, which can hold secrets.
 */
export function createRequestLogInterceptor(logger: Logger): Interceptor {
  // These lines hold only the fields above, none of them secret, so they skip the redaction of
  // careless fields (logger.ts), which costs more than writing the line itself.
  const calls = logger.child({}, { redact: [] });
  return (next) => async (req) => {
    const offered = req.header.get("x-request-id");
    const requestId = offered && REQUEST_ID.test(offered) ? offered : randomUUID();
    req.contextValues.set(kRequestId, requestId);
    const started = performance.now();
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const fields = () => ({ requestId, procedure, ip: req.contextValues.get(kClient).ipAddress });
    try {
      const res = await next(req);
      res.header.set("x-request-id", requestId);
      calls.info({ ...fields(), code: "ok", ms: round(performance.now() - started) }, "call");
      return res;
    } catch (error) {
      const code = error instanceof ConnectError ? codeName(error.code) : "unknown";
      const reason = error instanceof ConnectError ? reasonOf(error) : undefined;
      if (error instanceof ConnectError) error.metadata.set("x-request-id", requestId);
      calls.info({ ...fields(), code, reason, ms: round(performance.now() - started) }, "call");
      throw error;
    }
  };
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** `InvalidArgument` → `invalid_argument`, the Connect protocol's spelling. */
const codeName = (code: Code) => Code[code].replace(/(?<=[a-z])(?=[A-Z])/g, "_").toLowerCase();
