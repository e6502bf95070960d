import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { ConnectError } from "@connectrpc/connect";
import type { MikroORM } from "@mikro-orm/postgresql";
import { sql } from "kysely";
import { CreateUserRequestSchema } from "../../gen/gatehouse/user/v1/user_pb.js";
import { systemAuditContext } from "../audit/audit-log.ts";
import { createPasswordHasher } from "../passwords/password-hasher.ts";
import { systemClock } from "../platform/clock.ts";
import { ConfigError, type Config } from "../platform/config/config.ts";
import type { EntityManager } from "../platform/database/orm.ts";
import { ErrorInfoSchema } from "../platform/errors/error-details.ts";
import { gatehouseError, reasonOf } from "../platform/errors/gatehouse-error.ts";
import type { Logger } from "../platform/observability/logger.ts";
import { createPageTokens } from "./page-token.ts";
import { ADMIN_ROLE } from "./roles.ts";
import { sqlExecutor } from "./transaction.ts";
import type { UserRecord } from "./user-mapper.ts";
import { anyAdmin } from "./user-repository.ts";
import { createUserService } from "./user-service.ts";

export interface AdminInput {
  username: string;
  email: string;
  password: string;
  firstName?: string;
  lastName?: string;
}

const validator = createValidator();

/**
 * Refuses what CreateUser would refuse, without the database: the request's protovalidate
 * rules (email shape, lengths) and then the service's own (username form, password policy).
 * Throws the same Gatehouse errors the API would send.
 */
export function checkAdminInput(input: AdminInput): void {
  const request = create(CreateUserRequestSchema, {
    user: { username: input.username, email: input.email, firstName: input.firstName ?? "", lastName: input.lastName ?? "" },
    password: input.password,
  });
  const result = validator.validate(CreateUserRequestSchema, request);
  if (result.kind === "error") throw result.error;
  if (result.kind === "invalid") {
    const problems = result.violations.map((v) => v.toString()).join("; ");
    // The deepest named field of the first violation: "username", "email", "password", …
    const field = result.violations[0]?.field.findLast((element) => element.kind === "field")?.name ?? "";
    throw gatehouseError("VALIDATION_FAILED", `The request is not valid: ${problems}.`, { metadata: { field } });
  }
}

/**
 * Creates a user with the `admin` role through the same rules as CreateUser (normalised
 * identity, password policy, argon2id with the configured parameters, unique indexes). Used by
 * `gatehouse create-admin` and by the start-up bootstrap.
 */
export async function createAdmin(
  em: EntityManager,
  config: Config,
  input: AdminInput,
  source: "cli" | "bootstrap" = "cli",
): Promise<UserRecord> {
  checkAdminInput(input);
  const users = createUserService({
    config,
    passwordHasher: createPasswordHasher(config),
    clock: systemClock,
    pageTokens: createPageTokens(),
  });
  return users.createUser(
    em,
    {
      username: input.username,
      email: input.email,
      firstName: input.firstName ?? "",
      lastName: input.lastName ?? "",
      roles: [ADMIN_ROLE],
      password: input.password,
    },
    systemAuditContext(),
    source,
  );
}

/** Every instance that starts at once takes this lock, so only one of them creates the admin. */
const BOOTSTRAP_LOCK = "gatehouse: bootstrap admin";

/**
 * GATEHOUSE_BOOTSTRAP_ADMIN_*: on a start where no user has the `admin` role, creates that
 * admin. Idempotent — once any admin exists (this one or another), it does nothing — and safe
 * when several instances start together. Values Gatehouse refuses (a weak password, a bad
 * username, a taken email) stop the start-up with a message naming the variable.
 */
export async function bootstrapAdmin(orm: MikroORM, config: Config, logger: Logger): Promise<void> {
  const wanted = config.bootstrapAdmin;
  if (!wanted) return;
  let created: UserRecord | undefined;
  try {
    created = await orm.em.fork().transactional(async (tx) => {
      const db = sqlExecutor(tx);
      await sql`SELECT pg_advisory_xact_lock(hashtext(${BOOTSTRAP_LOCK}))`.execute(db);
      if (await anyAdmin(db)) return undefined;
      return createAdmin(tx, config, wanted, "bootstrap");
    });
  } catch (error) {
    if (error instanceof ConnectError && reasonOf(error) !== undefined) throw new ConfigError([bootstrapProblem(error)]);
    throw error;
  }
  if (created) logger.info({ userId: created.id, username: created.username }, "created the bootstrap admin");
  else logger.info("an admin exists already; GATEHOUSE_BOOTSTRAP_ADMIN_* left unused");
}

function bootstrapProblem(error: ConnectError): string {
  const field = error.findDetails(ErrorInfoSchema)[0]?.metadata.field;
  switch (reasonOf(error)) {
    case "WEAK_PASSWORD":
      return `GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD is refused: ${error.rawMessage}`;
    case "USERNAME_TAKEN":
      return "GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME is taken by a user who is not an admin; choose another username";
    case "EMAIL_TAKEN":
      return "GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL belongs to a user who is not an admin; choose another address";
    default: {
      const variable = { username: "USERNAME", email: "EMAIL", password: "PASSWORD" }[field ?? ""] ?? "*";
      return `GATEHOUSE_BOOTSTRAP_ADMIN_${variable} is refused: ${error.rawMessage}`;
    }
  }
}
