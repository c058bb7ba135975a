/**
 * Sorting one family's prefixes by (address, length), the first step of a trie build.
 *
 * Prefixes are records of r = w + 2 words in one Uint32Array:
 * [address words..., length << 1 | action, entryId]. Whole records move, never an index array:
 * reading keys through an index at random would cost a cache miss per element at 1M entries.
 *
 * WHY MOST SIGNIFICANT DIGIT FIRST. The LSD radix sort used before made a pass over the whole
 * list for every 11 bits of the key, whether or not the records still needed ordering: 13 passes
 * over a 1M-entry IPv6 list, each scattering 24 MB into 2048 streams (a TLB miss per write),
 * ~0.75 s of a ~1.9 s compile on a 2-core VM. MSD stops as soon as a group is small. Digits are
 * 11, 11 and 10 bits of each address word, then the length. The first digit splits 1M random
 * IPv4 prefixes into 2048 groups of ~500 records (IPv6 ones inside 2000::/3 into 256 groups of
 * ~4,000), small enough to stay in cache from then on; the next digit leaves a few records per
 * bucket, which an insertion sort on the whole key finishes. Digits a whole group shares (a list
 * inside one /8, or inside 2001:db8::/32) cost one counting pass and one pass that finds where
 * the records first differ, and no move.
 *
 * STABLE. The counting scatter keeps the order within a digit and the insertion sort moves a record
 * only past strictly greater keys, so records with the same (address, length) stay in insertion
 * order. The sweep does not need it (it keeps the smallest entryId of each action among equal
 * prefixes); it keeps the build deterministic, and its output identical to the LSD sort's.
 */
import { pace } from './pace.js';

/**
 * Groups this small are finished by insertion sort (at most ~SMALL^2 / 4 key compares) rather than
 * by a count whose fill, prefix sum and bucket walk cost 3 x RADIX steps whatever the group size.
 */
const SMALL = 48;
/** Records copied back between two yield points: ~0.1 ms of copying. */
const COPY_CHUNK = 16_384;
/** Digits of 11, 11 and 10 bits per address word (most significant first), then the length. */
const SHIFTS = [21, 10, 0];
const MASKS = [0x7ff, 0x7ff, 0x3ff];
const RADIX = 2048;

/** Sorts rec's first n records of an address of w words in place, by (address, length). */
export function sortPrefixRecords(rec: Uint32Array, n: number, w: number): void {
  if (n < 2) return;
  new PrefixSort(rec, n <= SMALL ? 0 : n, w).group(0, n, 0);
}

/** A class rather than closures, so that V8 keeps the scratch arrays in fields it can optimise. */
class PrefixSort {
  private readonly r: number;
  /** Key digits: 3 per address word, then the length. */
  private readonly digits: number;
  private readonly tmp: Uint32Array;
  /** Per depth: RADIX counts, then RADIX bucket ends (a recursion reuses only deeper slices). */
  private readonly counts: Int32Array;
  private readonly scratch: Uint32Array;

  /** `n`: the records the scatter may need room for (0 when the whole list is insertion-sorted). */
  constructor(
    private readonly rec: Uint32Array,
    n: number,
    private readonly w: number,
  ) {
    this.r = w + 2;
    this.digits = 3 * w + 1;
    this.tmp = new Uint32Array(n * this.r);
    this.counts = new Int32Array(n === 0 ? 0 : this.digits * 2 * RADIX);
    this.scratch = new Uint32Array(this.r);
  }

