import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { createAsyncIterable, type UniversalHandler, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { gatehouseError } from "../errors/gatehouse-error.ts";
import type { Logger } from "../observability/logger.ts";

/**
 * The `internal` (and, for a unary call sent none or two messages, `unimplemented`) errors
 * connect-es gives for requests it cannot decode, which are all the caller's fault. Each maps to
 * what the caller is told instead.
 */
const CALLER_FAULTS: readonly { test: RegExp; tell: (message: string) => string }[] = [
  { test: /^parse binary: /, tell: (message) => `The request is not a valid protobuf message: ${message.slice("parse binary: ".length)}.` },
  { test: /^received compressed envelope, but do not know how to decompress/, tell: () => "A message is marked compressed but no grpc-encoding was sent." },
  { test: /^decompression failed/, tell: () => "The request body is not valid for its content encoding." },
  { test: /^protocol error: (missing|received extra) input message for unary method/, tell: () => "A unary call takes exactly one request message." },
];

/** Status codes under which connect-es reports those faults: gRPC numbers and Connect names. */
const FAULT_GRPC_STATUSES = new Set(["12", "13"]);
const FAULT_CONNECT_CODES = new Set(["internal", "unimplemented"]);

/** The VALIDATION_FAILED error to send instead of an `internal` one with this message, if it is the caller's fault. */
function callerFault(message: string): ConnectError | undefined {
  const fault = CALLER_FAULTS.find(({ test }) => test.test(message));
  return fault && gatehouseError("VALIDATION_FAILED", fault.tell(message));
}

/**
 * What the caller is told for an error connect-es raised while decoding a request: the
 * VALIDATION_FAILED error for the caller's own faults (CALLER_FAULTS), the error itself otherwise.
 */
export function answerDecodingError(error: ConnectError): ConnectError {
  const fault = error.code === Code.Internal || error.code === Code.Unimplemented ? callerFault(error.rawMessage) : undefined;
  return fault ?? error;
}

/**
 * The answer for a handler that rejected instead of answering: a message from the request that
 * is not valid Unicode (it cannot travel in a gRPC trailer) is the caller's fault; anything else
 * is ours, logged, and answered like any internal error.
 */
export function rejectedHandlerAnswer(error: unknown, logger: Logger, procedure: string): ConnectError {
  if (error instanceof URIError) return gatehouseError("VALIDATION_FAILED", "The request holds text that is not valid Unicode.");
  logger.error({ err: error, procedure }, "handler failed before answering");
  return new ConnectError("Something went wrong on our side; the error was logged.", Code.Internal);
}

/**
 * Two ways connect-es 2.2 mishandles a request it cannot decode, both of which happen before any
 * interceptor runs, so the one place to correct them is around each handler of the router:
 *
 * - A message that is not valid protobuf (truncated, a wrong wire type, invalid UTF-8 in a
 *   string), a body that does not inflate, a gRPC message marked compressed without an encoding,
 *   or a unary gRPC call with no or two messages is the caller's mistake, but connect-es answers
 *   `internal` (HTTP 500) or `unimplemented`. Exactly those errors (CALLER_FAULTS) are rewritten
 *   to `invalid_argument` / VALIDATION_FAILED in each protocol's own framing (Connect JSON body,
 *   gRPC trailers, gRPC-Web trailer frame).
 * - An error whose message echoes a lone surrogate from the request (a JSON key "\ud800") makes
 *   its gRPC trailer encoding throw: the handler rejects, connect-node only prints it to the
 *   console, and the call hangs. A rejected handler is answered here instead.
 *
 * Call it last in `routes`, after every `router.service(...)`.
 */
export function answerUndecodableRequestsAsInvalid(router: ConnectRouter, logger: Logger): void {
  router.handlers.forEach((handler, index) => {
    const wrapped = async (req: Parameters<UniversalHandler>[0]): Promise<UniversalServerResponse> => {
      let res: UniversalServerResponse;
      try {
        res = await handler(req);
      } catch (error) {
        return errorAnswer(req.header.get("content-type") ?? "", rejectedHandlerAnswer(error, logger, handler.requestPath));
      }
      return rewrite(res);
    };
    router.handlers[index] = Object.assign(wrapped, {
      protocolNames: handler.protocolNames,
      allowedMethods: handler.allowedMethods,
      supportedContentType: handler.supportedContentType,
      requestPath: handler.requestPath,
      service: handler.service,
      method: handler.method,
    });
  });
}

async function rewrite(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const contentType = res.header?.get("content-type") ?? "";
  // gRPC: the status travels in trailers, already final when a unary request failed to decode.
  const { trailer } = res;
  const grpcFault = trailer && FAULT_GRPC_STATUSES.has(trailer.get("grpc-status") ?? "") ? callerFault(decoded(trailer.get("grpc-message"))) : undefined;
  if (trailer && grpcFault) {
    setTrailerStatus(trailer, grpcFault);
    return res;
  }
  if (res.body === undefined || res.body instanceof Uint8Array) return res;
  // Connect unary: a JSON error body with HTTP 500 or 501 (uncompressed: error bodies are small).
  if ((res.status === 500 || res.status === 501) && contentType.startsWith("application/json") && !res.header?.has("content-encoding")) {
    const bytes = await readAll(res.body);
    const error = callerFault(connectErrorMessage(bytes));
    if (!error) return { ...res, body: createAsyncIterable([bytes]) };
    const body = errorToJsonBytes(error, {});
    const header = new Headers(res.header);
    header.set("content-length", String(body.byteLength));
    return { ...res, status: codeToHttpStatus(error.code), header, body: createAsyncIterable([body]) };
  }
  // gRPC-Web: the trailers are the body's last frame.
  if (contentType.startsWith("application/grpc-web")) {
    const body = res.body;
    return {
      ...res,
      body: (async function* () {
        for await (const chunk of body) yield rewriteGrpcWebTrailer(chunk);
      })(),
    };
  }
  return res;
}

function rewriteGrpcWebTrailer(chunk: Uint8Array): Uint8Array {
  if (chunk.byteLength < 5 || chunk[0] !== trailerFlag) return chunk;
  const length = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength).getUint32(1);
  if (length + 5 !== chunk.byteLength) return chunk;
  const trailer = trailerParse(chunk.subarray(5));
  const fault = FAULT_GRPC_STATUSES.has(trailer.get("grpc-status") ?? "") ? callerFault(decoded(trailer.get("grpc-message"))) : undefined;
  if (!fault) return chunk;
  setTrailerStatus(trailer, fault);
  return trailerFrame(trailer);
}

