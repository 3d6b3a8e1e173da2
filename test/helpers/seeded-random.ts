/**
 * A small seeded pseudo-random generator for randomized tests.
 *
 * Owns: mulberry32, the one PRNG the property loops and randomized stop tests share. Seeded,
 * so a failing run can be repeated exactly: each test prints its seed and reads it back from
 * an environment variable (e.g. STOP_SEED).
 */

/** Returns a function yielding numbers in [0, 1), the same sequence for the same seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
