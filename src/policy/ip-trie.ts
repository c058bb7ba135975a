/**
 * Compiled IP prefix matcher: compile once per snapshot, look up once per request.
 *
 * WHAT IT ANSWERS. For an address, the entryId of the longest allow-prefix containing it and the
 * entryId of the longest deny-prefix containing it (NO_ENTRY when none; on a duplicate prefix the
 * smallest entryId). Both answers are resolved at compile time into a "leaf": lookup returns a
 * leaf id and the caller reads allowEntry[leaf] / denyEntry[leaf]. A leaf id is an index into the
 * trie's one Int32Array `mem`, where a leaf's allow and deny are stored side by side: allowEntry
 * and denyEntry are two views of mem, the second shifted by one element, so reading the answer
 * costs no memory access beyond the one that found the leaf. Leaf ids are therefore not dense and
 * equal answers may have several ids; index 0 holds (NO_ENTRY, NO_ENTRY).
 *
 * STRUCTURE (per family; IPv4 and IPv6 have separate dirs, their objects share mem). A leaf-pushed,
 * popcount-compressed multibit trie in the style of Poptrie (Asai & Ohara, SIGCOMM 2015), with
 * small sorted "buckets" replacing sparse subtrees:
 *
 *  - Leaf pushing. Compilation turns the prefix list into the disjoint address intervals on which
 *    the (longest allow, longest deny) answer is constant, so a lookup never backtracks and never
 *    compares prefix lengths: it walks down and stops at the first leaf.
 *  - Level 0 is a direct-indexed Int32Array `dir` over D bits (D = 7..20, growing with the number
 *    of intervals so that small lists stay small and big ones skip the densest levels; 2^21 and
 *    2^22 slots were measured slower at 1M entries: a bigger dir costs more cache and TLB misses
 *    than the node level it saves). It starts after the prefix P that all interval boundaries
 *    share (e.g. 2000::/3 for a list of global IPv6 unicast prefixes, so the slots are not spent on
 *    empty address space), not counting a last boundary just past P's end (a prefix reaching the
 *    end of 2000::/3 ends at 4000::); an address outside P is answered by one compare (the leaf
 *    below or above P).
 *  - Every other object lives in `mem`, referenced by a tagged int32 "entry": e < 0 is a leaf (~e
 *    is the leaf id); an even e is a node at mem[e >>> 1]; an odd e is a bucket at mem[e >>> 1].
 *    dir holds entries.
 *  - A node has stride 5 (32 children; for IPv6 a node never straddles a 32-bit word, so the last
 *    one in a word has stride 2 and each step reads exactly one word). Layout: [runBitmap, e0, e1, ...].
 *    Children are run-length compressed: bit c of runBitmap is set where a new run of equal
 *    children starts (an internal child is always a run of its own), and child c's entry is
 *    mem[node + popcount(runBitmap & bits 0..c)]. So the bitmap and the entries share cache lines,
 *    one word of bitmap suffices (32-bit popcount by bit tricks), and memory is proportional to the
 *    number of distinct runs, not to 32 slots per node. A leaf child's (allow, deny) is stored once
 *    per interval somewhere in mem.
 *  - A block with at most BUCKET_MAX interval boundaries inside becomes a bucket instead of a node:
 *    [count, keys..., (allow, deny) * (count + 1)], keys ascending (for IPv6 a key is the words from
 *    the block's current word on). A short scan counts the keys <= address, j, and the leaf is the
 *    pair at index j: the keys sit together (one or two cache lines) and the answers right after
 *    them, so a lookup that ends in a bucket pays one memory miss for the bucket, none for the
 *    answer. Without buckets a lone /32 or /128 in an otherwise empty block costs a chain of one
 *    node per 5 bits (a 1M-entry random IPv6 list needed 12M nodes and 250 MB); with them it is one
 *    small object, and a lookup in a big random list is typically dir -> bucket (or dir -> node -> bucket).
 *
 * WHY. Lookups are O(address bits) whatever the list size (at most one node per 2-5 bits plus one
 * bucket scan of <= BUCKET_MAX keys), allocate nothing, use no BigInt, and touch few cache lines:
 * for large lists the cost is dominated by memory latency (on the 2-core VM this was tuned on, a
 * random read into 16 MB costs 120-270 ns, about two IPv4 parses), so the design minimises
 * dependent memory reads (node bitmap and child entry adjacent, answers next to their keys,
 * buckets instead of chains). All state is a few flat Int32Arrays: no JS object per node, nothing
 * for the GC to trace, cheap to drop, and shareable across threads (toWire/fromWire).
 *
 * BUILD. No per-bit object trie is ever made: prefixes live as flat records in a Uint32Array
 * (IpTrieBuilder.addEntry parses plain addresses and CIDRs straight into them), are radix-sorted
 * by (address, length) moving whole records, most significant digit first (prefix-sort.ts), swept
 * once with a stack of enclosing prefixes to produce the leaf-pushed intervals with their
 * (allow, deny) (adjacent equal intervals merged; no hash table: an answer is compared only with
 * its neighbour's), and the trie is then built top-down by recursing over the sorted interval
 * ranges: a child block with no interval boundary strictly inside is a leaf, one with at most
 * BUCKET_MAX is a bucket, anything else a node. Cost
 * O(n + intervals x depth); 0.4-0.75 s for 1M random IPv4 prefixes and 0.9-1.5 s for 1M IPv6 ones
 * on 2-core VMs (bench/RESULTS.md).
 */

