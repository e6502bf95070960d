import type { DescFile, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { createHealthService, Health } from "./grpc-health.ts";
import { createReflectionImpls, SchemaIndex, ServerReflectionV1, ServerReflectionV1Alpha } from "./reflection.ts";

export interface GrpcPlatformOptions {
  /** Gatehouse's own services: reported by health, described by reflection. */
  services: readonly DescService[];
  /** Further files reflection describes, such as the error-detail messages clients decode. */
  extraFiles?: readonly DescFile[];
  /** Whether those services can work (the database answers). */
  isReady: () => Promise<boolean>;
  watchIntervalMs?: number;
}

export interface GrpcPlatform {
  /** Registers grpc.health.v1.Health and both reflection versions on a Connect router. */
  routes(router: ConnectRouter): void;
  /** Health turns NOT_SERVING and open Watch streams end, before the server drains. */
  shutdown(): void;
}

/** The standard gRPC operational services every gRPC tool expects beside an API: health and reflection. */
export function createGrpcPlatform(options: GrpcPlatformOptions): GrpcPlatform {
  const health = createHealthService({
    services: options.services.map((s) => s.typeName),
    isReady: options.isReady,
    ...(options.watchIntervalMs === undefined ? {} : { watchIntervalMs: options.watchIntervalMs }),
  });
  const reflection = createReflectionImpls(
    new SchemaIndex([...options.services, Health, ServerReflectionV1, ServerReflectionV1Alpha], options.extraFiles),
  );
  return {
    routes(router) {
      router.service(Health, health.impl);
      router.service(ServerReflectionV1, reflection.v1);
      router.service(ServerReflectionV1Alpha, reflection.v1alpha);
    },
    shutdown: () => health.shutdown(),
  };
}
