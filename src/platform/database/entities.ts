import { LoginFailureEntity } from "../../abuse/login-failure.entity.ts";
import { RateLimitWindowEntity } from "../../abuse/rate-limit-window.entity.ts";
import { AuditEventEntity } from "../../audit/audit-event.entity.ts";
import { InvitationEntity } from "../../invitations/invitation.entity.ts";
import { RefreshTokenEntity } from "../../sessions/refresh-token.entity.ts";
import { SessionEntity } from "../../sessions/session.entity.ts";
import { SigningKeyEntity } from "../../signing-keys/signing-key.entity.ts";
import { PageTokenKeyEntity } from "../../users/page-token-key.entity.ts";
import { UserEntity } from "../../users/user.entity.ts";

/** Every table Gatehouse owns; migrations are generated from these. */
export const ENTITIES = [
  UserEntity,
  SessionEntity,
  RefreshTokenEntity,
  InvitationEntity,
  SigningKeyEntity,
  PageTokenKeyEntity,
  RateLimitWindowEntity,
  LoginFailureEntity,
  AuditEventEntity,
];