import { buildDecisionIndex4, DecisionIndex4, type DecisionIndexWire } from './decision-index.js';
import { buildDecisionIndex6, DecisionIndex6, type DecisionIndex6Wire } from './decision-index6.js';
import { parseIpEntry, scanIpEntry, type CidrPrefix } from './ip-entry.js';
import { sortPrefixRecords } from './prefix-sort.js';
import { pace } from './pace.js';

export const NO_ENTRY = -1;

const STRIDE = 5;
/** Most interval boundaries a bucket may hold (its linear scan length). */
const BUCKET_MAX = 8;

/** 32-bit popcount with bit tricks (no allocation, inlined by V8). */
function popcnt(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Direct-level width from the number of intervals: about one interval per slot, within 7..20 bits. */
function directBits(intervals: number): number {
  const d = 31 - Math.clz32(intervals);
  return d < 7 ? 7 : d > 20 ? 20 : d;
}

export class IpTrie {
  /**
   * Per leaf id: entryId of the most specific covering allow prefix, or NO_ENTRY. A leaf id is an
   * index into the trie's one memory array, where allow and deny of a leaf sit side by side (the
   * answers are stored next to the bucket keys that find them): allowEntry and denyEntry are two
   * views of that array, the second shifted by one element. Indexes that are not leaf ids hold
   * other trie words; only the values at ids returned by lookup are answers.
   */
  readonly allowEntry: Int32Array;
  /** Per leaf id: entryId of the most specific covering deny prefix, or NO_ENTRY (see allowEntry). */
  readonly denyEntry: Int32Array;
  /** prefixes added; nodes = trie nodes + buckets (both families); bytes = all typed arrays. */
  readonly stats: { prefixes: number; nodes: number; bytes: number };

  private readonly mem: Int32Array;
  private readonly dir4: Int32Array;
  private readonly d4: number;
  private readonly l4: number;
  private readonly pre4: number;
  private readonly mask4: number;
  private readonly below4: number;
  private readonly above4: number;
  private readonly dir6: Int32Array;
  private readonly d6: number;
  private readonly l6: number;
  private readonly pre6: number;
  private readonly mask6: number;
  private readonly below6: number;
  private readonly above6: number;

  /** What toWire() sends: the same arrays, so a copy never outlives its compile. */
  private readonly parts: { readonly v4: FamilyTrie; readonly v6: FamilyTrie; readonly mem: Int32Array; readonly prefixes: number };
  private wired: IpTrieWire | null = null;

  /**
   * For a large list built with build(kind): whether that policy rejects an IPv4 address, without
   * walking the trie (decision-index.ts). null otherwise.
   */
  readonly decision4: DecisionIndex4 | null;
  /** The same for IPv6 addresses (decision-index6.ts). */
  readonly decision6: DecisionIndex6 | null;

  /** @internal Use IpTrieBuilder. */
  constructor(
    v4: FamilyTrie,
    v6: FamilyTrie,
    mem: Int32Array,
    prefixes: number,
    decision4: DecisionIndex4 | null = null,
    decision6: DecisionIndex6 | null = null,
  ) {
    this.parts = { v4, v6, mem, prefixes };
    this.decision4 = decision4;
    this.decision6 = decision6;
    this.mem = mem;
    this.dir4 = v4.dir;
    this.d4 = v4.d;
    this.l4 = v4.l;
    this.pre4 = v4.pre;
    this.mask4 = v4.preMask;
    this.below4 = v4.below;
    this.above4 = v4.above;
    this.dir6 = v6.dir;
    this.d6 = v6.d;
    this.l6 = v6.l;
    this.pre6 = v6.pre;
    this.mask6 = v6.preMask;
    this.below6 = v6.below;
    this.above6 = v6.above;
    // mem always ends with a spare element, so both views have the same length.
    this.allowEntry = new Int32Array(mem.buffer, mem.byteOffset, mem.length - 1);
    this.denyEntry = new Int32Array(mem.buffer, mem.byteOffset + 4, mem.length - 1);
    const bytes = v4.dir.byteLength + v6.dir.byteLength + mem.byteLength;
    this.stats = { prefixes, nodes: v4.objects + v6.objects, bytes };
  }

  /** HOT PATH. Leaf id for an IPv4 address given as a uint32 (an int32 works too). */
  lookup4(addr: number): number {
    const a = addr >>> 0;
    if (((a ^ this.pre4) & this.mask4) !== 0) return a < this.pre4 ? this.below4 : this.above4;
    const d = this.d4;
    let e = this.dir4[(a << this.l4) >>> (32 - d)]!;
    if (e < 0) return ~e;
    const mem = this.mem;
    let p = this.l4 + d;
    for (;;) {
      const o = e >>> 1;
      if (e & 1) {
        // Bucket: [count, keys..., (allow, deny) * (count + 1)], keys ascending: the answer after
        // the j keys <= addr is the pair at o + 1 + count + 2j.
        const n = mem[o]!;
        const k0 = o + 1;
        const end = k0 + n;
        let i = k0;
        while (i < end && mem[i]! >>> 0 <= a) i++;
        return end + 2 * (i - k0);
      }
      const rem = 32 - p;
      const s = rem > STRIDE ? STRIDE : rem;
      p += s;
      const c = (a >>> (32 - p)) & ((1 << s) - 1);
      // Node: [runBitmap, entries...]; (2 << c) - 1 is bits 0..c (c = 31: 0 - 1, all ones).
      e = mem[o + popcnt(mem[o]! & ((2 << c) - 1))]!;
      if (e < 0) return ~e;
    }
  }

  /** HOT PATH. Leaf id for an IPv6 address given as four big-endian 32-bit words. */
  lookup6(words: Uint32Array): number {
    const w0 = words[0]!;
    if (((w0 ^ this.pre6) & this.mask6) !== 0) return w0 < this.pre6 ? this.below6 : this.above6;
    const d = this.d6;
    let e = this.dir6[(w0 << this.l6) >>> (32 - d)]!;
    if (e < 0) return ~e;
    const mem = this.mem;
    let p = this.l6 + d;
    for (;;) {
      const o = e >>> 1;
      if (e & 1) {
        // Bucket: [count, keys..., (allow, deny) * (count + 1)]; a key is the address words from
        // the block's current word on (kw of them), keys ascending.
        const w0 = p >>> 5;
        const kw = 4 - w0;
        const n = mem[o]!;
        const k0 = o + 1;
        const end = k0 + n * kw;
        let i = k0;
        let j = 0; // keys <= address
        for (; i < end; i += kw, j++) {
          let w = w0;
          let k = i;
          while (w < 4 && mem[k]! >>> 0 === words[w]!) {
            w++;
            k++;
          }
          if (w < 4 && mem[k]! >>> 0 > words[w]!) break; // key > address
        }
        return end + 2 * j;
      }
      const rem = 32 - (p & 31); // bits left in the current word
      const s = rem > STRIDE ? STRIDE : rem;
      const c = (words[p >>> 5]! >>> (rem - s)) & ((1 << s) - 1);
      p += s;
      e = mem[o + popcnt(mem[o]! & ((2 << c) - 1))]!;
      if (e < 0) return ~e;
    }
  }

  /** HOT PATH. family 4 reads words[0]; family 6 reads words[0..3] (as left by parseClientIp). */
  lookup(family: 4 | 6, words: Uint32Array): number {
    return family === 4 ? this.lookup4(words[0]!) : this.lookup6(words);
  }

  /**
   * This trie as plain data for postMessage (the control-plane thread hands compiled snapshots to
   * the traffic thread). build() allocates the arrays in SharedArrayBuffers, so sending copies
   * nothing and the receiver reads the very same memory (nobody writes to a trie after build());
   * arrays from elsewhere are copied into shared ones once.
   */
  toWire(): IpTrieWire {
    if (this.wired !== null) return this.wired;
    const { v4, v6, mem, prefixes } = this.parts;
    const fam = (f: FamilyTrie): FamilyTrie => ({ ...f, dir: shared(f.dir) });
    this.wired = { v4: fam(v4), v6: fam(v6), mem: shared(mem), prefixes, decision4: this.decision4?.wire ?? null, decision6: this.decision6?.wire ?? null };
    return this.wired;
  }

  /** The trie toWire() described; costs no copy when the arrays are shared. */
  static fromWire(w: IpTrieWire): IpTrie {
    const d4 = w.decision4 === null ? null : new DecisionIndex4(w.decision4);
    return new IpTrie(w.v4, w.v6, w.mem, w.prefixes, d4, w.decision6 === null ? null : new DecisionIndex6(w.decision6));
  }
}

/** A compiled trie as structured-clonable data (see IpTrie.toWire). */
export interface IpTrieWire {
  readonly v4: FamilyTrie;
  readonly v6: FamilyTrie;
  /** Nodes, buckets and leaf answers of both families. */
  readonly mem: Int32Array;
  readonly prefixes: number;
  readonly decision4: DecisionIndexWire | null;
  readonly decision6: DecisionIndex6Wire | null;
}

/**
 * Does a policy of `kind` (0 = allow list, 1 = block list) reject an address whose most specific
 * allow and deny entries are `allow` and `deny`? An allow list rejects what no allow entry covers
 * and what a deny entry covers; a block list rejects what a deny entry covers and no allow entry
 * (an exception) does. The one statement of that rule: checkPolicy (data plane) and the decision
 * index both use it.
 */
export function rejects(kind: 0 | 1, allow: number, deny: number): boolean {
  return kind === 0 ? deny !== NO_ENTRY || allow === NO_ENTRY : deny !== NO_ENTRY && allow === NO_ENTRY;
}

/**
 * The compiled arrays are allocated shared from the start: the control-plane thread sends them to
 * the traffic thread (toWire) without a copy, and without keeping a second one for itself.
 */
function sharedInt32(n: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * n));
}

