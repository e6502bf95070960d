import { pino, type Logger } from "pino";
import type { LogLevel } from "../config/config.ts";

export type { Logger };

/** Field paths that may hold a secret; pino replaces them before a line is written. */
const REDACT = [
  "password",
  "*.password",
  "*.*.password",
  "*.currentPassword",
  "*.newPassword",
  "*.passwordConfirmation",
  "*.token",
  "*.refreshToken",
  "*.accessToken",
  "*.invitationCode",
  "*.code",
  "headers.authorization",
  "headers.cookie",
  "*.headers.authorization",
  "*.headers.cookie",
  "databaseUrl",
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
