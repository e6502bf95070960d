/** Driver error codes that mean "the database cannot be reached right now", not "the query is wrong". */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
  "55P03", // lock_not_available: a row stayed locked past lock_timeout (the statement pipeline's)
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
]);

const UNAVAILABLE_MESSAGES = [
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "Client has encountered a connection error",
  "Connection refused",
];

/** True when an error (or one of its causes) says the database is down, unreachable or saturated. */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && UNAVAILABLE_CODES.has(code)) return true;
    // A Unix socket that is not there: the server is stopped (it removes its socket) or not yet started.
    if (code === "ENOENT" && (current as { syscall?: unknown }).syscall === "connect") return true;
    if (current.name === "ConnectionException") return true;
    if (UNAVAILABLE_MESSAGES.some((text) => current instanceof Error && current.message.includes(text))) return true;
    if (current instanceof AggregateError && current.errors.some(isDatabaseUnavailable)) return true;
    current = current.cause;
  }
  return false;
}

/** True when PostgreSQL cancelled a statement (statement_timeout or a cancelled call). */
export function isQueryCancelled(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; depth++) {
    if ((current as { code?: unknown }).code === "57014") return true;
    current = current.cause;
  }
  return false;
}

/** The PostgreSQL unique-constraint name an error violated, if that is what it is. */
export function violatedConstraint(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; depth++) {
    const { code, constraint } = current as { code?: unknown; constraint?: unknown };
    if (code === "23505" && typeof constraint === "string") return constraint;
    current = current.cause;
  }
  return undefined;
}
