/**
 * Connect aborts two AbortSignals at the end of every call, both without a reason: the call
 * context's, and connect-node's request signal when the response closes. Node then builds a fresh
 * `DOMException("This operation was aborted", "AbortError")` for each, and capturing its stack
 * trace costs more than the rest of the abort: about 6 % of the server's main thread under a
 * refresh load (docs/benchmarks.md).
 *
 * Nobody reads those stack traces: an abort without a reason only ever says "this was aborted".
 * So every such abort in this process shares one AbortError, made once. Its name, message and
 * class are what the web platform gives, so `signal.reason` still reads as an AbortError
 * everywhere (Connect turns it into `canceled`); only the object and its stack are shared. Aborts
 * that carry their own reason keep it.
 */
const sharedAbortError = new DOMException("This operation was aborted", "AbortError");
let installed = false;

export function shareAbortReasons(): void {
  if (installed) return;
  installed = true;
  const abort = AbortController.prototype.abort;
  // A method, not an arrow: `this` is the controller being aborted.
  AbortController.prototype.abort = function abortWithSharedReason(this: AbortController, reason?: unknown): void {
    abort.call(this, reason === undefined ? sharedAbortError : reason);
  };
}
