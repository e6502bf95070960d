import { pino, type Logger } from "pino";
import type { LogLevel } from "../config/config.ts";

export type { Logger };

/**
 * Field paths that may hold a secret; pino replaces them before a line is written. Nothing logs
 * a request body or headers on purpose (see request-log.ts); these catch an object logged
 * carelessly, at the top level or one or two levels down. `code` is only redacted inside an
 * invitation: elsewhere it is an RPC or error code an operator needs (`ECONNREFUSED`, `57P01`).
 * test/security/secrets-in-logs.test.ts greps a full run's logs for every secret it used.
 */
const SECRET_FIELDS = [
  "password",
  "currentPassword",
  "newPassword",
  "passwordConfirmation",
  "passwordHash",
  "password_hash",
  "token",
  "accessToken",
  "refreshToken",
  "invitationCode",
  "authorization",
  "cookie",
  "databaseUrl",
  "signingKeySecret",
];
const REDACT = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((field) => `*.${field}`),
  ...SECRET_FIELDS.map((field) => `*.*.${field}`),
  "invitation.code",
  "*.invitation.code",
  "headers.authorization",
  "headers.cookie",
  'headers["set-cookie"]',
  "*.headers.authorization",
  "*.headers.cookie",
  '*.headers["set-cookie"]',
];

/** The longest a log line waits in asyncStdout's buffer. */
export const LOG_FLUSH_INTERVAL_MS = 200;

/**
 * Standard output, written asynchronously and in batches: a busy server writes one line per call,
 * and a synchronous write per line kept the event loop waiting on the terminal or pipe, while an
 * asynchronous write per line woke a thread-pool thread per call (~3 % of the main thread under
 * load, and a context switch each). Lines now collect until 4 KiB are waiting or
 * LOG_FLUSH_INTERVAL_MS has passed, whichever comes first; pino flushes what is left
 * synchronously when the process exits.
 */
export function asyncStdout(): pino.DestinationStream {
  return pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: LOG_FLUSH_INTERVAL_MS });
}

/** Resolves once every line logged so far is written (before exiting, so lines keep their order). */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "gatehouse" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