function shared(a: Int32Array): Int32Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const out = new Int32Array(new SharedArrayBuffer(a.byteLength));
  out.set(a);
  return out;
}

/** @internal The compiled dir of one family (its nodes and buckets live in the shared mem). */
export interface FamilyTrie {
  dir: Int32Array;
  /** dir indexes address bits [l, l + d). */
  d: number;
  /** Length of the prefix P (within the first word; l + d <= 32) that holds every interval boundary but a last one just past P's end. */
  l: number;
  /** That prefix (top l bits of word 0, as a uint32) and its mask. */
  pre: number;
  preMask: number;
  /** Leaves (mem indexes) of addresses below / above that prefix. */
  below: number;
  above: number;
  objects: number;
}

/**
 * Prefix storage of one family: one flat Uint32Array of records of r = w + 2 words,
 * [network words..., length << 1 | action, entryId] (the layout sortPrefixes sorts in place).
 */
class PrefixStore {
  readonly w: number; // 32-bit words per address
  readonly r: number; // words per record
  count = 0;
  rec: Uint32Array;

  constructor(w: number) {
    this.w = w;
    this.r = w + 2;
    this.rec = new Uint32Array(16 * this.r);
  }

  push(words: ArrayLike<number>, len: number, action: number, id: number): void {
    if ((this.count + 1) * this.r > this.rec.length) {
      const rec = new Uint32Array(this.rec.length * 2);
      rec.set(this.rec);
      this.rec = rec;
    }
    const w = this.w;
    const o = this.count++ * this.r;
    for (let k = 0; k < w; k++) {
      const bits = len - k * 32;
      const mask = bits >= 32 ? 0xffffffff : bits <= 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      this.rec[o + k] = (words[k]! & mask) >>> 0; // host bits are dropped
    }
    this.rec[o + w] = (len << 1) | action;
    this.rec[o + w + 1] = id;
  }
}