  /** Sorts records [lo, hi), which already agree on their first d key digits. */
  group(lo: number, hi: number, d: number): void {
    const { rec, r, w } = this;
    const c = this.counts;
    let field = 0;
    let shift = 0;
    let mask = 0;
    let base = 0;
    // Skip the digits the whole group shares: a count, and no move.
    for (;;) {
      if (hi - lo <= SMALL) {
        this.insertion(lo, hi);
        return;
      }
      if (d === this.digits) return; // equal keys: insertion order is already right
      field = fieldOf(d, w);
      shift = shiftOf(d, w);
      mask = maskOf(d, w);
      base = d * 2 * RADIX;
      c.fill(0, base, base + mask + 1);
      for (let i = lo; i < hi; i++) {
        if ((i & 15) === 0) pace();
        c[base + ((rec[i * r + field]! >>> shift) & mask)]!++;
      }
      if (c[base + ((rec[lo * r + field]! >>> shift) & mask)] !== hi - lo) break;
      // One value: jump over every digit the group shares (a list inside one /32 shares dozens of
      // bits; one pass finds them all, where counting would take a pass per digit).
      d = this.firstDifference(lo, hi, d + 1);
    }
    // Bucket starts, then a stable scatter into tmp (advancing each start to its bucket's end).
    const ends = base + RADIX;
    let sum = lo;
    for (let v = 0; v <= mask; v++) {
      c[ends + v] = sum;
      sum += c[base + v]!;
    }
    const tmp = this.tmp;
    for (let i = lo; i < hi; i++) {
      if ((i & 15) === 0) pace();
      const o = i * r;
      const at = c[ends + ((rec[o + field]! >>> shift) & mask)]!++ * r;
      for (let k = 0; k < r; k++) tmp[at + k] = rec[o + k]!;
    }
    // Back into rec in chunks with a yield point between them: one copy of a 1M-entry IPv6 list
    // (24 MB) would hold the CPU for ~4 ms, a whole scheduler tick (see pace.ts).
    for (let from = lo; from < hi; from += COPY_CHUNK) {
      const to = Math.min(hi, from + COPY_CHUNK);
      rec.set(tmp.subarray(from * r, to * r), from * r);
      pace((to - from) >>> 4);
    }
    for (let v = 0; v <= mask; v++) {
      const size = c[base + v]!;
      if (size > 1) {
        const end = c[ends + v]!;
        this.group(end - size, end, d + 1);
      }
    }
  }

  /** The first key digit from d on where records [lo, hi) are not all equal (this.digits if none). */
  private firstDifference(lo: number, hi: number, d: number): number {
    const { rec, r, w } = this;
    const diff = this.scratch; // words 0..w: address and length field, OR of each record's XOR with the first
    diff.fill(0);
    const first = lo * r;
    for (let i = lo + 1; i < hi; i++) {
      if ((i & 15) === 0) pace();
      const o = i * r;
      for (let k = 0; k <= w; k++) diff[k] = diff[k]! | (rec[o + k]! ^ rec[first + k]!);
    }
    for (; d < this.digits; d++) if (((diff[fieldOf(d, w)]! >>> shiftOf(d, w)) & maskOf(d, w)) !== 0) return d;
    return d;
  }

  /** Stable insertion sort of records [lo, hi) on the whole key. */
  private insertion(lo: number, hi: number): void {
    const { rec, r, w } = this;
    const x = this.scratch;
    for (let i = lo + 1; i < hi; i++) {
      // A yield point per record, not per 16 as in the passes above: a record here may move past
      // up to SMALL others, so 16 of them can be ~10x a pass's 16, and the pacer's slices
      // (pacer.ts) would stretch by as much. Measured: pacer checks 100-235 us apart at p99 on a
      // 100,000-entry compile with one per 16, against 33-80 us with the LSD sort.
      pace();
      if (compareKeys(rec, (i - 1) * r, rec, i * r, w) <= 0) continue;
      for (let k = 0; k < r; k++) x[k] = rec[i * r + k]!;
      let j = i;
      do {
        for (let k = 0; k < r; k++) rec[j * r + k] = rec[(j - 1) * r + k]!;
        j--;
      } while (j > lo && compareKeys(x, 0, rec, (j - 1) * r, w) < 0);
      rec.set(x, j * r);
    }
  }
}

/** Where key digit d of a record lies: the word (address words, then the length field), its shift and its mask. */
function fieldOf(d: number, w: number): number {
  return d < 3 * w ? (d / 3) | 0 : w;
}
function shiftOf(d: number, w: number): number {
  return d < 3 * w ? SHIFTS[d % 3]! : 1;
}
function maskOf(d: number, w: number): number {
  return d < 3 * w ? MASKS[d % 3]! : 0xff;
}

/** (address, length) of the record at a[ai] against the one at b[bi]: negative, zero or positive. */
function compareKeys(a: Uint32Array, ai: number, b: Uint32Array, bi: number, w: number): number {
  for (let k = 0; k < w; k++) {
    const x = a[ai + k]!;
    const y = b[bi + k]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return (a[ai + w]! >>> 1) - (b[bi + w]! >>> 1);
}
