import type { User as UserMessage } from "../../gen/gatehouse/user/v1/user_pb.js";
import { gatehouseError } from "../platform/errors/gatehouse-error.ts";

/** The fields UpdateUser can change, by their proto field names (the update_mask paths). */
export const UPDATABLE_FIELDS = ["username", "email", "first_name", "last_name", "roles", "disabled"] as const;
export type UpdatableField = (typeof UPDATABLE_FIELDS)[number];

/** What only an admin may change, on anyone. */
export const ADMIN_ONLY_FIELDS: readonly UpdatableField[] = ["roles", "disabled"];

/**
 * The fields an UpdateUser request changes, per AIP-134: no mask → the fields that are set
 * (non-empty, true); `*` → all of them (a full replacement); otherwise exactly the named paths.
 * protovalidate already refused unknown paths; this refuses them again so that a request
 * reaching this code without the interceptor cannot widen the change.
 */
export function fieldsToUpdate(user: UserMessage, maskPaths: readonly string[] | undefined): Set<UpdatableField> {
  if (maskPaths === undefined) {
    const populated = new Set<UpdatableField>();
    if (user.username !== "") populated.add("username");
    if (user.email !== "") populated.add("email");
    if (user.firstName !== "") populated.add("first_name");
    if (user.lastName !== "") populated.add("last_name");
    if (user.roles.length > 0) populated.add("roles");
    if (user.disabled) populated.add("disabled");
    return populated;
  }
  if (maskPaths.includes("*")) {
    if (maskPaths.length > 1) {
      throw gatehouseError("VALIDATION_FAILED", 'The update mask "*" cannot be combined with other paths.', {
        metadata: { field: "update_mask" },
      });
    }
    return new Set(UPDATABLE_FIELDS);
  }
  const fields = new Set<UpdatableField>();
  for (const path of maskPaths) {
    if (!(UPDATABLE_FIELDS as readonly string[]).includes(path)) {
      throw gatehouseError("VALIDATION_FAILED", `The update mask names "${path}", which UpdateUser cannot change.`, {
        metadata: { field: "update_mask" },
      });
    }
    fields.add(path as UpdatableField);
  }
  return fields;
}
