import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/**
 * One fixed window of one rate-limit key (for example `login:203.0.113.7`): how many calls it
 * let through. rate-limiter.ts reads the current and the previous window as one sliding window;
 * a row is deleted after `expireTime`, when it no longer counts for either.
 */
export const RateLimitWindowEntity = defineEntity({
  name: "RateLimitWindow",
  tableName: "rate_limit_windows",
  properties: {
    key: p.string().length(128).primary(),
    windowStart: p.datetime().primary(),
    hits: p.integer().default(0),
    /** The decision on the latest call under this key: how the counting statement returns it. */
    allowed: p.boolean().default(true),
    expireTime: p.datetime().index("rate_limit_windows_expire_time_idx"),
  },
});

export type RateLimitWindow = InferEntity<typeof RateLimitWindowEntity>;
