import type { MikroORM } from "@mikro-orm/postgresql";
import { sendJson, type HttpRoute } from "./http-routes.ts";

const READINESS_TIMEOUT_MS = 2_000;

/**
 * `/healthz`: the process answers. `/readyz`: and it takes calls — its start-up work is done and
 * its database answers (`isReady`, see database/readiness.ts).
 */
export function createHealthRoutes(isReady: () => Promise<boolean>): Record<string, HttpRoute> {
  return {
    "/healthz": (_req, res) => sendJson(res, 200, { status: "ok" }, { "cache-control": "no-store" }),
    "/readyz": async (_req, res) => {
      const ready = await isReady();
      sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "database unavailable" }, { "cache-control": "no-store" });
    },
  };
}

export async function isDatabaseReachable(orm: MikroORM): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), READINESS_TIMEOUT_MS)));
  const probe = orm.em
    .getConnection()
    .execute("select 1")
    .then(() => true as const)
    .catch(() => false as const);
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