/**
 * One family's prefixes sorted by (address, length), as records of r = w + 2 words:
 * [address words..., length << 1 | action, entryId].
 */
interface SortedPrefixes {
  n: number;
  r: number;
  rec: Uint32Array;
}

/** One family's prefixes, sorted by (address, length) in place (prefix-sort.ts). */
function sortPrefixes(store: PrefixStore): SortedPrefixes {
  sortPrefixRecords(store.rec, store.count, store.w);
  return { n: store.count, r: store.r, rec: store.rec };
}

/** Leaf-pushed intervals of one family: boundary addresses (ascending) with the leaf from there on. */
interface Intervals {
  n: number;
  starts: Uint32Array; // n * w words
  allow: Int32Array; // per interval: the answer from its start on
  deny: Int32Array;
  tz: Uint8Array; // trailing zero bits of each start (w * 32 for address 0)
}

function compareAt(a: Uint32Array, ai: number, b: Uint32Array, bi: number, w: number): number {
  for (let k = 0; k < w; k++) {
    const x = a[ai + k]!;
    const y = b[bi + k]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * Sweeps the sorted prefixes with a stack of enclosing prefixes into the disjoint, merged,
 * leaf-pushed intervals. Each stack entry carries the answer of "inside this prefix and no deeper
 * one"; adjacent intervals with the same answer are merged. (A class rather
 * than closures so that V8 keeps the counters in fields it can optimise, not in context slots.)
 */
class Sweep {
  private readonly w: number;
  private readonly bits: number;
  // The prefixes in sorted order: records of r words (see SortedPrefixes).
  private readonly rec: Uint32Array;
  private readonly r: number;
  private readonly n: number;
  /** Interval starts (w words each) and the leaf from each start on. */
  readonly starts: Uint32Array;
  readonly allow: Int32Array;
  readonly deny: Int32Array;
  nb = 1; // interval 0 starts at address 0 with (NO_ENTRY, NO_ENTRY)
  // Stack of enclosing prefixes (strictly nested, so depth <= bits + 1).
  private readonly stEnd: Uint32Array;
  private readonly stIdx: Int32Array; // offset of the entry's record in rec
  private readonly stAllow: Int32Array;
  private readonly stAllowLen: Int32Array;
  private readonly stDeny: Int32Array;
  private readonly stDenyLen: Int32Array;
  private sp = 0;
  private readonly pos: Uint32Array; // scratch: a prefix end + 1

  constructor(w: number, sorted: SortedPrefixes) {
    const n = sorted.n;
    this.w = w;
    this.bits = w * 32;
    this.n = n;
    this.rec = sorted.rec;
    this.r = sorted.r;
    const cap = 2 * n + 2;
    this.starts = new Uint32Array(cap * w);
    this.allow = new Int32Array(cap);
    this.deny = new Int32Array(cap);
    this.allow[0] = NO_ENTRY;
    this.deny[0] = NO_ENTRY;
    const depth = this.bits + 2;
    this.stEnd = new Uint32Array(depth * w);
    this.stIdx = new Int32Array(depth);
    this.stAllow = new Int32Array(depth);
    this.stAllowLen = new Int32Array(depth);
    this.stDeny = new Int32Array(depth);
    this.stDenyLen = new Int32Array(depth);
    this.pos = new Uint32Array(w);
  }

  /** From address src[si..si+w) on, the answer is (a, d). Positions never decrease. */
  private emit(src: Uint32Array, si: number, a: number, d: number): void {
    const w = this.w;
    const last = this.nb - 1;
    const { allow, deny } = this;
    if (compareAt(this.starts, last * w, src, si, w) === 0) {
      // Same start as the last interval: replace its answer (merging it into the one before).
      if (last >= 1 && allow[last - 1] === a && deny[last - 1] === d) {
        this.nb = last;
      } else {
        allow[last] = a;
        deny[last] = d;
      }
      return;
    }
    if (allow[last] === a && deny[last] === d) return; // same answer: extend the last interval
    const at = this.nb * w;
    for (let k = 0; k < w; k++) this.starts[at + k] = src[si + k]!;
    allow[this.nb] = a;
    deny[this.nb++] = d;
  }

  /** Pop the top prefix: from its end + 1 on, the enclosing prefix (or nothing) answers. */
  private pop(): void {
    const w = this.w;
    const sp = --this.sp;
    const e = sp * w;
    const pos = this.pos;
    let carry = 1;
    for (let k = w - 1; k >= 0; k--) {
      const v = this.stEnd[e + k]! + carry;
      if (v > 0xffffffff) {
        pos[k] = 0;
      } else {
        pos[k] = v;
        carry = 0;
      }
    }
    if (carry) return; // it ended at the top of the address space
    if (sp > 0) this.emit(pos, 0, this.stAllow[sp - 1]!, this.stDeny[sp - 1]!);
    else this.emit(pos, 0, NO_ENTRY, NO_ENTRY);
  }

  run(): void {
    const w = this.w;
    const r = this.r;
    const bits = this.bits;
    const { rec, stEnd, stIdx, stAllow, stAllowLen, stDeny, stDenyLen } = this;
    for (let i = 0; i < this.n; i++) {
      pace();
      const si = i * r; // address words at rec[si .. si + w)
      while (this.sp > 0 && compareAt(stEnd, (this.sp - 1) * w, rec, si, w) < 0) this.pop();
      const la = rec[si + w]!;
      const len = la >>> 1;
      const action = la & 1;
      const id = rec[si + w + 1]!;
      const top = this.sp - 1;
      if (top >= 0 && rec[stIdx[top]! + w]! >>> 1 === len && compareAt(rec, stIdx[top]!, rec, si, w) === 0) {
        // Duplicate of the top prefix: the smallest entryId of each action wins.
        if (action === 0) {
          if (stAllowLen[top] !== len || id < stAllow[top]!) {
            stAllow[top] = id;
            stAllowLen[top] = len;
          }
        } else if (stDenyLen[top] !== len || id < stDeny[top]!) {
          stDeny[top] = id;
          stDenyLen[top] = len;
        }
      } else {
        const t = this.sp++;
        stIdx[t] = si;
        for (let k = 0; k < w; k++) {
          const hostBits = bits - len - (w - 1 - k) * 32; // low bits of word k outside the prefix
          const hostMask = hostBits >= 32 ? 0xffffffff : hostBits <= 0 ? 0 : (1 << hostBits) - 1;
          stEnd[t * w + k] = (rec[si + k]! | hostMask) >>> 0;
        }
        // Longer than everything below it on the stack, so it is the most specific of its action.
        const inherit = t > 0;
        stAllow[t] = action === 0 ? id : inherit ? stAllow[t - 1]! : NO_ENTRY;
        stAllowLen[t] = action === 0 ? len : inherit ? stAllowLen[t - 1]! : -1;
        stDeny[t] = action === 1 ? id : inherit ? stDeny[t - 1]! : NO_ENTRY;
        stDenyLen[t] = action === 1 ? len : inherit ? stDenyLen[t - 1]! : -1;
      }
      this.emit(rec, si, stAllow[this.sp - 1]!, stDeny[this.sp - 1]!);
    }
    while (this.sp > 0) this.pop();
  }
}

/** The leaf-pushed intervals of one family, with trailing-zero counts of their starts. */
function sweep(w: number, sorted: SortedPrefixes): Intervals {
  const sw = new Sweep(w, sorted);
  sw.run();
  const nb = sw.nb;
  const starts = sw.starts;
  const tz = new Uint8Array(nb);
  for (let j = 0; j < nb; j++) {
    if ((j & 15) === 0) pace();
    let z = 0;
    for (let k = w - 1; k >= 0; k--) {
      const x = starts[j * w + k]!;
      if (x === 0) {
        z += 32;
        continue;
      }
      z += 31 - Math.clz32(x & -x);
      break;
    }
    tz[j] = z;
  }
  return { n: nb, starts: starts.subarray(0, nb * w), allow: sw.allow.subarray(0, nb), deny: sw.deny.subarray(0, nb), tz };
}

/**
 * The one growable Int32Array that the nodes, buckets and leaf answers of both families are
 * allocated in. Word 0..1 is leaf 0 = (NO_ENTRY, NO_ENTRY).
 */
class Mem {
  mem: Int32Array;
  used = 2;

  constructor(size: number) {
    this.mem = sharedInt32(Math.max(size, 16));
    this.mem[0] = NO_ENTRY;
    this.mem[1] = NO_ENTRY;
  }

  alloc(n: number): number {
    const at = this.used;
    this.used += n;
    if (this.used > this.mem.length) {
      let cap = this.mem.length * 2;
      while (cap < this.used) cap *= 2;
      const mem = sharedInt32(cap);
      mem.set(this.mem.subarray(0, at));
      this.mem = mem;
    }
    return at;
  }

  /** The final array: trimmed (unless the slack is small), with the spare word the deny view needs. */
  finish(): Int32Array {
    const used = this.used + 1;
    if (used <= this.mem.length && used >= this.mem.length - (this.mem.length >>> 3)) return this.mem;
    const out = sharedInt32(used);
    out.set(this.mem.subarray(0, used));
    return out;
  }
}

/** Builds the dir of one family from its intervals, and its nodes and buckets in the shared Mem. */
class FamilyTrieBuilder {
  private readonly w: number;
  private readonly bits: number;
  private readonly iv: Intervals;
  private readonly m: Mem;
  /** Per interval: where its (allow, deny) lies in mem for dir and node leaves, or -1 if not yet. */
  private readonly leafAt: Int32Array;
  private objects = 0;
  /** Per recursion depth: the runs of the node being built, as (lo, hi) interval ranges or (-1, leaf). */
  private readonly scratch: Int32Array[] = [];

  constructor(w: number, iv: Intervals, m: Mem) {
    this.w = w;
    this.bits = w * 32;
    this.iv = iv;
    this.m = m;
    this.leafAt = new Int32Array(iv.n).fill(-1);
  }

  /** The leaf id (mem index of allow, deny) of interval k as a dir or node leaf, stored once. */
  private leaf(k: number): number {
    let at = this.leafAt[k]!;
    if (at < 0) {
      const a = this.iv.allow[k]!;
      const d = this.iv.deny[k]!;
      if (a === NO_ENTRY && d === NO_ENTRY) {
        at = 0; // mem[0..1]
      } else {
        at = this.m.alloc(2);
        this.m.mem[at] = a;
        this.m.mem[at + 1] = d;
      }
      this.leafAt[k] = at;
    }
    return at;
  }

  /** Bits [p, p+s) of interval start k (never straddles a word). */
  private chunk(k: number, p: number, s: number): number {
    return (this.iv.starts[k * this.w + (p >>> 5)]! >>> (32 - (p & 31) - s)) & ((1 << s) - 1);
  }

  /** Is boundary k exactly the first address past the l-bit prefix `pre` (so `above` answers it)? */
  private justPast(k: number, l: number, pre: number): boolean {
    const { starts } = this.iv;
    const w = this.w;
    for (let t = 1; t < w; t++) if (starts[k * w + t] !== 0) return false;
    return l > 0 && pre + 2 ** (32 - l) === starts[k * w]!;
  }

  build(): FamilyTrie {
    const { n, tz, starts } = this.iv;
    const w = this.w;
    const d = directBits(n);
    // The dir covers only the prefix P shared by every boundary (e.g. 2000::/3 for a list of global
    // IPv6 unicast prefixes), so its slots are not spent on address space with nothing in it. A
    // last boundary just past P's end (a prefix that reaches the end of 2000::/3 ends at 4000::) is
    // answered by the "above" compare, so it does not widen P.
    let l = 0;
    let last = n; // boundaries 1..last-1 lie inside P
    const mask = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0);
    if (n > 2) {
      const lb = Math.min(Math.clz32((starts[w]! ^ starts[(n - 2) * w]!) >>> 0), 32 - d);
      if (this.justPast(n - 1, lb, (starts[w]! & mask(lb)) >>> 0)) {
        l = lb;
        last = n - 1;
      }
    }
    if (last === n && n > 1) l = Math.min(Math.clz32((starts[w]! ^ starts[(n - 1) * w]!) >>> 0), 32 - d);
    const preMask = mask(l) | 0;
    const pre = n > 1 ? (starts[w]! & preMask) >>> 0 : 0;
    const dir = sharedInt32(1 << d);
    const align = this.bits - l - d; // a start with this many trailing zeros begins a dir slot
    // Walk the boundaries (not the slots): slots without a boundary strictly inside are leaves.
    let c = 0; // next slot to fill
    let cur = 0; // the interval containing slot c's first address
    let k = 1;
    while (k < last) {
      pace();
      const ck = this.chunk(k, l, d);
      if (c < ck) dir.fill(~this.leaf(cur), c, ck);
      let lo = cur;
      if (tz[k]! >= align) {
        lo = cur = k; // a boundary exactly at the slot start
        k++;
      }
      let hi = k;
      while (hi < last && this.chunk(hi, l, d) === ck) hi++;
      if (hi > k) {
        cur = hi - 1;
        dir[ck] = this.block(l + d, lo, hi, 0);
      } else {
        dir[ck] = ~this.leaf(lo);
      }
      k = hi;
      c = ck + 1;
    }
    if (c < dir.length) dir.fill(~this.leaf(cur), c);
    // Below P is interval 0; above it, the last interval.
    return { dir, d, l, pre, preMask, below: this.leaf(0), above: this.leaf(n - 1), objects: this.objects };
  }

  /**
   * The entry for the block whose first p bits are fixed, overlapped by intervals lo..hi-1:
   * interval lo contains the block's first address and starts lo+1..hi-1 lie strictly inside it.
   */
  private block(p: number, lo: number, hi: number, depth: number): number {
    if (hi - lo === 1) return ~this.leaf(lo);
    if (hi - lo - 1 <= BUCKET_MAX) return this.bucket(p, lo, hi);
    return this.node(p, lo, hi, depth);
  }

  /** [count, keys..., (allow, deny) * (count + 1)]: the answers inline, next to the keys. */
  private bucket(p: number, lo: number, hi: number): number {
    const { starts, allow, deny } = this.iv;
    const w = this.w;
    const w0 = p >>> 5;
    const kw = w - w0;
    const count = hi - lo - 1;
    const at = this.m.alloc(1 + count * kw + 2 * (count + 1));
    this.objects++;
    const mem = this.m.mem;
    mem[at] = count;
    let o = at + 1;
    for (let j = lo + 1; j < hi; j++) {
      for (let t = 0; t < kw; t++) mem[o++] = starts[j * w + w0 + t]!;
    }
    for (let j = lo; j < hi; j++) {
      mem[o++] = allow[j]!;
      mem[o++] = deny[j]!;
    }
    return (at << 1) | 1;
  }

  private node(p: number, lo: number, hi: number, depth: number): number {
    const { tz } = this.iv;
    const m = this.m;
    const rem = 32 - (p & 31);
    const s = rem > STRIDE ? STRIDE : rem;
    const align = this.bits - (p + s); // a start with this many trailing zeros begins a child block
    let runs = this.scratch[depth];
    if (!runs) {
      runs = new Int32Array(2 << STRIDE);
      this.scratch[depth] = runs;
    }
    let nr = 0;
    let bitmap = 0;
    let prevLeaf = -1; // interval of the last leaf run; -1: the next leaf starts a new run
    let k = lo + 1;
    let cur = lo;
    let ck = k < hi ? this.chunk(k, p, s) : -1;
    const width = 1 << s;
    for (let c = 0; c < width; c++) {
      let clo = cur;
      if (ck === c && tz[k]! >= align) {
        clo = cur = k;
        k++;
        ck = k < hi ? this.chunk(k, p, s) : -1;
      }
      if (ck === c) {
        while (ck === c) {
          k++;
          ck = k < hi ? this.chunk(k, p, s) : -1;
        }
        cur = k - 1;
        bitmap |= 1 << c;
        runs[nr * 2] = clo;
        runs[nr * 2 + 1] = k;
        nr++;
        prevLeaf = -1;
      } else {
        // Adjacent intervals never have the same answer (they are merged), so a new interval is a new run.
        if (clo !== prevLeaf) {
          bitmap |= 1 << c;
          runs[nr * 2] = -1;
          runs[nr * 2 + 1] = clo;
          nr++;
          prevLeaf = clo;
        }
      }
    }
    const at = m.alloc(1 + nr);
    this.objects++;
    m.mem[at] = bitmap;
    for (let j = 0; j < nr; j++) {
      const a = runs[j * 2]!;
      const b = runs[j * 2 + 1]!;
      // block() and leaf() may grow (replace) m.mem, so read it again after the call.
      const e = a < 0 ? ~this.leaf(b) : this.block(p + s, a, b, depth + 1);
      m.mem[at + 1 + j] = e;
    }
    return at << 1;
  }
}

