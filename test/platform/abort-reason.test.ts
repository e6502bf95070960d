import assert from "node:assert/strict";
import { test } from "node:test";
import { shareAbortReasons } from "../../src/platform/server/abort-reason.ts";

test("aborts without a reason share one AbortError; aborts with a reason keep theirs", () => {
  shareAbortReasons();
  shareAbortReasons(); // installing twice changes nothing

  const [a, b, c] = [new AbortController(), new AbortController(), new AbortController()];
  let heard: unknown;
  a.signal.addEventListener("abort", () => (heard = a.signal.reason));
  a.abort();
  b.abort(undefined);
  assert.ok(a.signal.aborted && b.signal.aborted);
  assert.ok(a.signal.reason instanceof DOMException);
  assert.equal(a.signal.reason.name, "AbortError");
  assert.equal(a.signal.reason.message, "This operation was aborted");
  assert.equal(b.signal.reason, a.signal.reason, "one shared reason, no new exception per abort");
  assert.equal(heard, a.signal.reason, "listeners still run, and see the reason");
  assert.throws(() => a.signal.throwIfAborted(), { name: "AbortError" });

  const own = new Error("the caller went away");
  c.abort(own);
  assert.equal(c.signal.reason, own);
  a.abort(new Error("too late"));
  assert.equal(a.signal.reason.name, "AbortError", "a signal aborts once");
});
