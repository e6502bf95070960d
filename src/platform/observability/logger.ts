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