function trailerFrame(trailer: Headers): Uint8Array {
  const data = trailerSerialize(trailer);
  const frame = new Uint8Array(5 + data.byteLength);
  frame[0] = trailerFlag;
  new DataView(frame.buffer).setUint32(1, data.byteLength);
  frame.set(data, 5);
  return frame;
}

/** The `message` of a Connect error body with a code connect-es reports decoding faults under, or "". */
function connectErrorMessage(bytes: Uint8Array): string {
  try {
    const json = JSON.parse(Buffer.from(bytes).toString("utf8")) as { code?: unknown; message?: unknown };
    return FAULT_CONNECT_CODES.has(String(json.code)) && typeof json.message === "string" ? json.message : "";
  } catch {
    return "";
  }
}

/** A percent-encoded grpc-message, decoded; "" when absent or malformed. */
function decoded(value: string | null | undefined): string {
  try {
    return value ? decodeURIComponent(value) : "";
  } catch {
    return "";
  }
}

/** A complete error answer in the framing of the request's protocol. */
function errorAnswer(requestContentType: string, error: ConnectError): UniversalServerResponse {
  if (requestContentType.startsWith("application/grpc-web")) {
    const trailer = new Headers();
    setTrailerStatus(trailer, error);
    return { status: 200, header: new Headers({ "content-type": requestContentType.split(";")[0]! }), body: createAsyncIterable([trailerFrame(trailer)]) };
  }
  if (requestContentType.startsWith("application/grpc")) {
    const trailer = new Headers();
    setTrailerStatus(trailer, error);
    return { status: 200, header: new Headers({ "content-type": requestContentType.split(";")[0]! }), body: createAsyncIterable([]), trailer };
  }
  const body = errorToJsonBytes(error, {});
  return {
    status: codeToHttpStatus(error.code),
    header: new Headers({ "content-type": "application/json", "content-length": String(body.byteLength) }),
    body: createAsyncIterable([body]),
  };
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}
