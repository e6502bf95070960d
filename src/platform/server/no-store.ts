import { ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * `Cache-Control: no-store` on every API answer, errors included: token pairs (Register, Login,
 * Refresh, ChangePassword), profiles and user lists must never be kept by a browser or a proxy
 * (RFC 6749 §5.1 asks it of token responses). Connect GET on side-effect-free methods would
 * otherwise be cacheable.
 */
export function createNoStoreInterceptor(): Interceptor {
  return (next) => async (req) => {
    try {
      const res = await next(req);
      res.header.set("cache-control", "no-store");
      return res;
    } catch (error) {
      if (error instanceof ConnectError) error.metadata.set("cache-control", "no-store");
      throw error;
    }
  };
}
