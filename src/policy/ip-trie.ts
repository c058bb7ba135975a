/**
 * Compiled IP prefix matcher: compile once per snapshot, look up once per request.
 *
 * WHAT IT ANSWERS. For an address, the entryId of the longest allow-prefix containing it and the
 * entryId of the longest deny-prefix containing it (NO_ENTRY when none; on a duplicate prefix the
 * smallest entryId). Both answers are precomputed per "leaf": lookup returns a leaf id and the
 * caller reads allowEntry[leaf] / denyEntry[leaf]. Identical (allow, deny) pairs share one leaf id;
 * leaf 0 is always (NO_ENTRY, NO_ENTRY).
 *
 * STRUCTURE (per family; IPv4 and IPv6 have separate roots in the same IpTrie). A leaf-pushed,
 * popcount-compressed multibit trie in the style of Poptrie (Asai & Ohara, SIGCOMM 2015):
 *
 *  - Level 0 is a direct-indexed array `dir` over the top D bits (D = 7, 12 or 17, chosen from the
 *    list size so that small lists stay small). An entry >= 0 is a node index; < 0 is ~leafId.
 *  - Below it, every node has stride 5 (32 children), except that for IPv6 a node never straddles a
 *    32-bit word (the last node of words 1-3 has stride 2), so each step reads exactly one word.
 *    A node is four int32s in one Int32Array: [childBitmap, leafRunBitmap, leafBase, childBase].
 *    Child c is an internal node iff bit c of childBitmap is set; internal children are stored
 *    contiguously from childBase, so child c is node childBase + popcount(childBitmap & bits 0..c) - 1.
 *    Otherwise child c is a leaf: leaves are run-length compressed, bit c of leafRunBitmap is set
 *    where a new run of equal leaves starts, and the leaf is leaves[leafBase + popcount(leafRunBitmap
 *    & bits 0..c) - 1].
 *  - Leaf-pushing: the two longest-prefix matches are resolved at compile time into a flat list of
 *    disjoint address intervals, each carrying its (allow, deny) pair, so a lookup never backtracks
 *    and never compares prefixes: it walks at most ceil(bits/5)+3 nodes and stops at the first leaf.
 *
 * WHY. Lookups are O(address bits), independent of list size, with no allocation, no BigInt and no
 * per-node JS objects (everything is Int32Array, so a 1M-entry list is a handful of flat buffers the
 * GC never has to trace). Stride 5 keeps both bitmaps in one 32-bit word, so popcount is a few
 * integer ops; run compression plus the child bitmap keep memory proportional to the number of
 * distinct intervals rather than to 2^stride per node. The direct first level removes the top,
 * densest levels of the walk.
 *
 * BUILD. No per-bit object trie is ever made: prefixes live in typed arrays, are radix-sorted by
 * (address, length), swept once with a stack of enclosing prefixes to produce the leaf-pushed
 * intervals (adjacent equal intervals merged), and the trie is then built top-down by recursing over
 * sorted interval ranges: a child block becomes a leaf when no interval boundary falls strictly
 * inside it, and an internal node otherwise. Cost is O(n log-ish + intervals × depth).
 */

import type { CidrPrefix } from './ip-entry.js';

export const NO_ENTRY = -1;

const STRIDE = 5;

