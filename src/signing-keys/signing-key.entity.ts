import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/**
 * An asymmetric key pair for access tokens, shared by every instance through the database.
 * The newest key whose `retireTime` is unset signs; every key stays in the JWKS until
 * `removeTime`, when no token it signed can still be valid.
 */
export const SigningKeyEntity = defineEntity({
  name: "SigningKey",
  tableName: "signing_keys",
  properties: {
    kid: p.string().length(64).primary(),
    algorithm: p.string().length(16),
    publicJwk: p.json<Record<string, unknown>>(),
    privateJwk: p.json<Record<string, unknown>>().hidden().lazy(),
    createTime: p.datetime().defaultRaw("now()"),
    retireTime: p.datetime().nullable(),
    removeTime: p.datetime().nullable(),
  },
});

export type SigningKey = InferEntity<typeof SigningKeyEntity>;