export class IpTrieBuilder {
  private readonly v4 = new PrefixStore(1);
  private readonly v6 = new PrefixStore(4);
  private readonly scratch = new Uint32Array(4);

  /**
   * Parses one rule entry (parseIpEntry's syntax) and adds its prefixes: the number added, or
   * parseIpEntry's error. Plain addresses and CIDRs are parsed straight into the prefix records
   * (scanIpEntry), with no object per entry: on a million-entry list that is most of the compile's
   * garbage. Anything else goes through parseIpEntry and add().
   */
  addEntry(text: string, action: 0 | 1, entryId: number): number | string {
    const r = scanIpEntry(text, this.scratch);
    if (r < 0) {
      const parsed = parseIpEntry(text);
      if (!parsed.ok) return parsed.error;
      for (const p of parsed.prefixes) this.add(p, action, entryId);
      return parsed.prefixes.length;
    }
    if (action !== 0 && action !== 1) throw new RangeError(`IpTrieBuilder.add: bad action ${String(action)}`);
    if (!(entryId >= 0 && entryId <= 0x7fffffff && Math.floor(entryId) === entryId)) {
      throw new RangeError(`IpTrieBuilder.add: bad entryId ${entryId}`);
    }
    if (r < 256) this.v4.push(this.scratch, r, action, entryId);
    else this.v6.push(this.scratch, r - 256, action, entryId);
    return 1;
  }

