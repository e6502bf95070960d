import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/**
 * The secret that signs list page tokens. It lives in the database, not in a process, so a
 * token one instance issued is accepted by every other: there is exactly one row (id 1),
 * created by whichever instance needs it first.
 */
export const PageTokenKeyEntity = defineEntity({
  name: "PageTokenKey",
  tableName: "page_token_keys",
  properties: {
    id: p.integer().primary().autoincrement(false),
    key: p.type("bytea").columnType("bytea").hidden(),
    createTime: p.datetime().defaultRaw("now()"),
  },
});

export type PageTokenKey = InferEntity<typeof PageTokenKeyEntity>;
