import { defineEntity, p, type InferEntity } from "@mikro-orm/core";

/**
 * One security-relevant event (see audit-log.ts for the types), written in the same transaction
 * as the change it records. User and session ids are plain columns, not foreign keys: the trail
 * must outlive the users and sessions it mentions. `details` never holds a secret.
 */
export const AuditEventEntity = defineEntity({
  name: "AuditEvent",
  tableName: "audit_events",
  // ListAuditEvents walks (time, id) newest first, over everything or one user's events
  // (as actor or as subject) or one type.
  indexes: [
    { name: "audit_events_time_id_idx", properties: ["time", "id"] },
    { name: "audit_events_actor_time_id_idx", properties: ["actorUserId", "time", "id"] },
    { name: "audit_events_subject_time_id_idx", properties: ["subjectUserId", "time", "id"] },
    { name: "audit_events_type_time_id_idx", properties: ["type", "time", "id"] },
  ],
  properties: {
    id: p.uuid().primary().defaultRaw("gen_random_uuid()"),
    time: p.datetime(),
    type: p.string().length(64),
    outcome: p.string().length(16),
    actorUserId: p.uuid().nullable(),
    subjectUserId: p.uuid().nullable(),
    sessionId: p.uuid().nullable(),
    ip: p.string().length(64).default(""),
    userAgent: p.string().length(512).default(""),
    details: p.json<Record<string, unknown>>(),
  },
});

export type AuditEvent = InferEntity<typeof AuditEventEntity>;
