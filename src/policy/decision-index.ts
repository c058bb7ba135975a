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
 * A lookup reads idx[h] and idx[h + 1] (adjacent) and then scans a few keys: two dependent reads
 * into 256 KB (B = 16; 1 MB with B = 18, from 2^18 flips on) + 2 bytes per flip, instead of a walk
 * through the trie. Built only for lists of at least 2^16 intervals: a smaller trie stays in cache
 * by itself, and the index would only cost memory.
 */
export const MIN_INTERVALS = 1 << 16;

/** A decision index as structured-clonable data: shared arrays and numbers. */
export interface DecisionIndexWire {
  readonly bits: number;
  readonly idx: Int32Array;
  readonly keys: Uint16Array;
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
    let i = this.idx[h]!;
    let end = this.idx[h + 1]!;
    // A crowded block (a dense run of /32s) is searched by bisection; a typical one is a few keys.
    while (end - i > 8) {
      const mid = (i + end) >>> 1;
      if (keys[mid]! <= lo) i = mid + 1;
      else end = mid;
    }
    while (i < end && keys[i]! <= lo) i++;
    return ((i & 1) ^ this.first) === 1;
  }
}

/**
 * The index for intervals `starts` (ascending, starts[0] = 0) whose rejection is `rejects(k)`, or
 * null when the list is too small to need one.
 */
export function buildDecisionIndex4(n: number, starts: Uint32Array, rejects: (k: number) => boolean): DecisionIndex4 | null {
  if (n < MIN_INTERVALS) return null;
  const first = rejects(0) ? 1 : 0;
  const flips = new Uint32Array(n);
  let count = 0;
  let cur = first === 1;
  for (let k = 1; k < n; k++) {
    const r = rejects(k);
    if (r !== cur) {
      flips[count++] = starts[k]!;
      cur = r;
    }
  }
  const bits = count >= 1 << 18 ? 18 : 16;
  const shift = 32 - bits;
  const idx = new Int32Array(new SharedArrayBuffer(4 * ((1 << bits) + 1)));
  const keys = new Uint16Array(new SharedArrayBuffer(2 * count));
  // idx[h] = the number of flips in blocks below h: count per block, then prefix sums.
  for (let j = 0; j < count; j++) {
    const f = flips[j]!;
    const slot = (f >>> shift) + 1;
    idx[slot] = idx[slot]! + 1;
    keys[j] = f & ((1 << shift) - 1);
  }
  for (let h = 1; h <= 1 << bits; h++) idx[h] = idx[h]! + idx[h - 1]!;
  return new DecisionIndex4({ bits, idx, keys, first });
}
