/**
 * The one source of "now" for every expiry decision (tokens, sessions, invitations, keys).
 * Production uses the system clock; tests pass a clock they can move instead of sleeping.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };
