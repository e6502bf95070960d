import { isIP } from "node:net";
import { availableParallelism } from "node:os";
import { readConnectionString } from "../database/connection-string.ts";
import { parseDuration } from "./duration.ts";

export type RegistrationMode = "open" | "invite" | "closed";
export type SigningAlgorithm = "EdDSA" | "ES256";
export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";

/** At most `limit` calls per sliding `windowMs` from one client address. */
export interface RateLimit {
  readonly limit: number;
  readonly windowMs: number;
}

/** Per-client-address limits (see src/abuse/); undefined turns one off. */
export interface RateLimits {
  readonly register: RateLimit | undefined;
  readonly login: RateLimit | undefined;
  /** Failed sign-ins, over any accounts: what stops one address spraying a password. */
  readonly loginFailures: RateLimit | undefined;
  readonly refresh: RateLimit | undefined;
  readonly introspect: RateLimit | undefined;
}

/** Brute-force throttling of passwords per sign-in identifier (see src/abuse/login-throttle.ts). */
export interface LoginThrottleConfig {
  /** Failures of one identifier from one address before delays begin. */
  readonly lockoutAfter: number;
  /** The first delay; each further failure doubles it, up to `lockoutMaxMs`. */
  readonly lockoutBaseMs: number;
  readonly lockoutMaxMs: number;
  /** Failures of one identifier, from all addresses together, after which addresses that failed are refused. */
  readonly maxFailures: number;
  /** How long failures are remembered. */
  readonly failureWindowMs: number;
}

