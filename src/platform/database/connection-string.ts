import pg from "pg";

/** Where a connection string leads, as Gatehouse's PostgreSQL driver (pg) reads it. */
export interface ConnectionTarget {
  /** A host name or address, or the directory of a Unix socket (`host=/var/run/postgresql`). */
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** True when `host` is a Unix socket directory. */
  readonly unixSocket: boolean;
}

/**
 * Reads a connection string the way every connection Gatehouse opens will (pg, through
 * pg-connection-string): all of it, query parameters included (`host=/socket/dir`, `port`,
 * `sslmode`, `application_name`, `options`…), with libpq's defaults (PGHOST, PGUSER…) for what it
 * leaves out. Opens nothing. Throws when pg cannot use the string; the message never repeats it.
 */
export function readConnectionString(connectionString: string): ConnectionTarget {
  // Only reads: a pg.Client connects on connect(), not when made.
  const client = new pg.Client({ connectionString });
  const port = client.port;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error("its port is not a number from 1 to 65535");
  const host = client.host;
  return { host, port, database: client.database ?? "", user: client.user ?? "", unixSocket: host.startsWith("/") };
}

/**
 * `url` leading to database `name` instead: only the path changes, so everything else the URL
 * says (`?host=/socket/dir`, `sslmode`, …) still counts. WHATWG's URL cannot be used here: it
 * refuses a URL without a host (`postgres://user@/db?host=/var/run/postgresql`), which pg and
 * Gatehouse accept.
 */
export function withDatabase(url: string, name: string): string {
  const parts = /^(postgres(?:ql)?:\/\/[^/?#]*)(?:\/[^?#]*)?(.*)$/s.exec(url);
  if (!parts) throw new Error("DATABASE_URL is not a postgres:// or postgresql:// URL");
  return `${parts[1]}/${encodeURIComponent(name)}${parts[2]}`;
}
