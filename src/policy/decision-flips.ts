/**
 * What both families' decision indexes share: where a policy's decision flips, how wide a block
 * index a flip count wants, and the plain bisection crowded blocks fall back to.
 */
import { pace } from './pace.js';

/** Lists of fewer intervals get no index: their trie stays in cache by itself. */
export const MIN_INTERVALS = 1 << 16;

/** Slots the branch-free search covers (32 + 16 + 8 + 4 + 2 + 1); `keys` is padded by one more. */
export const SEARCH_SLOTS = 63;
const MIN_BITS = 16;
const MAX_BITS = 20;

/**
 * A block of more than SEARCH_SLOTS flips (a dense run of /32s, or a list that shares a long
 * prefix): a plain bisection in keys[s, e) for the first key above lo. Cold, so one function
 * serves both families' key arrays.
 */
export function bisectAbove(keys: Uint16Array | Int32Array, s: number, e: number, lo: number): number {
  while (s < e) {
    const mid = (s + e) >>> 1;
    if (keys[mid]! <= lo) s = mid + 1;
    else e = mid;
  }
  return s;
}

/**
 * The intervals (of n, interval 0 at the lowest address) where the decision differs from the
 * interval before: at[0 .. count). `first` is 1 when interval 0 is rejected. Shared by both families.
 */
export function decisionFlips(n: number, rejects: (k: number) => boolean): { first: number; at: Int32Array; count: number } {
  const first = rejects(0) ? 1 : 0;
  const at = new Int32Array(n);
  let count = 0;
  let cur = first === 1;
  for (let k = 1; k < n; k++) {
    if ((k & 15) === 0) pace();
    const r = rejects(k);
    if (r !== cur) {
      at[count++] = k;
      cur = r;
    }
  }
  return { first, at, count };
}

/** The block-index width for `count` flips: 16 bits, one more per doubling past flipsPerBlock per block. */
export function indexBits(count: number, flipsPerBlock: number): number {
  let bits = MIN_BITS;
  while (bits < MAX_BITS && count > flipsPerBlock * 2 ** bits) bits++;
  return bits;
}
