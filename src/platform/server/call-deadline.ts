import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * Every call ends by its deadline: the client's (`grpc-timeout`, `connect-timeout-ms`), but never
 * later than `maxCallTimeoutMs` after it started — a call with no deadline or a one-day one is
 * capped, not refused. At the deadline the caller gets `deadline_exceeded` at once; the handler's
 * signal is aborted, which cancels its database work (see database/call-scope.ts), and whatever
 * it still returns is dropped.
 *
 * The signal handed on aborts only while the call runs: Connect also aborts the call's own
 * signal after a normal response, and work that outlives a successful call must not be cut off.
 */
export function createCallDeadlineInterceptor(maxCallTimeoutMs: number): Interceptor {
  return (next) => async (req) => {
    const controller = new AbortController();
    const end = (reason: unknown) => controller.abort(asConnectError(reason));
    const onCallerAbort = () => end(req.signal.reason);
    const timer = setTimeout(
      () => end(new ConnectError(`The call took longer than the server allows (${maxCallTimeoutMs} ms).`, Code.DeadlineExceeded)),
      maxCallTimeoutMs,
    );
    if (req.signal.aborted) onCallerAbort();
    else req.signal.addEventListener("abort", onCallerAbort, { once: true });
    const { signal } = controller;
    try {
      const call = next({ ...req, signal });
      return await new Promise<Awaited<typeof call>>((resolve, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
        call.then(resolve, reject);
      });
    } finally {
      clearTimeout(timer);
      req.signal.removeEventListener("abort", onCallerAbort);
    }
  };
}

function asConnectError(reason: unknown): ConnectError {
  if (reason instanceof ConnectError) return reason;
  return new ConnectError("The call was cancelled.", Code.Canceled);
}
