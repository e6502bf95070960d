import { ConnectError } from "@connectrpc/connect";
import type { Readable, Writable } from "node:stream";
import type { Config } from "../platform/config/config.ts";
import type { Logger } from "../platform/observability/logger.ts";
import { checkAdminInput, createAdmin } from "../users/first-admin.ts";
import { parseFlags, UsageError } from "./arguments.ts";
import { openCommandDatabase } from "./database.ts";
import { readPassword } from "./password-input.ts";

export const CREATE_ADMIN_USAGE = `Usage: gatehouse create-admin --email <address> --username <name> [--first-name <name>] [--last-name <name>]

Creates a user with the admin role. The password is read from standard input when it is piped
(echo "$PASSWORD" | gatehouse create-admin …) or asked for at a hidden prompt; it is never
accepted on the command line.`;

export interface CommandIo {
  stdin: Readable;
  stdout: Writable;
  stderr: Writable;
}

/** `gatehouse create-admin`: returns the exit code (0 created, 1 refused, 2 usage). */
export async function runCreateAdmin(
  args: readonly string[],
  config: Config,
  logger: Logger,
  io: CommandIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  let flags: Map<string, string>;
  try {
    if (args.some((arg) => arg === "--password" || arg.startsWith("--password="))) {
      throw new UsageError("a password is never taken from the command line, where other users and the shell history can read it; pipe it on standard input or type it at the prompt");
    }
    flags = parseFlags(args, ["email", "username", "first-name", "last-name"]);
    for (const required of ["email", "username"]) {
      if (!flags.get(required)) throw new UsageError(`--${required} is required`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr.write(`gatehouse create-admin: ${error.message}\n\n${CREATE_ADMIN_USAGE}\n`);
    return 2;
  }

  let password: string;
  try {
    password = await readPassword(io.stdin, io.stderr);
  } catch (error) {
    io.stderr.write(`gatehouse create-admin: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  const input = {
    email: flags.get("email")!,
    username: flags.get("username")!,
    firstName: flags.get("first-name") ?? "",
    lastName: flags.get("last-name") ?? "",
    password,
  };

  try {
    // Refuse a weak password or a malformed name before starting a database for nothing.
    checkAdminInput(input);
    const database = await openCommandDatabase(config, logger, io.stderr, "create-admin");
    if (!database) return 1;
    const { orm, embedded } = database;
    try {
      const admin = await createAdmin(orm.em.fork(), config, input);
      io.stdout.write(`Created admin "${admin.username}" <${admin.email}> with id ${admin.id}.\n`);
      return 0;
    } finally {
      await orm.close();
      await embedded?.stop();
    }
  } catch (error) {
    if (error instanceof ConnectError) {
      io.stderr.write(`gatehouse create-admin: ${error.rawMessage}\n`);
      return 1;
    }
    throw error;
  }
}
