import { ConfigError, loadConfig } from "./platform/config/config.ts";
import { createLogger } from "./platform/observability/logger.ts";
import { connectDatabase, startGatehouse } from "./gatehouse.ts";
import { runKeysCommand } from "./signing-keys/keys-command.ts";

const USAGE = `Usage: gatehouse <command>

Commands:
  serve      Migrate the database and serve every protocol on one port (default)
  migrate    Apply pending database migrations and exit
  keys rotate  Sign new access tokens with a new key; old public keys stay in the JWKS until their tokens expire

Configuration comes from environment variables; see the README.`;

async function main(argv: string[]): Promise<number> {
  const [command = "serve", ...rest] = argv;
  if (command === "--help" || command === "-h" || command === "help" || rest.includes("--help")) {
    console.log(USAGE);
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
