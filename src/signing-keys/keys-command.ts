import { connectDatabase } from "../gatehouse.ts";
import { systemClock } from "../platform/clock.ts";
import type { Config } from "../platform/config/config.ts";
import type { Logger } from "../platform/observability/logger.ts";
import { rotateSigningKey } from "./signing-keys.ts";

/**
 * `gatehouse keys rotate`: every instance signs with the new key within a minute; tokens signed
 * with the old one keep verifying (its public key stays in the JWKS) until they have expired.
 */
export async function runKeysCommand(args: readonly string[], config: Config, logger: Logger): Promise<number> {
  if (args[0] !== "rotate" || args.length > 1) {
    console.error("Usage: gatehouse keys rotate");
    return 2;
  }
  const { orm, embedded } = await connectDatabase(config, logger);
  try {
    const { kid, retired } = await rotateSigningKey(orm.em.getConnection().getClient(), config, systemClock);
    console.log(`New signing key ${kid} (${config.signingAlg}) is active.`);
    if (retired.length > 0) console.log(`Retired ${retired.join(", ")}: still published until the tokens they signed have expired.`);
    return 0;
  } finally {
    await orm.close();
    await embedded?.stop();
  }
}
