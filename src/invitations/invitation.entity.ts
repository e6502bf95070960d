import { defineEntity, p, type InferEntity } from "@mikro-orm/core";
import { UserEntity } from "../users/user.entity.ts";

/** A sign-up invitation. Only the SHA-256 hash of its code is stored; the code is shown once. */
export const InvitationEntity = defineEntity({
  name: "Invitation",
  tableName: "invitations",
  indexes: [{ name: "invitations_create_time_id_idx", properties: ["createTime", "id"] }],
  properties: {
    id: p.uuid().primary().defaultRaw("gen_random_uuid()"),
    codeHash: p.type("bytea").columnType("bytea").unique("invitations_code_hash_key").hidden(),
    roles: p.array().default([]),
    email: p.string().length(254).nullable(),
    maxUses: p.integer().default(1),
    useCount: p.integer().default(0),
    expireTime: p.datetime(),
    createTime: p.datetime().defaultRaw("now()"),
    creator: () => p.manyToOne(UserEntity).nullable().deleteRule("set null"),
  },
});

export type Invitation = InferEntity<typeof InvitationEntity>;
