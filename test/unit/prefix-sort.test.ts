import { describe, expect, it } from 'vitest';
import { sortPrefixRecords } from '../../src/policy/prefix-sort.js';
import { mulberry32 } from '../helpers/seeded.js';

/** Records [address words..., length << 1 | action, entryId] of w-word addresses; entryId = insertion index. */
function records(n: number, w: number, seed: number, shape: (rnd: () => number, k: number) => number, length: (rnd: () => number) => number): Uint32Array {
  const rnd = mulberry32(seed);
  const r = w + 2;
  const rec = new Uint32Array(n * r);
  for (let i = 0; i < n; i++) {
    const len = length(rnd);
    for (let k = 0; k < w; k++) {
      const bits = len - 32 * k;
      const mask = bits >= 32 ? 0xffffffff : bits <= 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      rec[i * r + k] = (shape(rnd, k) & mask) >>> 0;
    }
    rec[i * r + w] = (len << 1) | (rnd() < 0.5 ? 1 : 0);
    rec[i * r + w + 1] = i;
  }
  return rec;
}

/**
 * The independent reference: Array.prototype.sort (stable since ES2019) of the records as arrays,
 * by address words, then length; equal keys keep insertion order (their entryIds ascending).
 */
function referenceSort(rec: Uint32Array, n: number, w: number): number[] {
  const r = w + 2;
  const rows = Array.from({ length: n }, (_, i) => Array.from(rec.subarray(i * r, i * r + r)));
  rows.sort((a, b) => {
    for (let k = 0; k < w; k++) if (a[k] !== b[k]) return a[k]! < b[k]! ? -1 : 1;
    return (a[w]! >>> 1) - (b[w]! >>> 1);
  });
  return rows.flat();
}

const u32 = (rnd: () => number) => Math.floor(rnd() * 2 ** 32) >>> 0;

// Shapes for the main paths: wide random keys (the first digit splits), keys inside one short
// prefix (the shared digits are jumped over), few distinct keys (runs of equal keys, where only
// stability orders them), and group sizes around the insertion-sort threshold.
const shapes: Record<string, { shape: (rnd: () => number, k: number) => number; length: (w: number) => (rnd: () => number) => number }> = {
  random: { shape: (rnd) => u32(rnd), length: (w) => (rnd) => Math.floor(rnd() * (32 * w + 1)) },
  hosts: { shape: (rnd) => u32(rnd), length: (w) => (rnd) => (rnd() < 0.6 ? 32 * w : 24 * w) },
  'inside one prefix': {
    shape: (rnd, k) => (k === 0 ? 0x20010db8 ^ (u32(rnd) & 0x3f) : k === 1 ? 0 : u32(rnd) & 0x1ff),
    length: (w) => (rnd) => 32 * w - Math.floor(rnd() * 6),
  },
  'few keys': { shape: (rnd) => (u32(rnd) & 0x3) << 30, length: (w) => (rnd) => [32 * w, 2, 0][Math.floor(rnd() * 3)]! },
};

describe('sortPrefixRecords', () => {
  for (const w of [1, 4]) {
    for (const [name, { shape, length }] of Object.entries(shapes)) {
      it(`sorts IPv${w === 1 ? 4 : 6} records like a stable comparison sort: ${name}`, () => {
        for (const [n, seed] of [
          [0, 1],
          [1, 2],
          [2, 3],
          [47, 4],
          [48, 5],
          [49, 6],
          [1000, 7],
          [60_000, 8],
        ] as const) {
          const rec = records(n, w, seed * 31 + w, shape, length(w));
          const want = referenceSort(rec, n, w);
          sortPrefixRecords(rec, n, w);
          expect(Array.from(rec), `n=${n}`).toEqual(want);
        }
      });
    }
  }

  // Each of these fails a plausible slip that the random shapes above can miss.
  it('orders on every bit of the low digit, on lengths alone, and finds a lone difference in a group', () => {
    const check = (rec: Uint32Array, n: number, w: number) => {
      const want = referenceSort(rec, n, w);
      sortPrefixRecords(rec, n, w);
      expect(Array.from(rec)).toEqual(want);
    };
    // 100 /32s in 10.0.0.0/22: the first 50 have bit 9 set, so the low 10-bit digit decides.
    const a = new Uint32Array(100 * 3);
    for (let i = 0; i < 100; i++) a.set([(0x0a000000 | (i < 50 ? 0x200 : 0) | (i < 50 ? i : i - 50)) >>> 0, 32 << 1, i], i * 3);
    check(a, 100, 1);
    // 60 records alternating ::/0 and ::/128: only the length differs, at its top bit.
    const b = new Uint32Array(60 * 6);
    for (let i = 0; i < 60; i++) b.set([0, 0, 0, 0, ((i & 1) === 0 ? 0 : 128) << 1, i], i * 6);
    check(b, 60, 4);
    // 60 equal /32s where only record 1 is a /24: the pass that finds shared digits must see it.
    const c = new Uint32Array(60 * 3);
    for (let i = 0; i < 60; i++) c.set([0xc0000200, (i === 1 ? 24 : 32) << 1, i], i * 3);
    check(c, 60, 1);
  });

  it('agrees with the reference on 3,000 small random lists of few distinct values', () => {
    const rnd = mulberry32(4242);
    // Values near digit edges, so that equal and nearly equal digits are common.
    const edges = [0, 1, 0x3ff, 0x400, 0x1fffff, 0x200000, 0x7fffffff, 0x80000000, 0xffffffff];
    for (let t = 0; t < 3000; t++) {
      const w = rnd() < 0.5 ? 1 : 4;
      const n = Math.floor(rnd() * 300);
      const values = Array.from({ length: 1 + Math.floor(rnd() * 4) }, () => (rnd() < 0.5 ? edges[Math.floor(rnd() * edges.length)]! : u32(rnd)));
      const rec = records(n, w, t, (r) => values[Math.floor(r() * values.length)]!, (r) => Math.floor(r() * (32 * w + 1)));
      const want = referenceSort(rec, n, w);
      sortPrefixRecords(rec, n, w);
      expect(Array.from(rec), `case ${t}: w=${w} n=${n}`).toEqual(want);
    }
  });

  it('sorts only the first n records and leaves the rest of the array alone', () => {
    const rec = records(300, 1, 99, shapes.random!.shape, shapes.random!.length(1));
    const tail = Array.from(rec.subarray(200 * 3));
    const want = referenceSort(rec.subarray(0, 200 * 3), 200, 1);
    sortPrefixRecords(rec, 200, 1);
    expect(Array.from(rec.subarray(0, 200 * 3))).toEqual(want);
    expect(Array.from(rec.subarray(200 * 3))).toEqual(tail);
  });
});
