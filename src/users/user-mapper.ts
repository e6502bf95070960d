import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { UserSchema, type User as UserMessage } from "../../gen/gatehouse/user/v1/user_pb.js";

/** The columns a User message is built from; never the password hash. */
export interface UserRecord {
  id: string;
  username: string;
  email: string;
  firstName: string;
  lastName: string;
  roles: readonly string[];
  disabled: boolean;
  createTime: Date;
  updateTime: Date;
  lastLoginTime?: Date | null;
}

/** Entity (or row) → wire message. Entities never cross the wire themselves. */
export function toUserMessage(user: UserRecord): UserMessage {
  return create(UserSchema, {
    id: user.id,
    username: user.username,
    email: user.email,
    firstName: user.firstName,
    lastName: user.lastName,
    roles: [...user.roles],
    disabled: user.disabled,
    createTime: timestampFromDate(user.createTime),
    updateTime: timestampFromDate(user.updateTime),
    lastLoginTime: user.lastLoginTime ? timestampFromDate(user.lastLoginTime) : undefined,
  });
}