  /** action: 0 = allow, 1 = deny. entryId: a non-negative integer the caller uses to find the source entry. */
  add(prefix: CidrPrefix, action: 0 | 1, entryId: number): void {
    const { family, words, length } = prefix;
    const store = family === 4 ? this.v4 : family === 6 ? this.v6 : null;
    if (!store) throw new RangeError(`IpTrieBuilder.add: bad family ${String(family)}`);
    const bits = store.w * 32;
    if (!Number.isInteger(length) || length < 0 || length > bits) {
      throw new RangeError(`IpTrieBuilder.add: bad prefix length ${length} for IPv${family}`);
    }
    if (words.length !== store.w) throw new RangeError(`IpTrieBuilder.add: IPv${family} needs ${store.w} words`);
    for (let i = 0; i < words.length; i++) {
      const x = words[i]!;
      if (!(x >= 0 && x <= 0xffffffff && Math.floor(x) === x)) throw new RangeError('IpTrieBuilder.add: words must be uint32');
    }
    if (action !== 0 && action !== 1) throw new RangeError(`IpTrieBuilder.add: bad action ${String(action)}`);
    if (!(entryId >= 0 && entryId <= 0x7fffffff && Math.floor(entryId) === entryId)) {
      throw new RangeError(`IpTrieBuilder.add: bad entryId ${entryId}`);
    }
    store.push(words, length, action, entryId);
  }

