import { gatehouseError } from "../platform/errors/gatehouse-error.ts";

/** The role that may manage users; the last enabled holder cannot lose it (LAST_ADMIN). */
export const ADMIN_ROLE = "admin";

/** The role of users who were given none. */
export const DEFAULT_ROLE = "user";

/**
 * Checks that every role is one the server knows (`admin`, `user` and GATEHOUSE_ROLES) and
 * returns them, or `user` when none were given. The shape of each name is already checked by
 * protovalidate; this is the part that depends on configuration.
 */
export function assignableRoles(requested: readonly string[], known: readonly string[]): string[] {
  const unknown = requested.filter((role) => !known.includes(role));
  if (unknown.length > 0) {
    throw gatehouseError(
      "VALIDATION_FAILED",
      `Unknown role${unknown.length > 1 ? "s" : ""} ${unknown.map((r) => `"${r}"`).join(", ")}; this server knows: ${known.join(", ")}.`,
      { metadata: { field: "roles" } },
    );
  }
  const roles = [...new Set(requested)];
  return roles.length > 0 ? roles : [DEFAULT_ROLE];
}
