import type { DescMessage, DescService, JsonReadOptions, JsonWriteOptions } from "@bufbuild/protobuf";
import { createServiceImplSpec, type MethodImplSpec, type ServiceImpl, type ServiceImplSpec } from "@connectrpc/connect";
import { createMethodSerializationLookup, type validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";

/**
 * What the unary fast paths (grpc-unary.ts, connect-unary.ts) share: the unary methods they can
 * answer, keyed by request path, and the conversion of response headers for node:http(2).
 */
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
