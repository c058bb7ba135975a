/**
 * Seeded randomness for property tests: set IPGATE_TEST_SEED to replay a failure; the seed is
 * printed when a test file starts.
 */
export function testSeed(file: string): number {
  const seed = Number(process.env.IPGATE_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`${file} seed: ${seed} (IPGATE_TEST_SEED=${seed} to replay)`);
  return seed;
}

/** mulberry32: a small, fast, seedable PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