export interface Config {
  /** Unset means: start the embedded PostgreSQL under `dataDir`. */
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly issuer: string;
  readonly audience: string;
  readonly accessTokenTtlMs: number;
  readonly sessionTtlMs: number;
  readonly sessionIdleTtlMs: number;
  readonly refreshReuseGraceMs: number;
  /** How long an authenticated session may be served from memory (caller-cache.ts); 0 = always ask the database. */
  readonly callerCacheTtlMs: number;
  readonly signingAlg: SigningAlgorithm;
  /** When set, private signing keys are stored encrypted with a key derived from it. */
  readonly signingKeySecret: string | undefined;
  readonly argon2: { readonly memoryKib: number; readonly iterations: number; readonly parallelism: number };
  readonly hashConcurrency: number;
  /** How many nice levels below the event loop the threads that hash run (hashing-priority.ts); 0 = none. */
  readonly hashNice: number;
  readonly registrationMode: RegistrationMode;
  /** Every assignable role: `admin`, `user` and the configured extras. */
  readonly roles: readonly string[];
  readonly corsOrigins: readonly string[];
  /** Browser cookie mode for refresh tokens (see src/auth/refresh-cookie.ts). */
  readonly refreshCookie: boolean;
  readonly bootstrapAdmin: { readonly email: string; readonly username: string; readonly password: string } | undefined;
  readonly logLevel: LogLevel;
  readonly maxRequestBytes: number;
  readonly maxCallTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  /** Slow-client defences: a request's headers, a whole request, and an idle connection. */
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Proxies (addresses or CIDR ranges) whose X-Forwarded-For is believed; empty: none. */
  readonly trustedProxies: readonly string[];
  readonly rateLimits: RateLimits;
  readonly loginThrottle: LoginThrottleConfig;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

type Env = Record<string, string | undefined>;

const BUILT_IN_ROLES = ["admin", "user"] as const;
const ROLE_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/**
 * Reads every GATEHOUSE_* variable (and DATABASE_URL), collecting all problems so that one
 * start-up attempt reports everything that is wrong, each naming its variable.
 */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const read = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };

  const duration = (name: string, fallback: string, { allowZero = false } = {}): number => {
    const text = read(name) ?? fallback;
    const ms = parseDuration(text);
    if (ms === undefined) {
      problems.push(`${name}="${text}" is not a duration; write it like 15m, 30d, 10s or 500ms`);
      return 0;
    }
    if (ms === 0 && !allowZero) problems.push(`${name} must be longer than zero`);
    return ms;
  };

  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const text = read(name);
    if (text === undefined) return fallback;
    const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name}="${text}" must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };

  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const text = read(name) ?? fallback;
    if (!(allowed as readonly string[]).includes(text)) {
      problems.push(`${name}="${text}" must be one of: ${allowed.join(", ")}`);
      return fallback;
    }
    return text as T;
  };

  const list = (name: string): string[] =>
    (read(name) ?? "")
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "");

  /** `<count>/<duration>` such as `60/1m`, or `off`. */
  const rateLimit = (name: string, fallback: string): RateLimit | undefined => {
    const text = read(name) ?? fallback;
    if (text.toLowerCase() === "off") return undefined;
    const match = /^(\d+)\s*\/\s*(\S+)$/.exec(text);
    const limit = match ? Number(match[1]) : Number.NaN;
    const windowMs = match ? parseDuration(match[2]!) : undefined;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1_000_000 || windowMs === undefined || windowMs < 1_000 || windowMs > 7 * 86_400_000) {
      problems.push(`${name}="${text}" must be a number of calls per window from 1s to 7d, like 60/1m or 20/1h, or off`);
      return undefined;
    }
    return { limit, windowMs };
  };

  const trustedProxies = list("GATEHOUSE_TRUSTED_PROXIES");
  for (const entry of trustedProxies) {
    const [address = "", prefix, ...rest] = entry.split("/");
    const family = isIP(address);
    const bits = family === 4 ? 32 : 128;
    const prefixOk = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
    if (family === 0 || !prefixOk || rest.length > 0) {
      problems.push(`GATEHOUSE_TRUSTED_PROXIES: "${entry}" is not an IP address or CIDR range such as 10.0.0.0/8 or fd00::/8`);
    }
  }

  // Read the way the connections will read it (the whole URL, query parameters included); no
  // message repeats it, as it usually holds a password.
  const databaseUrl = read("DATABASE_URL");
  if (databaseUrl !== undefined) {
    const example = "postgres://user:password@host:5432/database, or postgres://user@/database?host=/var/run/postgresql for a Unix socket";
    if (!/^postgres(ql)?:\/\//.test(databaseUrl)) {
      problems.push(`DATABASE_URL must be a PostgreSQL connection string such as ${example}`);
    } else {
      try {
        readConnectionString(databaseUrl);
      } catch (error) {
        const reason = error instanceof Error && error.message ? error.message : "unreadable";
        problems.push(`DATABASE_URL is not a PostgreSQL connection string Gatehouse can use (${reason}); write it like ${example}, with reserved characters in the password percent-encoded`);
      }
    }
  }

  const url = (name: string, fallback: string): string => {
    const text = read(name) ?? fallback;
    try {
      new URL(text);
    } catch {
      problems.push(`${name}="${text}" must be an absolute URL such as https://auth.example.com`);
    }
    return text;
  };

  const extraRoles = list("GATEHOUSE_ROLES").map((role) => role.toLowerCase());
  for (const role of extraRoles) {
    if (!ROLE_NAME.test(role)) {
      problems.push(`GATEHOUSE_ROLES: "${role}" is not a valid role name (a-z, 0-9, _ and -, starting with a letter, at most 32 characters)`);
    }
  }

  const corsOrigins = list("GATEHOUSE_CORS_ORIGINS");
  for (const origin of corsOrigins) {
    let ok = false;
    try {
      ok = new URL(origin).origin === origin;
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`GATEHOUSE_CORS_ORIGINS: "${origin}" is not an origin; write it like https://app.example.com (scheme, host and optional port, no path)`);
  }

  const certFile = read("GATEHOUSE_TLS_CERT_FILE");
  const keyFile = read("GATEHOUSE_TLS_KEY_FILE");
  if ((certFile === undefined) !== (keyFile === undefined)) {
    problems.push("GATEHOUSE_TLS_CERT_FILE and GATEHOUSE_TLS_KEY_FILE must be set together");
  }

  const bootstrap = {
    email: read("GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL"),
    username: read("GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME"),
    password: env.GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD || undefined,
  };
  const bootstrapSet = Object.values(bootstrap).filter((v) => v !== undefined).length;
  if (bootstrapSet !== 0 && bootstrapSet !== 3) {
    problems.push("GATEHOUSE_BOOTSTRAP_ADMIN_EMAIL, GATEHOUSE_BOOTSTRAP_ADMIN_USERNAME and GATEHOUSE_BOOTSTRAP_ADMIN_PASSWORD must be set together");
  }

  const config: Config = {
    databaseUrl,
    dataDir: read("GATEHOUSE_DATA_DIR") ?? ".gatehouse",
    host: read("GATEHOUSE_HOST") ?? "0.0.0.0",
    port: integer("GATEHOUSE_PORT", 8080, 0, 65535),
    tls: certFile && keyFile ? { certFile, keyFile } : undefined,
    issuer: url("GATEHOUSE_ISSUER", "http://localhost:8080"),
    audience: read("GATEHOUSE_AUDIENCE") ?? "gatehouse",
    accessTokenTtlMs: duration("GATEHOUSE_ACCESS_TOKEN_TTL", "15m"),
    sessionTtlMs: duration("GATEHOUSE_SESSION_TTL", "30d"),
    sessionIdleTtlMs: duration("GATEHOUSE_SESSION_IDLE_TTL", "7d"),
    refreshReuseGraceMs: duration("GATEHOUSE_REFRESH_REUSE_GRACE", "10s", { allowZero: true }),
    callerCacheTtlMs: duration("GATEHOUSE_CALLER_CACHE_TTL", "60s", { allowZero: true }),
    signingAlg: oneOf<SigningAlgorithm>("GATEHOUSE_SIGNING_ALG", "EdDSA", ["EdDSA", "ES256"]),
    signingKeySecret: env.GATEHOUSE_SIGNING_KEY_SECRET || undefined,
    argon2: {
      memoryKib: integer("GATEHOUSE_ARGON2_MEMORY_KIB", 19456, 1024, 4_194_304),
      iterations: integer("GATEHOUSE_ARGON2_ITERATIONS", 2, 1, 100),
      parallelism: integer("GATEHOUSE_ARGON2_PARALLELISM", 1, 1, 64),
    },
    // One core is left for everything else: a flood of sign-ins must not starve the cheap calls.
    hashConcurrency: integer("GATEHOUSE_HASH_CONCURRENCY", defaultHashConcurrency(), 1, 256),
    // ... and on a host whose cores are all hashing, the event loop still comes first.
    hashNice: integer("GATEHOUSE_HASH_NICE", 10, 0, 19),
    registrationMode: oneOf<RegistrationMode>("GATEHOUSE_REGISTRATION_MODE", "open", ["open", "invite", "closed"]),
    roles: [...new Set([...BUILT_IN_ROLES, ...extraRoles])],
    corsOrigins,
    refreshCookie: oneOf("GATEHOUSE_REFRESH_COOKIE", "off", ["on", "off"]) === "on",
    bootstrapAdmin:
      bootstrap.email && bootstrap.username && bootstrap.password
        ? { email: bootstrap.email, username: bootstrap.username, password: bootstrap.password }
        : undefined,
    logLevel: oneOf<LogLevel>("GATEHOUSE_LOG_LEVEL", "info", ["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
    maxRequestBytes: integer("GATEHOUSE_MAX_REQUEST_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024),
    maxCallTimeoutMs: duration("GATEHOUSE_MAX_CALL_TIMEOUT", "30s"),
    shutdownTimeoutMs: duration("GATEHOUSE_SHUTDOWN_TIMEOUT", "10s"),
    headersTimeoutMs: duration("GATEHOUSE_HEADERS_TIMEOUT", "10s"),
    requestTimeoutMs: duration("GATEHOUSE_REQUEST_TIMEOUT", "60s"),
    idleTimeoutMs: duration("GATEHOUSE_IDLE_TIMEOUT", "60s"),
    trustedProxies,
    rateLimits: {
      register: rateLimit("GATEHOUSE_RATE_LIMIT_REGISTER", "20/1h"),
      login: rateLimit("GATEHOUSE_RATE_LIMIT_LOGIN", "60/1m"),
      loginFailures: rateLimit("GATEHOUSE_RATE_LIMIT_LOGIN_FAILURES", "100/1h"),
      refresh: rateLimit("GATEHOUSE_RATE_LIMIT_REFRESH", "300/1m"),
      introspect: rateLimit("GATEHOUSE_RATE_LIMIT_INTROSPECT", "1200/1m"),
    },
    loginThrottle: {
      lockoutAfter: integer("GATEHOUSE_LOGIN_LOCKOUT_AFTER", 5, 1, 100),
      lockoutBaseMs: duration("GATEHOUSE_LOGIN_LOCKOUT_BASE", "1s"),
      lockoutMaxMs: duration("GATEHOUSE_LOGIN_LOCKOUT_MAX", "15m"),
      maxFailures: integer("GATEHOUSE_LOGIN_MAX_FAILURES", 50, 1, 100),
      failureWindowMs: duration("GATEHOUSE_LOGIN_FAILURE_WINDOW", "24h"),
    },
  };

  if (config.signingKeySecret !== undefined && config.signingKeySecret.length < 32) {
    problems.push("GATEHOUSE_SIGNING_KEY_SECRET must be at least 32 characters (for example the output of `openssl rand -base64 32`)");
  }
  if (config.sessionIdleTtlMs > config.sessionTtlMs) {
    problems.push("GATEHOUSE_SESSION_IDLE_TTL must not be longer than GATEHOUSE_SESSION_TTL");
  }
  if (config.headersTimeoutMs > config.requestTimeoutMs) {
    problems.push("GATEHOUSE_HEADERS_TIMEOUT must not be longer than GATEHOUSE_REQUEST_TIMEOUT");
  }
  if (config.loginThrottle.lockoutMaxMs < config.loginThrottle.lockoutBaseMs) {
    problems.push("GATEHOUSE_LOGIN_LOCKOUT_MAX must not be shorter than GATEHOUSE_LOGIN_LOCKOUT_BASE");
  }
  if (config.loginThrottle.failureWindowMs < 60_000 || config.loginThrottle.failureWindowMs > 30 * 86_400_000) {
    problems.push("GATEHOUSE_LOGIN_FAILURE_WINDOW must be from 1m to 30d");
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(config);
}

/** Password hashes at once by default: every core but one, and at least one. */
export function defaultHashConcurrency(): number {
  return Math.max(1, availableParallelism() - 1);
}
