import { Code, ConnectError } from "@connectrpc/connect";

/** The answer of a method whose feature has not been built yet. */
export function notBuiltYet(method: string): never {
  throw new ConnectError(`${method} is not available on this server yet.`, Code.Unimplemented);
}
