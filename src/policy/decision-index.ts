/**
 * The IPv4 decision index of a large policy: the one question the hot path asks per request, "does
 * this policy reject this address?", answered from a structure small enough to stay in cache.
 *
 * WHY. The trie (ip-trie.ts) answers which allow and which deny entry match, which a request needs
 * only when it is rejected (the fault and the log name the entry). For a 1,000,000-entry list the
 * trie is ~33 MB, and a lookup pays one or two cache and TLB misses into it. The decision alone is
 * one bit per interval, and adjacent intervals with the same bit merge, so it fits in a few MB:
 *
 *  - `keys`: the addresses where the decision flips, sorted, kept as their low 32 - B bits (Uint16);
 *  - `idx`: for each of the 2^B top-B-bit blocks, the number of flips below the block, so the
 *    flips inside block h are keys[idx[h] .. idx[h + 1]);
 *  - the decision at `a` is the decision at address 0 XOR the parity of the flips at or below `a`.
 *
 * A lookup reads idx[h] and idx[h + 1] (adjacent) and then searches the block's keys. Measured on
 * a 2-core EPYC VM with a 1M-entry list: one random read into a structure of 4 MB or less costs
 * ~20-35 ns after the parse, one into 8 MB or more ~100-160 ns (TLB reach), so the index is sized
 * to stay under that cliff: B = 16 (idx 256 KB, L2-resident) until the list has more than 2^21
 * flips (~30 per block on average), then one more bit per doubling. The block is searched by a
 * fixed six-step branch-free bisection over up to 63 keys (slots past the block are masked out),
 * so the CPU never mispredicts on the data; a crowded block (a dense run of /32s) takes a plain
 * bisection instead. Built only for lists of at least 2^16 intervals: a smaller trie stays in cache
 * by itself, and the index would only cost memory.
 */
import { pace } from './pace.js';

export const MIN_INTERVALS = 1 << 16;

/** Slots the branch-free search covers (32 + 16 + 8 + 4 + 2 + 1); `keys` is padded by one more. */
export const SEARCH_SLOTS = 63;
/** Average flips per block the width is chosen for: blocks over SEARCH_SLOTS stay rare. */
const FLIPS_PER_BLOCK = 32;
const MIN_BITS = 16;
const MAX_BITS = 20;

/** A decision index as structured-clonable data: shared arrays and numbers. */
export interface DecisionIndexWire {
  readonly bits: number;
  readonly idx: Int32Array;
  /** The flips' low 32 - bits bits, then SEARCH_SLOTS + 1 slots of padding the search may read. */
  readonly keys: Uint16Array;
  /** The number of flips (keys without the padding). */
  readonly flips: number;
  /** 1 when the policy rejects address 0 (and so everything below the first flip). */
  readonly first: number;
}

export class DecisionIndex4 {
  private readonly shift: number;
  private readonly lowMask: number;
  private readonly idx: Int32Array;
  private readonly keys: Uint16Array;
  private readonly first: number;

  constructor(readonly wire: DecisionIndexWire) {
    this.shift = 32 - wire.bits;
    this.lowMask = (1 << this.shift) - 1;
    this.idx = wire.idx;
    this.keys = wire.keys;
    this.first = wire.first;
  }

  /** HOT PATH. Does the policy reject the IPv4 address `addr` (a uint32; an int32 works too)? */
  rejects(addr: number): boolean {
    const a = addr >>> 0;
    const h = a >>> this.shift;
    const lo = a & this.lowMask;
    const keys = this.keys;
    const s = this.idx[h]!;
    const e = this.idx[h + 1]!;
    if (e - s > SEARCH_SLOTS) return ((bisectAbove(keys, s, e, lo) & 1) ^ this.first) === 1;
    // p - s = the flips in keys[s, p) that are <= lo. Each step probes slot q = p + step - 1 and
    // advances by `step` when keys[q] <= lo and q < e: both tests are sign bits, combined with &,
    // turned into a 0 / -1 mask. No branch depends on the data, so nothing is mispredicted.
    let p = s;
    let q = p + 31;
    p += 32 & -(((keys[q]! - lo - 1) & ~(e - 1 - q)) >>> 31);
    q = p + 15;
    p += 16 & -(((keys[q]! - lo - 1) & ~(e - 1 - q)) >>> 31);
    q = p + 7;
    p += 8 & -(((keys[q]! - lo - 1) & ~(e - 1 - q)) >>> 31);
    q = p + 3;
    p += 4 & -(((keys[q]! - lo - 1) & ~(e - 1 - q)) >>> 31);
    q = p + 1;
    p += 2 & -(((keys[q]! - lo - 1) & ~(e - 1 - q)) >>> 31);
    p += 1 & -(((keys[p]! - lo - 1) & ~(e - 1 - p)) >>> 31);
    return ((p & 1) ^ this.first) === 1;
  }
}

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

/**
 * The index for intervals `starts` (ascending, starts[0] = 0) whose rejection is `rejects(k)`, or
 * null when the list is too small to need one. `flipsPerBlock` is for tests: a smaller value picks
 * a wider index for the same list.
 */
export function buildDecisionIndex4(
  n: number,
  starts: Uint32Array,
  rejects: (k: number) => boolean,
  flipsPerBlock = FLIPS_PER_BLOCK,
): DecisionIndex4 | null {
  if (n < MIN_INTERVALS) return null;
  const { first, at, count } = decisionFlips(n, rejects);
  const flips = new Uint32Array(count);
  for (let j = 0; j < count; j++) flips[j] = starts[at[j]!]!;
  const bits = indexBits(count, flipsPerBlock);
  const shift = 32 - bits;
  const idx = new Int32Array(new SharedArrayBuffer(4 * ((1 << bits) + 1)));
  const keys = new Uint16Array(new SharedArrayBuffer(2 * (count + SEARCH_SLOTS + 1)));
  // idx[h] = the number of flips in blocks below h: count per block, then prefix sums.
  for (let j = 0; j < count; j++) {
    if ((j & 15) === 0) pace();
    const f = flips[j]!;
    const slot = (f >>> shift) + 1;
    idx[slot] = idx[slot]! + 1;
    keys[j] = f & ((1 << shift) - 1);
  }
  for (let h = 1; h <= 1 << bits; h++) idx[h] = idx[h]! + idx[h - 1]!;
  return new DecisionIndex4({ bits, idx, keys, flips: count, first });
}
