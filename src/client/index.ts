/**
 * `gatehouse/client`: what another Node service needs to trust Gatehouse's access tokens.
 * The generated API clients are exported beside it as `gatehouse/auth/v1` and `gatehouse/user/v1`.
 */
export {
  AccessTokenError,
  createAccessTokenVerifier,
  verifyAccessToken,
  type AccessTokenAlgorithm,
  type AccessTokenClaims,
  type AccessTokenErrorCode,
  type AccessTokenVerifier,
  type VerifyAccessTokenOptions,
} from "./verify-access-token.ts";
