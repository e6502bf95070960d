import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  AuditEventSchema,
  AuditEventType,
  AuditOutcome,
  type AuditEvent as AuditEventMessage,
} from "../../gen/gatehouse/user/v1/audit_pb.js";
import { AUDIT_EVENT_TYPES, type AuditEventType as StoredType } from "./audit-log.ts";
import type { AuditEventRecord } from "./audit-repository.ts";

/** `sign_in` ↔ AUDIT_EVENT_TYPE_SIGN_IN: the stored name is the enum value's name in lower case. */
export function toEventTypeMessage(type: StoredType): AuditEventType {
  return AuditEventType[type.toUpperCase() as keyof typeof AuditEventType] ?? AuditEventType.UNSPECIFIED;
}

export function fromEventTypeMessage(type: AuditEventType): StoredType | undefined {
  const name = AuditEventType[type]?.toLowerCase();
  return AUDIT_EVENT_TYPES.find((stored) => stored === name);
}

/** Row → wire message. */
export function toAuditEventMessage(event: AuditEventRecord): AuditEventMessage {
  return create(AuditEventSchema, {
    id: event.id,
    time: timestampFromDate(event.time),
    type: toEventTypeMessage(event.type),
    outcome: event.outcome === "success" ? AuditOutcome.SUCCESS : event.outcome === "failure" ? AuditOutcome.FAILURE : AuditOutcome.UNSPECIFIED,
    actorUserId: event.actorUserId ?? "",
    subjectUserId: event.subjectUserId ?? "",
    sessionId: event.sessionId ?? "",
    ipAddress: event.ip,
    userAgent: event.userAgent,
    details: event.details as JsonObject,
  });
}
