/**
 * A small seeded generator (mulberry32), so that every run of a scenario with the same seed
 * picks the same users in the same order.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A whole number from 1 to `n`. */
export function pickFrom(random: () => number, n: number): number {
  return 1 + Math.floor(random() * n);
}
