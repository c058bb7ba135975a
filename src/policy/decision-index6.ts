/**
 * The IPv6 decision index of a large policy: "does this policy reject this address?" answered
 * without walking the trie, as decision-index.ts does for IPv4.
 *
 * WHY. A 1,000,000-entry IPv6 trie is ~60 MB; a lookup walks dir -> node -> bucket, two or three
 * dependent cache and TLB misses. The decision flips at far fewer addresses than the trie has
 * intervals (adjacent intervals with the same decision merge), and a flip can be searched through
 * a 31-bit window of its address instead of all 128 bits. So the structure a lookup reads stays a
 * few MB:
 *
 *  - the flips share a common prefix P of `pre` bits of their first word (all global unicast
 *    lists live in 2000::/3); an address outside P is below or above every flip, one compare;
 *  - `idx`: for each of the 2^B blocks of the `bits` bits after P, the number of flips below the
 *    block (as in IPv4), so the flips inside block h are keys[idx[h] .. idx[h + 1]);
 *  - `keys`: per flip, the 31 bits after P and the block bits (the "window"), an Int32Array, so
 *    the same branch-free six-step search as IPv4 runs on it (31-bit values keep the sign-bit
 *    arithmetic inside int32);
 *  - `full`: every flip's whole address (4 words), read only when the address's window equals a
 *    flip's window. Within a block the window order is the address order, so flips with a smaller
 *    window are below the address and a larger one above; only an equal window needs the rest.
 *    That happens for an address inside a listed /64 or longer prefix (its start and end share
 *    the window), and costs one more read, of this one flip pair.
 *
 * The decision at `a` is the decision at address :: XOR the parity of the flips at or below `a`.
 * Built only for lists of at least 2^16 intervals, like IPv4. A list whose flips all share more
 * than 32 - B leading bits puts them all in one block; the answers are still exact (the crowded
 * path bisects), only slower.
 */
import { bisectAbove, decisionFlips, indexBits, MIN_INTERVALS, SEARCH_SLOTS } from './decision-index.js';
import { pace } from './pace.js';

const FLIPS_PER_BLOCK = 32;

/** An IPv6 decision index as structured-clonable data: shared arrays and numbers. */
export interface DecisionIndex6Wire {
  /** Leading bits of the first word all flips share (P), at most 32 - bits. */
  readonly pre: number;
  /** P's first word: its `pre` leading bits, zeros after. */
  readonly base: number;
  readonly bits: number;
  readonly idx: Int32Array;
  /** Each flip's 31-bit window, then SEARCH_SLOTS + 1 slots of padding the search may read. */
  readonly keys: Int32Array;
  /** Each flip's address, 4 words. */
  readonly full: Uint32Array;
  readonly flips: number;
  /** 1 when the policy rejects address :: (and so everything below the first flip). */
  readonly first: number;
}

export class DecisionIndex6 {
  private readonly base: number;
  private readonly span: number;
  private readonly shift: number;
  /** The window starts at bit `win` of the address (pre + bits, <= 32). */
  private readonly win: number;
  private readonly idx: Int32Array;
  private readonly keys: Int32Array;
  private readonly full: Uint32Array;
  private readonly first: number;
  private readonly last: number;

  constructor(readonly wire: DecisionIndex6Wire) {
    this.base = wire.base;
    this.span = 2 ** (32 - wire.pre);
    this.shift = 32 - wire.pre - wire.bits;
    this.win = wire.pre + wire.bits;
    this.idx = wire.idx;
    this.keys = wire.keys;
    this.full = wire.full;
    this.first = wire.first;
    this.last = wire.first ^ (wire.flips & 1);
  }

