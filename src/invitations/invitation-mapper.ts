import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { InvitationSchema, type Invitation as InvitationMessage } from "../../gen/gatehouse/user/v1/user_pb.js";
import type { InvitationRecord } from "./invitation-repository.ts";

/** Row → wire message. `code` is only ever passed by CreateInvitation, the one time it exists in clear. */
export function toInvitationMessage(invitation: InvitationRecord, code = ""): InvitationMessage {
  return create(InvitationSchema, {
    id: invitation.id,
    code,
    roles: [...invitation.roles],
    email: invitation.email ?? "",
    maxUses: invitation.maxUses,
    useCount: invitation.useCount,
    expireTime: timestampFromDate(invitation.expireTime),
    createTime: timestampFromDate(invitation.createTime),
  });
}
