import { create } from "@bufbuild/protobuf";
import type { GenMessage, GenService } from "@bufbuild/protobuf/codegenv2";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { describeFile, field, message, Type } from "./runtime-schema.ts";

/**
 * The standard gRPC health service, `grpc.health.v1.Health` (Check, Watch, List), described at
 * runtime from its published wire shape. Kubernetes gRPC probes, load balancers and
 * `grpc-health-probe` call it.
 */
export const ServingStatus = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

export type HealthCheckRequest = { $typeName: "grpc.health.v1.HealthCheckRequest"; service: string };
export type HealthCheckResponse = { $typeName: "grpc.health.v1.HealthCheckResponse"; status: ServingStatus };
export type HealthListRequest = { $typeName: "grpc.health.v1.HealthListRequest" };
export type HealthListResponse = {
  $typeName: "grpc.health.v1.HealthListResponse";
  statuses: { [service: string]: HealthCheckResponse };
};

const PKG = "grpc.health.v1";
const { file: healthFile, registry } = describeFile({
  name: "grpc/health/v1/health.proto",
  package: PKG,
  messageType: [
    message("HealthListRequest", []),
    message(
      "HealthListResponse",
      [field("statuses", 1, Type.MESSAGE, { typeName: `.${PKG}.HealthListResponse.StatusesEntry`, repeated: true })],
      {
        nestedType: [
          message(
            "StatusesEntry",
            [field("key", 1, Type.STRING), field("value", 2, Type.MESSAGE, { typeName: `.${PKG}.HealthCheckResponse` })],
            { options: { mapEntry: true } },
          ),
        ],
      },
    ),
    message("HealthCheckRequest", [field("service", 1, Type.STRING)]),
    message("HealthCheckResponse", [field("status", 1, Type.ENUM, { typeName: `.${PKG}.HealthCheckResponse.ServingStatus` })], {
      enumType: [
        {
          name: "ServingStatus",
          value: Object.entries(ServingStatus).map(([name, number]) => ({ name, number })),
        },
      ],
    }),
  ],
  service: [
    {
      name: "Health",
      method: [
        { name: "Check", inputType: `.${PKG}.HealthCheckRequest`, outputType: `.${PKG}.HealthCheckResponse` },
        {
          name: "Watch",
          inputType: `.${PKG}.HealthCheckRequest`,
          outputType: `.${PKG}.HealthCheckResponse`,
          serverStreaming: true,
        },
        { name: "List", inputType: `.${PKG}.HealthListRequest`, outputType: `.${PKG}.HealthListResponse` },
      ],
    },
  ],
});

export { healthFile };

export const HealthCheckResponseSchema = registry.getMessage(`${PKG}.HealthCheckResponse`) as unknown as GenMessage<HealthCheckResponse>;
export const HealthListResponseSchema = registry.getMessage(`${PKG}.HealthListResponse`) as unknown as GenMessage<HealthListResponse>;
export const Health = registry.getService(`${PKG}.Health`) as unknown as GenService<{
  check: { methodKind: "unary"; input: GenMessage<HealthCheckRequest>; output: GenMessage<HealthCheckResponse> };
  watch: { methodKind: "server_streaming"; input: GenMessage<HealthCheckRequest>; output: GenMessage<HealthCheckResponse> };
  list: { methodKind: "unary"; input: GenMessage<HealthListRequest>; output: GenMessage<HealthListResponse> };
}>;

export interface HealthServiceOptions {
  /** Fully-qualified names of the services whose status is reported; "" (the whole server) is always known. */
  services: readonly string[];
  /** Whether the services can do their work; here, whether the database answers. */
  isReady: () => Promise<boolean>;
  /** How often a Watch re-checks readiness. */
  watchIntervalMs?: number;
}

export interface HealthService {
  readonly impl: ServiceImpl<typeof Health>;
  /** Reports NOT_SERVING from now on and ends every Watch, so draining clients move elsewhere. */
  shutdown(): void;
}

/**
 * Every Gatehouse service needs the database, so each one — and the server as a whole ("") —
 * is SERVING exactly when the database answers, like `GET /readyz`.
 */
export function createHealthService(options: HealthServiceOptions): HealthService {
  const known = new Set(["", ...options.services]);
  const watchIntervalMs = options.watchIntervalMs ?? 2_000;
  const stopping = new AbortController();

  const statusOf = async (service: string): Promise<ServingStatus> => {
    if (!known.has(service)) return ServingStatus.SERVICE_UNKNOWN;
    if (stopping.signal.aborted) return ServingStatus.NOT_SERVING;
    return (await options.isReady()) ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  };
  const response = (status: ServingStatus) => create(HealthCheckResponseSchema, { status });

  return {
    impl: {
      async check(req) {
        const status = await statusOf(req.service);
        if (status === ServingStatus.SERVICE_UNKNOWN) {
          throw new ConnectError(`Unknown service "${req.service}".`, Code.NotFound);
        }
        return response(status);
      },
      async *watch(req, ctx: HandlerContext) {
        let last: ServingStatus | undefined;
        for (;;) {
          const status = await statusOf(req.service);
          if (status !== last) yield response(status);
          last = status;
          if (stopping.signal.aborted) return;
          await sleep(watchIntervalMs, AbortSignal.any([ctx.signal, stopping.signal]));
          if (ctx.signal.aborted) return;
        }
      },
      async list() {
        const ready = !stopping.signal.aborted && (await options.isReady());
        const statuses: HealthListResponse["statuses"] = {};
        for (const service of known) statuses[service] = response(ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
        return create(HealthListResponseSchema, { statuses });
      },
    },
    shutdown: () => stopping.abort(),
  };
}

/**
 * Coalesces concurrent readiness probes and reuses an answer for `maxAgeMs`, so a flood of
 * health checks costs at most one database round trip per interval.
 */
export function cachedReadiness(probe: () => Promise<boolean>, maxAgeMs = 1_000): () => Promise<boolean> {
  let last: { at: number; answer: Promise<boolean> } | undefined;
  return () => {
    const now = performance.now();
    if (!last || now - last.at > maxAgeMs) last = { at: now, answer: probe() };
    return last.answer;
  };
}

/** Resolves after `ms`, or as soon as the signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