  /** HOT PATH. Does the policy reject the IPv6 address in words[0..3] (as left by parseClientIp)? */
  rejects(words: Uint32Array): boolean {
    const w0 = words[0]!;
    const rel = w0 - this.base;
    if (rel < 0) return this.first === 1;
    if (rel >= this.span) return this.last === 1;
    const h = rel >>> this.shift;
    const w1 = words[1]!;
    // The 31 bits from bit `win` on. A shift by 32 is a shift by 0 in JS, hence the two cases.
    const lo = (this.win === 32 ? w1 : (w0 << this.win) | (w1 >>> (32 - this.win))) >>> 1;
    const keys = this.keys;
    const s = this.idx[h]!;
    const e = this.idx[h + 1]!;
    let p: number;
    if (e - s > SEARCH_SLOTS) {
      p = bisectAbove(keys, s, e, lo);
    } else {
      // p - s = the flips in keys[s, p) whose window is <= lo (see DecisionIndex4.rejects: both
      // tests are sign bits, so no branch depends on the data). Written out rather than shared with
      // DecisionIndex4: its keys are a Uint16Array and these an Int32Array, and one function fed
      // both would compile its six loads for two element kinds on the hottest path.
      p = s;
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
    }
    // Flips whose window equals the address's may lie above it: drop those, comparing whole addresses.
    while (p > s && keys[p - 1] === lo && !this.atOrBelow(p - 1, words)) p--;
    return ((p & 1) ^ this.first) === 1;
  }

  /** Is flip j's address <= the address in words? */
  private atOrBelow(j: number, words: Uint32Array): boolean {
    const f = this.full;
    const o = j * 4;
    for (let t = 0; t < 3; t++) {
      const x = f[o + t]!;
      const y = words[t]!;
      if (x !== y) return x < y;
    }
    return f[o + 3]! <= words[3]!;
  }
}

/**
 * The index for IPv6 intervals `starts` (4 words each, ascending, interval 0 at ::) whose
 * rejection is `rejects(k)`, or null when the list is too small to need one. `flipsPerBlock` is
 * for tests, as in buildDecisionIndex4.
 */
export function buildDecisionIndex6(
  n: number,
  starts: Uint32Array,
  rejects: (k: number) => boolean,
  flipsPerBlock = FLIPS_PER_BLOCK,
): DecisionIndex6 | null {
  if (n < MIN_INTERVALS) return null;
  const { first, at, count } = decisionFlips(n, rejects);
  const bits = indexBits(count, flipsPerBlock);
  // P: the leading bits the lowest and the highest flip share (so all do), leaving room for B bits.
  const firstW0 = count > 0 ? starts[at[0]! * 4]! : 0;
  const lastW0 = count > 0 ? starts[at[count - 1]! * 4]! : 0;
  const pre = Math.min(Math.clz32(firstW0 ^ lastW0), 32 - bits);
  const base = pre === 0 ? 0 : (firstW0 & (~0 << (32 - pre))) >>> 0;
  const shift = 32 - pre - bits;
  const win = pre + bits;
  const idx = new Int32Array(new SharedArrayBuffer(4 * ((1 << bits) + 1)));
  const keys = new Int32Array(new SharedArrayBuffer(4 * (count + SEARCH_SLOTS + 1)));
  const full = new Uint32Array(new SharedArrayBuffer(16 * Math.max(count, 1)));
  for (let j = 0; j < count; j++) {
    if ((j & 15) === 0) pace();
    const o = at[j]! * 4;
    const w0 = starts[o]!;
    const w1 = starts[o + 1]!;
    for (let t = 0; t < 4; t++) full[j * 4 + t] = starts[o + t]!;
    const slot = ((w0 - base) >>> shift) + 1;
    idx[slot] = idx[slot]! + 1;
    keys[j] = (win === 32 ? w1 : (w0 << win) | (w1 >>> (32 - win))) >>> 1;
  }
  for (let h = 1; h <= 1 << bits; h++) idx[h] = idx[h]! + idx[h - 1]!;
  return new DecisionIndex6({ pre, base, bits, idx, keys, full, flips: count, first });
}
