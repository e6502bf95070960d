import type { DescMessage, DescService, JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import {
  createHandlerContext,
  createServiceImplSpec,
  type ConnectError,
  type ContextValues,
  type Interceptor,
  type MethodImplSpec,
  type ServiceImpl,
  type ServiceImplSpec,
} from "@connectrpc/connect";
import { universalRequestFromNodeRequest } from "@connectrpc/connect-node";
import { createMethodSerializationLookup, type Compression, type validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import type { Logger } from "../observability/logger.ts";
import type { HttpRequest, HttpResponse } from "./http-routes.ts";

/**
 * What the unary fast paths (grpc-unary.ts, connect-unary.ts) share: their options, the unary
 * methods they can answer, keyed by request path, and the conversion of response headers for
 * node:http(2).
 */
export interface UnaryFastPathOptions {
  /** The services and their implementations (`serviceSpec`), as registered on the fallback's router. */
  services: readonly ServiceImplSpec[];
  interceptors: Interceptor[];
  readMaxBytes: number;
  contextValues: (req: HttpRequest) => ContextValues;
  /** connect-node's default when unset: gzip and brotli. */
  acceptCompression?: Compression[];
  /**
   * What the caller is told for an error raised while decoding the request, before any
   * interceptor runs (the fallback's router rewrites the same errors the same way).
   */
  answerDecodingError: (error: ConnectError) => ConnectError;
  /** The answer when answering itself fails (the fallback's router answers the same). */
  answerRejected: (error: unknown, procedure: string) => ConnectError;
  logger: Logger;
  /** Every request the fast path does not take. */
  fallback: (req: HttpRequest, res: HttpResponse) => void;
}

export interface UnaryRoute {
  spec: MethodImplSpec<DescMessage, DescMessage> & { kind: "unary" };
  serialization: ReturnType<typeof createMethodSerializationLookup<DescMessage, DescMessage>>;
}

/** A service and its implementation, typed as `router.service` takes them. */
export function serviceSpec<S extends DescService>(service: S, implementation: Partial<ServiceImpl<S>>): ServiceImplSpec {
  // connect-es types createServiceImplSpec for any service; this signature checks the pairing.
  return createServiceImplSpec(service, implementation as Partial<ServiceImpl<DescService>>);
}

/** Every unary method of `services` by its path (`/package.Service/Method`), serialized as connect-es would. */
export function unaryRoutes(
  services: readonly ServiceImplSpec[],
  limits: ReturnType<typeof validateReadWriteMaxBytes>,
  jsonOptions?: Partial<JsonReadOptions & JsonWriteOptions>,
): Map<string, UnaryRoute> {
  const routes = new Map<string, UnaryRoute>();
  for (const { service, methods } of services) {
    for (const spec of Object.values(methods)) {
      if (spec.kind !== "unary") continue;
      routes.set(`/${service.typeName}/${spec.method.name}`, {
        spec: spec as UnaryRoute["spec"],
        serialization: createMethodSerializationLookup(spec.method, undefined, jsonOptions, limits),
      });
    }
  }
  return routes;
}

/**
 * The handler context of a unary call, built as connect-es' protocol handlers build it, with
 * connect-node's request adapter (request headers, URL, the signal tied to the connection).
 */
export function unaryCallContext(
  route: UnaryRoute,
  call: { protocolName: string; timeoutMs: number | undefined; responseHeader: Record<string, string>; responseTrailer?: Record<string, string> },
  req: HttpRequest,
  res: HttpResponse,
  contextValues: ContextValues,
): ReturnType<typeof createHandlerContext> {
  const uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues);
  return createHandlerContext({
    ...route.spec,
    ...call,
    service: route.spec.method.parent,
    requestMethod: "POST",
    requestSignal: uReq.signal,
    requestHeader: uReq.header,
    url: uReq.url,
    contextValues: uReq.contextValues,
  });
}

/** The request's path without its query string. */
export function pathOf(url: string | undefined): string {
  return (url ?? "").split("?", 1)[0]!;
}

/** Headers for node:http and node:http2: every field once, set-cookie as its list. */
export function nodeHeaders(headers: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of headers) out[name] = value;
  if (headers.has("set-cookie")) out["set-cookie"] = headers.getSetCookie();
  return out;
}
