import { ConfigError, loadConfig } from "./platform/config/config.ts";
import { asyncStdout, createLogger, flushLogger } from "./platform/observability/logger.ts";
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

Run "gatehouse <command> --help" for a command's own help.
Configuration comes from environment variables; see the README.`;

const SERVE_USAGE = `Usage: gatehouse serve

Starts PostgreSQL (embedded, unless DATABASE_URL is set), applies pending migrations and serves
Connect, gRPC and gRPC-Web on GATEHOUSE_HOST:GATEHOUSE_PORT (default 0.0.0.0:8080), with
/healthz, /readyz, /metrics and /.well-known/jwks.json beside them. A database that cannot be
reached yet is retried with backoff while the server answers 503 / unavailable. SIGINT, SIGTERM
or SIGHUP drains in-flight calls (up to GATEHOUSE_SHUTDOWN_TIMEOUT), then stops.`;

const MIGRATE_USAGE = `Usage: gatehouse migrate

Applies every pending database migration in one transaction, logs the ones applied, and exits.
Run it once as a release step before rolling out several instances.`;

const KEYS_USAGE = `Usage: gatehouse keys rotate

Generates a new signing key (GATEHOUSE_SIGNING_ALG); every instance signs with it within a
minute. Tokens signed with the old key keep verifying until they expire: its public key stays in
/.well-known/jwks.json until then.`;

const COMMAND_USAGE: Record<string, string> = {
  serve: SERVE_USAGE,
  migrate: MIGRATE_USAGE,
  keys: KEYS_USAGE,
  "create-admin": CREATE_ADMIN_USAGE,
  seed: SEED_USAGE,
};

async function main(argv: string[]): Promise<number> {
  const [command = "serve", ...rest] = argv;
  if (command === "--help" || command === "-h" || command === "help") {
    // `gatehouse help seed` is `gatehouse seed --help`.
    console.log((rest[0] && Object.hasOwn(COMMAND_USAGE, rest[0]) ? COMMAND_USAGE[rest[0]] : undefined) ?? USAGE);
    return 0;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(Object.hasOwn(COMMAND_USAGE, command) ? COMMAND_USAGE[command] : USAGE);
    return 0;
  }
  const config = loadConfig();
  const logger = createLogger(config.logLevel, command === "serve" ? asyncStdout() : undefined);

  switch (command) {
    case "serve": {
      // Listen for signals before starting, so one that arrives mid-start still shuts down cleanly.
      const signalled = new Promise<NodeJS.Signals>((resolve) => {
        for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(signal, () => resolve(signal));
      });
      const gatehouse = await startGatehouse(config, logger);
      // Start-up work that waited for the database can still fail for good (a refused bootstrap
      // value, say): then stop as a failed start would have.
      const failed = gatehouse.ready.then(() => new Promise<never>(() => {}));
      const outcome = await Promise.race([signalled, failed.catch((error: unknown) => ({ error }))]);
      if (typeof outcome === "object") {
        await gatehouse.stop();
        await flushLogger(logger);
        throw outcome.error;
      }
      logger.info({ signal: outcome }, "shutting down: draining in-flight calls");
      await gatehouse.stop();
      logger.info("stopped");
      await flushLogger(logger);
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
    console.error(`gatehouse failed to start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