/** 32-bit popcount with bit tricks (no allocation, inlined by V8). */
function popcnt(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Direct-level width from the number of interval boundaries (all give stride-5 alignment below). */
function directBits(boundaries: number): number {
  if (boundaries < 256) return 7;
  if (boundaries < 65536) return 12;
  return 17;
}

export class IpTrie {
  /** Per leaf id: entryId of the most specific covering allow prefix, or NO_ENTRY. */
  readonly allowEntry: Int32Array;
  /** Per leaf id: entryId of the most specific covering deny prefix, or NO_ENTRY. */
  readonly denyEntry: Int32Array;
  readonly stats: { prefixes: number; nodes: number; bytes: number };

  private readonly dir4: Int32Array;
  private readonly nodes4: Int32Array;
  private readonly leaves4: Int32Array;
  private readonly d4: number;
  private readonly dir6: Int32Array;
  private readonly nodes6: Int32Array;
  private readonly leaves6: Int32Array;
  private readonly d6: number;

  /** @internal Use IpTrieBuilder. */
  constructor(
    v4: FamilyTrie,
    v6: FamilyTrie,
    allowEntry: Int32Array,
    denyEntry: Int32Array,
    prefixes: number,
  ) {
    this.dir4 = v4.dir;
    this.nodes4 = v4.nodes;
    this.leaves4 = v4.leaves;
    this.d4 = v4.d;
    this.dir6 = v6.dir;
    this.nodes6 = v6.nodes;
    this.leaves6 = v6.leaves;
    this.d6 = v6.d;
    this.allowEntry = allowEntry;
    this.denyEntry = denyEntry;
    const bytes =
      v4.dir.byteLength +
      v4.nodes.byteLength +
      v4.leaves.byteLength +
      v6.dir.byteLength +
      v6.nodes.byteLength +
      v6.leaves.byteLength +
      allowEntry.byteLength +
      denyEntry.byteLength;
    this.stats = { prefixes, nodes: (v4.nodes.length + v6.nodes.length) >>> 2, bytes };
  }

  /** HOT PATH. Leaf id for an IPv4 address given as a uint32 (or int32) number. */
  lookup4(addr: number): number {
    const d = this.d4;
    let x = this.dir4[addr >>> (32 - d)]!;
    if (x < 0) return ~x;
    const nodes = this.nodes4;
    let p = d;
    for (;;) {
      p += STRIDE;
      const c = (addr >>> (32 - p)) & 31;
      const n = x << 2;
      const vec = nodes[n]!;
      const m = (2 << c) - 1; // bits 0..c (c = 31 gives 0 - 1 = all ones)
      if ((vec >>> c) & 1) {
        x = nodes[n + 3]! + popcnt(vec & m) - 1;
      } else {
        return this.leaves4[nodes[n + 2]! + popcnt(nodes[n + 1]! & m) - 1]!;
      }
    }
  }

  /** HOT PATH. Leaf id for an IPv6 address given as four big-endian 32-bit words. */
  lookup6(words: Uint32Array): number {
    const d = this.d6;
    let x = this.dir6[words[0]! >>> (32 - d)]!;
    if (x < 0) return ~x;
    const nodes = this.nodes6;
    let p = d;
    for (;;) {
      const rem = 32 - (p & 31); // bits left in the current word
      const s = rem > STRIDE ? STRIDE : rem;
      const c = (words[p >>> 5]! >>> (rem - s)) & ((1 << s) - 1);
      p += s;
      const n = x << 2;
      const vec = nodes[n]!;
      const m = (2 << c) - 1;
      if ((vec >>> c) & 1) {
        x = nodes[n + 3]! + popcnt(vec & m) - 1;
      } else {
        return this.leaves6[nodes[n + 2]! + popcnt(nodes[n + 1]! & m) - 1]!;
      }
    }
  }

  /** HOT PATH. family 4 reads words[0]; family 6 reads words[0..3] (as left by parseClientIp). */
  lookup(family: 4 | 6, words: Uint32Array): number {
    return family === 4 ? this.lookup4(words[0]!) : this.lookup6(words);
  }
}

/** @internal The compiled arrays of one family. */
export interface FamilyTrie {
  dir: Int32Array;
  nodes: Int32Array;
  leaves: Int32Array;
  d: number;
}

/** Prefix storage of one family in flat typed arrays. */
class PrefixStore {
  readonly w: number; // 32-bit words per address
  count = 0;
  words: Uint32Array;
  lens: Uint8Array;
  actions: Uint8Array;
  ids: Int32Array;

  constructor(w: number) {
    this.w = w;
    this.words = new Uint32Array(16 * w);
    this.lens = new Uint8Array(16);
    this.actions = new Uint8Array(16);
    this.ids = new Int32Array(16);
  }

  push(words: readonly number[], len: number, action: number, id: number): void {
    if (this.count === this.lens.length) this.grow();
    const i = this.count++;
    const w = this.w;
    for (let k = 0; k < w; k++) {
      const bits = len - k * 32;
      const mask = bits >= 32 ? 0xffffffff : bits <= 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      this.words[i * w + k] = (words[k]! & mask) >>> 0;
    }
    this.lens[i] = len;
    this.actions[i] = action;
    this.ids[i] = id;
  }

  private grow(): void {
    const cap = this.lens.length * 2;
    const words = new Uint32Array(cap * this.w);
    words.set(this.words);
    this.words = words;
    const lens = new Uint8Array(cap);
    lens.set(this.lens);
    this.lens = lens;
    const actions = new Uint8Array(cap);
    actions.set(this.actions);
    this.actions = actions;
    const ids = new Int32Array(cap);
    ids.set(this.ids);
    this.ids = ids;
  }
}

/** Interning table for (allow, deny) pairs: open addressing over typed arrays. */
class PairTable {
  count = 0;
  allow = new Int32Array(1024);
  deny = new Int32Array(1024);
  private table = new Int32Array(2048).fill(-1);

  constructor() {
    this.intern(NO_ENTRY, NO_ENTRY); // leaf 0
  }

  private static hash(a: number, d: number): number {
    let h = Math.imul(a ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(d + 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    return Math.imul(h, 0x2c1b3c6d);
  }

  intern(a: number, d: number): number {
    const mask = this.table.length - 1;
    let slot = PairTable.hash(a, d) & mask;
    for (;;) {
      const id = this.table[slot]!;
      if (id < 0) break;
      if (this.allow[id] === a && this.deny[id] === d) return id;
      slot = (slot + 1) & mask;
    }
    const id = this.count++;
    if (id === this.allow.length) {
      const allow = new Int32Array(id * 2);
      allow.set(this.allow);
      this.allow = allow;
      const deny = new Int32Array(id * 2);
      deny.set(this.deny);
      this.deny = deny;
    }
    this.allow[id] = a;
    this.deny[id] = d;
    if (this.count * 2 > this.table.length) {
      this.rehash();
    } else {
      this.table[slot] = id;
    }
    return id;
  }

  private rehash(): void {
    const table = new Int32Array(this.table.length * 2).fill(-1);
    const mask = table.length - 1;
    for (let id = 0; id < this.count; id++) {
      let slot = PairTable.hash(this.allow[id]!, this.deny[id]!) & mask;
      while (table[slot]! >= 0) slot = (slot + 1) & mask;
      table[slot] = id;
    }
    this.table = table;
  }
}

/** Stable LSD radix sort of prefix indices by (address, length). */
function sortPrefixes(store: PrefixStore): Uint32Array {
  const n = store.count;
  const w = store.w;
  let a = new Uint32Array(n);
  let b = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  if (n < 2) return a;
  const count = new Uint32Array(65536);
  const words = store.words;
  const lens = store.lens;
  // Least significant key first: length, then address digits from the last word's low half up.
  {
    count.fill(0);
    for (let i = 0; i < n; i++) count[lens[i]!]!++;
    if (count[lens[0]!] !== n) {
      let sum = 0;
      for (let v = 0; v <= 128; v++) {
        const c = count[v]!;
        count[v] = sum;
        sum += c;
      }
      for (let i = 0; i < n; i++) {
        const idx = a[i]!;
        b[count[lens[idx]!]!++] = idx;
      }
      const t = a;
      a = b;
      b = t;
    }
  }
  for (let k = w - 1; k >= 0; k--) {
    for (let shift = 0; shift <= 16; shift += 16) {
      count.fill(0);
      for (let i = 0; i < n; i++) count[(words[i * w + k]! >>> shift) & 0xffff]!++;
      if (count[(words[k]! >>> shift) & 0xffff] === n) continue; // all equal: nothing to do
      let sum = 0;
      for (let v = 0; v < 65536; v++) {
        const c = count[v]!;
        count[v] = sum;
        sum += c;
      }
      for (let i = 0; i < n; i++) {
        const idx = a[i]!;
        b[count[(words[idx * w + k]! >>> shift) & 0xffff]!++] = idx;
      }
      const t = a;
      a = b;
      b = t;
    }
  }
  return a;
}

/** Leaf-pushed intervals of one family: boundary addresses (ascending) with the pair from there on. */
interface Intervals {
  n: number;
  starts: Uint32Array; // n * w words
  values: Int32Array; // pair id per interval
  tz: Uint8Array; // trailing zero bits of each start (bits for 0)
}

function compareAt(a: Uint32Array, ai: number, b: Uint32Array, bi: number, w: number): number {
  for (let k = 0; k < w; k++) {
    const x = a[ai + k]!;
    const y = b[bi + k]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** Sweep the sorted prefixes with a stack of enclosing prefixes into disjoint merged intervals. */
function sweep(store: PrefixStore, order: Uint32Array, pairs: PairTable): Intervals {
  const w = store.w;
  const bits = w * 32;
  const n = store.count;
  const words = store.words;
  const lens = store.lens;
  const actions = store.actions;
  const ids = store.ids;

  const cap = 2 * n + 2;
  const starts = new Uint32Array(cap * w);
  const bAllow = new Int32Array(cap);
  const bDeny = new Int32Array(cap);
  let nb = 1; // starts[0..w) = 0, value (NO_ENTRY, NO_ENTRY)
  bAllow[0] = NO_ENTRY;
  bDeny[0] = NO_ENTRY;

  // Strictly nested distinct prefixes: depth <= bits + 1.
  const depth = bits + 2;
  const stEnd = new Uint32Array(depth * w);
  const stIdx = new Int32Array(depth);
  const stAllow = new Int32Array(depth);
  const stAllowLen = new Int32Array(depth);
  const stDeny = new Int32Array(depth);
  const stDenyLen = new Int32Array(depth);
  let sp = 0;
  const pos = new Uint32Array(w); // scratch: end + 1

  const emit = (src: Uint32Array, si: number, allow: number, deny: number): void => {
    const last = nb - 1;
    if (compareAt(starts, last * w, src, si, w) === 0) {
      if (last >= 1 && bAllow[last - 1] === allow && bDeny[last - 1] === deny) nb--;
      else {
        bAllow[last] = allow;
        bDeny[last] = deny;
      }
      return;
    }
    if (bAllow[last] === allow && bDeny[last] === deny) return;
    for (let k = 0; k < w; k++) starts[nb * w + k] = src[si + k]!;
    bAllow[nb] = allow;
    bDeny[nb] = deny;
    nb++;
  };

  /** Pop the top; emit the change at its end + 1 unless it ends at the top of the address space. */
  const pop = (): void => {
    sp--;
    const e = sp * w;
    let carry = 1;
    for (let k = w - 1; k >= 0; k--) {
      const v = stEnd[e + k]! + carry;
      if (v > 0xffffffff) {
        pos[k] = 0;
        carry = 1;
      } else {
        pos[k] = v;
        carry = 0;
      }
    }
    if (carry) return; // ended at all-ones
    if (sp > 0) emit(pos, 0, stAllow[sp - 1]!, stDeny[sp - 1]!);
    else emit(pos, 0, NO_ENTRY, NO_ENTRY);
  };

  for (let oi = 0; oi < n; oi++) {
    const i = order[oi]!;
    const si = i * w;
    while (sp > 0 && compareAt(stEnd, (sp - 1) * w, words, si, w) < 0) pop();
    const len = lens[i]!;
    const action = actions[i]!;
    const id = ids[i]!;
    const top = sp - 1;
    if (top >= 0 && lens[stIdx[top]!] === len && compareAt(words, stIdx[top]! * w, words, si, w) === 0) {
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
      const t = sp++;
      stIdx[t] = i;
      for (let k = 0; k < w; k++) {
        const hostBits = bits - len - (w - 1 - k) * 32; // low bits of word k outside the prefix
        const hostMask = hostBits >= 32 ? 0xffffffff : hostBits <= 0 ? 0 : (1 << hostBits) - 1;
        stEnd[t * w + k] = (words[si + k]! | hostMask) >>> 0;
      }
      if (t > 0) {
        stAllow[t] = stAllow[t - 1]!;
        stAllowLen[t] = stAllowLen[t - 1]!;
        stDeny[t] = stDeny[t - 1]!;
        stDenyLen[t] = stDenyLen[t - 1]!;
      } else {
        stAllow[t] = NO_ENTRY;
        stAllowLen[t] = -1;
        stDeny[t] = NO_ENTRY;
        stDenyLen[t] = -1;
      }
      if (action === 0) {
        stAllow[t] = id;
        stAllowLen[t] = len;
      } else {
        stDeny[t] = id;
        stDenyLen[t] = len;
      }
    }
    emit(words, si, stAllow[sp - 1]!, stDeny[sp - 1]!);
  }
  while (sp > 0) pop();

  const values = new Int32Array(nb);
  const tz = new Uint8Array(nb);
  for (let j = 0; j < nb; j++) {
    values[j] = pairs.intern(bAllow[j]!, bDeny[j]!);
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
  return { n: nb, starts: starts.subarray(0, nb * w), values, tz };
}

/** Builds the dir / nodes / leaves arrays of one family from its intervals. */
class FamilyTrieBuilder {
  private readonly w: number;
  private readonly bits: number;
  private readonly iv: Intervals;
  private nodes = new Int32Array(64);
  private nodeCount = 0;
  private leaves = new Int32Array(256);
  private leafCount = 0;
  /** Per recursion depth: the internal children of the node being built (lo, hi interval indices). */
  private readonly scratch: Int32Array[] = [];

  constructor(w: number, iv: Intervals) {
    this.w = w;
    this.bits = w * 32;
    this.iv = iv;
  }

  /** Bits [p, p+s) of interval start k (never straddles a word). */
  private chunk(k: number, p: number, s: number): number {
    return (this.iv.starts[k * this.w + (p >>> 5)]! >>> (32 - (p & 31) - s)) & ((1 << s) - 1);
  }

  private allocNodes(k: number): number {
    const base = this.nodeCount;
    this.nodeCount += k;
    if (this.nodeCount * 4 > this.nodes.length) {
      let cap = this.nodes.length * 2;
      while (cap < this.nodeCount * 4) cap *= 2;
      const nodes = new Int32Array(cap);
      nodes.set(this.nodes);
      this.nodes = nodes;
    }
    return base;
  }

  private pushLeaf(v: number): void {
    if (this.leafCount === this.leaves.length) {
      const leaves = new Int32Array(this.leaves.length * 2);
      leaves.set(this.leaves);
      this.leaves = leaves;
    }
    this.leaves[this.leafCount++] = v;
  }

  build(): FamilyTrie {
    const { n, values, tz } = this.iv;
    const d = directBits(n);
    const dir = new Int32Array(1 << d);
    const align = this.bits - d;
    let k = 1;
    let cur = 0;
    let ck = k < n ? this.chunk(k, 0, d) : -1;
    for (let c = 0; c < dir.length; c++) {
      let lo = cur;
      if (ck === c && tz[k]! >= align) {
        lo = cur = k;
        k++;
        ck = k < n ? this.chunk(k, 0, d) : -1;
      }
      if (ck === c) {
        while (ck === c) {
          k++;
          ck = k < n ? this.chunk(k, 0, d) : -1;
        }
        cur = k - 1;
        const node = this.allocNodes(1);
        dir[c] = node;
        this.buildNode(node, d, lo, k, 0);
      } else {
        dir[c] = ~values[lo]!;
      }
    }
    return {
      dir,
      nodes: this.nodes.slice(0, this.nodeCount * 4),
      leaves: this.leaves.slice(0, this.leafCount),
      d,
    };
  }

  /**
   * Fill node `node` covering the block whose first p bits are fixed. Intervals lo..hi-1 overlap the
   * block: interval lo contains the block's first address, and starts lo+1..hi-1 lie strictly
   * inside it (hi - lo >= 2, which is why this block is a node and not a leaf).
   */
  private buildNode(node: number, p: number, lo: number, hi: number, depth: number): void {
    const { values, tz } = this.iv;
    const rem = 32 - (p & 31);
    const s = rem > STRIDE ? STRIDE : rem;
    const align = this.bits - (p + s); // a start with this many trailing zeros begins a child block
    let kids = this.scratch[depth];
    if (!kids) {
      kids = new Int32Array(2 << STRIDE);
      this.scratch[depth] = kids;
    }
    let nk = 0;
    let vec = 0;
    let leafvec = 0;
    const leafBase = this.leafCount;
    let prevLeaf = -1;
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
        vec |= 1 << c;
        kids[nk * 2] = clo;
        kids[nk * 2 + 1] = k;
        nk++;
      } else {
        const v = values[clo]!;
        if (v !== prevLeaf) {
          leafvec |= 1 << c;
          this.pushLeaf(v);
          prevLeaf = v;
        }
      }
    }
    const childBase = this.allocNodes(nk);
    const at = node * 4;
    this.nodes[at] = vec;
    this.nodes[at + 1] = leafvec;
    this.nodes[at + 2] = leafBase;
    this.nodes[at + 3] = childBase;
    for (let j = 0; j < nk; j++) {
      this.buildNode(childBase + j, p + s, kids[j * 2]!, kids[j * 2 + 1]!, depth + 1);
    }
  }
}

export class IpTrieBuilder {
  private readonly v4 = new PrefixStore(1);
  private readonly v6 = new PrefixStore(4);

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
    for (const x of words) {
      if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new RangeError('IpTrieBuilder.add: words must be uint32');
    }
    if (action !== 0 && action !== 1) throw new RangeError(`IpTrieBuilder.add: bad action ${String(action)}`);
    if (!Number.isInteger(entryId) || entryId < 0 || entryId > 0x7fffffff) {
      throw new RangeError(`IpTrieBuilder.add: bad entryId ${entryId}`);
    }
    store.push(words, length, action, entryId);
  }

  build(): IpTrie {
    const pairs = new PairTable();
    const tries: FamilyTrie[] = [];
    for (const store of [this.v4, this.v6]) {
      const order = sortPrefixes(store);
      const iv = sweep(store, order, pairs);
      tries.push(new FamilyTrieBuilder(store.w, iv).build());
    }
    return new IpTrie(
      tries[0]!,
      tries[1]!,
      pairs.allow.slice(0, pairs.count),
      pairs.deny.slice(0, pairs.count),
      this.v4.count + this.v6.count,
    );
  }
}
