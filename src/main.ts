import { ConfigError, loadConfig } from "./platform/config/config.ts";
import { createLogger } from "./platform/observability/logger.ts";
import { connectDatabase, startGatehouse } from "./gatehouse.ts";
import { runKeysCommand } from "./signing-keys/keys-command.ts";
import { CREATE_ADMIN_USAGE, runCreateAdmin } from "./cli/create-admin.ts";
import { runSeed, SEED_USAGE } from "./cli/seed.ts";

const USAGE = `Usage: gatehouse <command>

Commands:
  serve      Migrate the database and serve every protocol on one port (default)
  migrate    Apply pending database migrations and exit
  keys rotate  Sign new access tokens with a new key; old public keys stay in the JWKS until their tokens expire
  create-admin Create an admin user (password from standard input or a hidden prompt)
  seed       Create fake users for benchmarks (--count <n>)

Configuration comes from environment variables; see the README.`;

const COMMAND_USAGE: Record<string, string> = { "create-admin": CREATE_ADMIN_USAGE, seed: SEED_USAGE };

async function main(argv: string[]): Promise<number> {
  const [command = "serve", ...rest] = argv;
  if (command === "--help" || command === "-h" || command === "help" || rest.includes("--help")) {
    console.log(COMMAND_USAGE[command] ?? USAGE);
    return 0;
  }
  const config = loadConfig();
  const logger = createLogger(config.logLevel);

  switch (command) {
    case "serve": {
      // Listen for signals before starting, so one that arrives mid-start still shuts down cleanly.
      const signalled = new Promise<NodeJS.Signals>((resolve) => {
        for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => resolve(signal));
      });
      const gatehouse = await startGatehouse(config, logger);
      const signal = await signalled;
      logger.info({ signal }, "shutting down: draining in-flight calls");
      await gatehouse.stop();
      logger.info("stopped");
      return 0;
    }
    case "migrate": {
      const { orm, embedded } = await connectDatabase(config, logger);
      await orm.close();
      await embedded?.stop();
      logger.info("database is up to date");
      return 0;
    }
    case "keys":
      return runKeysCommand(rest, config, logger);
    // Their logs go to stderr: stdout carries only the command's result.
    case "create-admin":
      return runCreateAdmin(rest, config, createLogger(config.logLevel, process.stderr));
    case "seed":
      return runSeed(rest, config, createLogger(config.logLevel, process.stderr));
    default:
      console.error(`Unknown command "${command}".\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(78);
    }
    console.error("gatehouse failed to start:", error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