  /**
   * `kind`, when given, is the kind of the policy this list belongs to (0 = allow list, 1 = block
   * list): a large list then also gets its decision indexes (IpTrie.decision4 and decision6).
   */
  build(kind?: 0 | 1): IpTrie {
    // Both sweeps first, so that the shared Mem can be sized for both families.
    const iv4 = sweep(1, sortPrefixes(this.v4));
    const decision4 = kind === undefined ? null : buildDecisionIndex4(iv4.n, iv4.starts, (k) => rejects(kind, iv4.allow[k]!, iv4.deny[k]!));
    const iv6 = sweep(4, sortPrefixes(this.v6));
    const decision6 = kind === undefined ? null : buildDecisionIndex6(iv6.n, iv6.starts, (k) => rejects(kind, iv6.allow[k]!, iv6.deny[k]!));
    // Typical need on random 1M lists: 4.0 int32 per interval for IPv4, 7.0 for IPv6 (longer bucket
    // keys). Sized a little above that so big builds do not grow (copy) at the end; grows if needed.
    const m = new Mem(1024 + Math.ceil(iv4.n * 4.3 + iv6.n * 7.2));
    const v4 = new FamilyTrieBuilder(1, iv4, m).build();
    const v6 = new FamilyTrieBuilder(4, iv6, m).build();
    return new IpTrie(v4, v6, m.finish(), this.v4.count + this.v6.count, decision4, decision6);
  }
}
