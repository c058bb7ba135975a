import { describe, expect, it } from 'vitest';
import { mulberry32, testSeed } from '../helpers/seeded.js';
import { parseClientIp } from '../../src/policy/ip-address.js';
import { parseIpEntry } from '../../src/policy/ip-entry.js';
import { IpTrie, IpTrieBuilder, NO_ENTRY } from '../../src/policy/ip-trie.js';

const SEED = testSeed('ip-trie.test');
let rnd = mulberry32(SEED);
const u32 = (): number => Math.floor(rnd() * 4294967296) >>> 0;
const int = (n: number): number => Math.floor(rnd() * n);

type Family = 4 | 6;
interface Entry {
  family: Family;
  words: number[]; // network, host bits zero
  length: number;
  action: 0 | 1;
  id: number;
}
interface Answer {
  allow: number;
  deny: number;
}

const W = { 4: 1, 6: 4 } as const;
const BITS = { 4: 32, 6: 128 } as const;

/** Mask of the first `len` bits of a prefix, for 32-bit word k. */
function wordMask(len: number, k: number): number {
  const bits = len - k * 32;
  if (bits >= 32) return 0xffffffff;
  if (bits <= 0) return 0;
  return (0xffffffff << (32 - bits)) >>> 0;
}
const masked = (words: readonly number[], len: number): number[] => words.map((w, k) => (w & wordMask(len, k)) >>> 0);

// ---- BigInt helpers for address arithmetic (tests only) ----
const toBig = (words: readonly number[]): bigint => words.reduce((acc, w) => (acc << 32n) | BigInt(w >>> 0), 0n);
const fromBig = (family: Family, v: bigint): number[] =>
  Array.from({ length: W[family] }, (_, i) => Number((v >> BigInt(32 * (W[family] - 1 - i))) & 0xffffffffn));
const lastAddr = (e: Entry): number[] => e.words.map((w, k) => (w | ~wordMask(e.length, k)) >>> 0);
const plus = (family: Family, words: readonly number[], d: bigint): number[] | null => {
  const v = toBig(words) + d;
  if (v < 0n || v >= 1n << BigInt(BITS[family])) return null;
  return fromBig(family, v);
};

/** NAIVE REFERENCE: linear scan over every entry with plain bit math. */
function linearRef(entries: readonly Entry[], family: Family, addr: readonly number[]): Answer {
  let allow = NO_ENTRY;
  let allowLen = -1;
  let deny = NO_ENTRY;
  let denyLen = -1;
  for (const e of entries) {
    if (e.family !== family) continue;
    let hit = true;
    for (let k = 0; k < e.words.length; k++) {
      if (((addr[k]! ^ e.words[k]!) & wordMask(e.length, k)) !== 0) {
        hit = false;
        break;
      }
    }
    if (!hit) continue;
    if (e.action === 0) {
      if (e.length > allowLen || (e.length === allowLen && e.id < allow)) {
        allow = e.id;
        allowLen = e.length;
      }
    } else if (e.length > denyLen || (e.length === denyLen && e.id < deny)) {
      deny = e.id;
      denyLen = e.length;
    }
  }
  return { allow, deny };
}

/**
 * Second, faster reference for big lists: a hash map per prefix length, probed from the longest
 * length down. Independent of the trie; checked against linearRef below.
 */
class HashRef {
  private readonly maps = new Map<number, Map<string, Answer>>(); // length -> network key -> best ids
  private lengths: number[] = [];
  constructor(
    entries: readonly Entry[],
    private readonly family: Family,
  ) {
    for (const e of entries) {
      if (e.family !== family) continue;
      let m = this.maps.get(e.length);
      if (!m) {
        m = new Map();
        this.maps.set(e.length, m);
      }
      const key = e.words.join(',');
      const cur = m.get(key) ?? { allow: NO_ENTRY, deny: NO_ENTRY };
      if (e.action === 0 && (cur.allow === NO_ENTRY || e.id < cur.allow)) cur.allow = e.id;
      if (e.action === 1 && (cur.deny === NO_ENTRY || e.id < cur.deny)) cur.deny = e.id;
      m.set(key, cur);
    }
    this.lengths = [...this.maps.keys()].sort((a, b) => b - a);
  }
  lookup(addr: readonly number[]): Answer {
    let allow = NO_ENTRY;
    let deny = NO_ENTRY;
    for (const len of this.lengths) {
      const hit = this.maps.get(len)!.get(masked(addr, len).join(','));
      if (!hit) continue;
      if (allow === NO_ENTRY) allow = hit.allow;
      if (deny === NO_ENTRY) deny = hit.deny;
      if (allow !== NO_ENTRY && deny !== NO_ENTRY) break;
    }
    return { allow, deny };
  }
}

const scratch = new Uint32Array(4);
/** The trie's answer, via lookup4/lookup6 and via lookup(family, words), which must agree. */
function trieAnswer(trie: IpTrie, family: Family, addr: readonly number[]): Answer {
  let leaf: number;
  let viaLookup: number;
  if (family === 4) {
    leaf = trie.lookup4(addr[0]!);
    scratch[0] = addr[0]!;
    viaLookup = trie.lookup(4, scratch);
  } else {
    for (let k = 0; k < 4; k++) scratch[k] = addr[k]!;
    leaf = trie.lookup6(scratch);
    viaLookup = trie.lookup(6, scratch);
  }
  // Plain checks first: vitest's expect is too slow to call for each of ~10^5 queries.
  if (viaLookup !== leaf || !(Number.isInteger(leaf) && leaf >= 0 && leaf < trie.allowEntry.length)) {
    expect(viaLookup, 'lookup() and lookup4/6 disagree').toBe(leaf);
    expect(leaf, 'leaf id out of range').toBeLessThan(trie.allowEntry.length);
    expect(leaf).toBeGreaterThanOrEqual(0);
  }
  return { allow: trie.allowEntry[leaf]!, deny: trie.denyEntry[leaf]! };
}

// ---- random lists ----

function randomLength(family: Family): number {
  const r = rnd();
  if (family === 4) {
    if (r < 0.01) return 0;
    if (r < 0.2) return 32;
    if (r < 0.3) return 24;
    if (r < 0.35) return 31;
    return 1 + int(31);
  }
  if (r < 0.01) return 0;
  if (r < 0.15) return 128;
  if (r < 0.25) return 64;
  if (r < 0.3) return 48;
  if (r < 0.4) return [31, 32, 33, 63, 65, 95, 96, 97, 127][int(9)]!;
  return 1 + int(127);
}

function randomWords(family: Family): number[] {
  return Array.from({ length: W[family] }, () => u32());
}

/**
 * A random list: fresh prefixes, nested ones (a longer prefix inside an existing one), duplicates
 * (same prefix, random action and id), optionally clustered under one short prefix so the trie has
 * to go deep. Ids are random, so the smallest-id tie rule is exercised independent of order.
 */
function randomList(family: Family, n: number, clustered: boolean): Entry[] {
  const list: Entry[] = [];
  const clusterLen = family === 4 ? 16 + int(8) : 40 + int(24);
  const cluster = masked(randomWords(family), clusterLen);
  const freshWords = (): number[] => {
    const w = randomWords(family);
    if (!clustered) return w;
    return w.map((x, k) => ((cluster[k]! & wordMask(clusterLen, k)) | (x & ~wordMask(clusterLen, k))) >>> 0);
  };
  for (let i = 0; i < n; i++) {
    const action: 0 | 1 = rnd() < 0.5 ? 0 : 1;
    const id = rnd() < 0.01 ? 0x7fffffff - int(3) : int(1_000_000);
    const r = rnd();
    if (list.length > 0 && r < 0.05) {
      const d = list[int(list.length)]!;
      list.push({ ...d, words: [...d.words], action, id });
    } else if (list.length > 0 && r < 0.35) {
      const outer = list[int(list.length)]!;
      const length = outer.length + int(BITS[family] - outer.length + 1);
      const inner = randomWords(family).map(
        (x, k) => ((outer.words[k]! & wordMask(outer.length, k)) | (x & ~wordMask(outer.length, k))) >>> 0,
      );
      list.push({ family, words: masked(inner, length), length, action, id });
    } else {
      let length = randomLength(family);
      if (clustered && length < clusterLen) length = clusterLen + int(BITS[family] - clusterLen + 1);
      list.push({ family, words: masked(freshWords(), length), length, action, id });
    }
  }
  return list;
}

function build(entries: readonly Entry[]): IpTrie {
  const b = new IpTrieBuilder();
  for (const e of entries) b.add({ family: e.family, words: e.words, length: e.length }, e.action, e.id);
  return b.build();
}

/** Query addresses: for (a sample of) the prefixes their first and last address, one before and one past, one inside; plus random ones. */
function queries(family: Family, entries: readonly Entry[], maxEdges: number, randomCount: number): number[][] {
  const qs: number[][] = [];
  const fam = entries.filter((e) => e.family === family);
  const step = Math.max(1, Math.ceil(fam.length / maxEdges));
  for (let i = 0; i < fam.length; i += step) {
    const e = fam[i]!;
    const last = lastAddr(e);
    qs.push(e.words, last);
    const before = plus(family, e.words, -1n);
    const past = plus(family, last, 1n);
    if (before) qs.push(before);
    if (past) qs.push(past);
    qs.push(e.words.map((w, k) => (w | (u32() & ~wordMask(e.length, k))) >>> 0));
  }
  for (let i = 0; i < randomCount; i++) qs.push(randomWords(family));
  const max = (1n << BigInt(BITS[family])) - 1n;
  qs.push(fromBig(family, 0n), fromBig(family, max));
  return qs;
}

function compare(trie: IpTrie, family: Family, qs: number[][], ref: (a: readonly number[]) => Answer, label: string): void {
  for (const q of qs) {
    const want = ref(q);
    const got = trieAnswer(trie, family, q);
    if (got.allow !== want.allow || got.deny !== want.deny) {
      expect(got, `seed ${SEED} ${label}: address ${q.map((w) => w.toString(16)).join(':')}`).toEqual(want);
    }
  }
}

describe('IpTrie: small hand-made cases', () => {
  it('an empty builder gives NO_ENTRY everywhere', () => {
    const trie = new IpTrieBuilder().build();
    expect(trie.stats.prefixes).toBe(0);
    for (let i = 0; i < 2000; i++) {
      expect(trieAnswer(trie, 4, [u32()])).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
      expect(trieAnswer(trie, 6, randomWords(6))).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    }
    expect(trieAnswer(trie, 4, [0])).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(trieAnswer(trie, 4, [0xffffffff])).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(trieAnswer(trie, 6, [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff])).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
  });

  function fromText(rules: [string, 0 | 1, number][]): IpTrie {
    const b = new IpTrieBuilder();
    for (const [text, action, id] of rules) {
      const r = parseIpEntry(text);
      if (!r.ok) throw new Error(r.error);
      for (const p of r.prefixes) b.add(p, action, id);
    }
    return b.build();
  }
  const out = new Uint32Array(4);
  function at(trie: IpTrie, ip: string): Answer {
    const fam = parseClientIp(ip, out);
    if (fam === 0) throw new Error(`bad test address ${ip}`);
    const leaf = trie.lookup(fam, out);
    return { allow: trie.allowEntry[leaf]!, deny: trie.denyEntry[leaf]! };
  }

  it('returns the longest allow and the longest deny independently', () => {
    const trie = fromText([
      ['0.0.0.0/0', 0, 1],
      ['10.0.0.0/8', 1, 2],
      ['10.1.0.0/16', 0, 3],
      ['10.1.2.3', 1, 4],
      ['2001:db8::/32', 1, 5],
      ['2001:db8:1::/48', 0, 6],
      ['::/0', 0, 7],
    ]);
    expect(at(trie, '1.1.1.1')).toEqual({ allow: 1, deny: NO_ENTRY });
    expect(at(trie, '10.0.0.1')).toEqual({ allow: 1, deny: 2 });
    expect(at(trie, '10.1.0.1')).toEqual({ allow: 3, deny: 2 });
    expect(at(trie, '10.1.2.3')).toEqual({ allow: 3, deny: 4 });
    expect(at(trie, '10.1.2.4')).toEqual({ allow: 3, deny: 2 });
    expect(at(trie, '10.255.255.255')).toEqual({ allow: 1, deny: 2 });
    expect(at(trie, '11.0.0.0')).toEqual({ allow: 1, deny: NO_ENTRY });
    expect(at(trie, '9.255.255.255')).toEqual({ allow: 1, deny: NO_ENTRY });
    expect(at(trie, '2001:db8::1')).toEqual({ allow: 7, deny: 5 });
    expect(at(trie, '2001:db8:1:ffff::1')).toEqual({ allow: 6, deny: 5 });
    expect(at(trie, '2001:db9::')).toEqual({ allow: 7, deny: NO_ENTRY });
    // IPv4-mapped clients are IPv4 clients: ::/0 does not apply, 0.0.0.0/0 does.
    expect(at(trie, '::ffff:10.1.2.3')).toEqual({ allow: 3, deny: 4 });
    expect(at(trie, 'fe80::1%eth0')).toEqual({ allow: 7, deny: NO_ENTRY });
  });

  it('answers addresses below and above the span of all boundaries (the dir window)', () => {
    // Every boundary lies in 8.0.0.0/7, but the answer below it (inside 0.0.0.0/5) differs from
    // the answer above it.
    const v4 = fromText([
      ['0.0.0.0/5', 0, 1],
      ['8.0.0.0/8', 1, 2],
      ['8.1.2.3', 1, 3],
    ]);
    expect(at(v4, '0.0.0.1')).toEqual({ allow: 1, deny: NO_ENTRY });
    expect(at(v4, '7.255.255.255')).toEqual({ allow: 1, deny: NO_ENTRY });
    expect(at(v4, '8.0.0.0')).toEqual({ allow: NO_ENTRY, deny: 2 });
    expect(at(v4, '8.1.2.3')).toEqual({ allow: NO_ENTRY, deny: 3 });
    expect(at(v4, '8.255.255.255')).toEqual({ allow: NO_ENTRY, deny: 2 });
    expect(at(v4, '9.0.0.0')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(at(v4, '255.255.255.255')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    const v6 = fromText([
      ['::/5', 0, 1],
      ['800::/8', 1, 2],
      ['800:1::/32', 1, 3],
    ]);
    expect(at(v6, '::1')).toEqual({ allow: 1, deny: NO_ENTRY });
    expect(at(v6, '7ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toEqual({ allow: 1, deny: NO_ENTRY });
    expect(at(v6, '800::')).toEqual({ allow: NO_ENTRY, deny: 2 });
    expect(at(v6, '800:1::5')).toEqual({ allow: NO_ENTRY, deny: 3 });
    expect(at(v6, '900::')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(at(v6, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
  });

  it('on duplicate prefixes the smallest entryId wins, whatever the insertion order', () => {
    const trie = fromText([
      ['10.0.0.0/8', 0, 7],
      ['10.0.0.0/8', 0, 3],
      ['10.0.0.0/8', 0, 5],
      ['10.0.0.0/8', 1, 9],
      ['10.0.0.0/8', 1, 8],
      ['10.0.0.0-10.255.255.255', 1, 11],
      ['2001:db8::/32', 1, 4],
      ['2001:db8::/32', 1, 2],
    ]);
    expect(at(trie, '10.2.3.4')).toEqual({ allow: 3, deny: 8 });
    expect(at(trie, '2001:db8::')).toEqual({ allow: NO_ENTRY, deny: 2 });
  });

  it('keeps IPv4 and IPv6 apart', () => {
    const trie = fromText([
      ['0.0.0.0/0', 1, 1],
      ['::/0', 0, 2],
    ]);
    expect(at(trie, '::1')).toEqual({ allow: 2, deny: NO_ENTRY });
    expect(at(trie, '::')).toEqual({ allow: 2, deny: NO_ENTRY });
    expect(at(trie, '0.0.0.0')).toEqual({ allow: NO_ENTRY, deny: 1 });
    // ::a.b.c.d (IPv4-compatible) is IPv6.
    expect(at(trie, '::1.2.3.4')).toEqual({ allow: 2, deny: NO_ENTRY });
  });

  it('leaf ids index (allow, deny) side by side in one array; index 0 is (NO_ENTRY, NO_ENTRY)', () => {
    const list = [...randomList(4, 2000, false), ...randomList(6, 2000, false)];
    const trie = build(list);
    expect(trie.allowEntry[0]).toBe(NO_ENTRY);
    expect(trie.denyEntry[0]).toBe(NO_ENTRY);
    expect(trie.allowEntry.length).toBe(trie.denyEntry.length);
    // denyEntry is allowEntry shifted by one element: the answer of a leaf shares its cache line.
    expect(trie.denyEntry.buffer).toBe(trie.allowEntry.buffer);
    expect(trie.denyEntry.byteOffset).toBe(trie.allowEntry.byteOffset + 4);
    for (let i = 0; i < 5000; i++) {
      const leaf4 = trie.lookup4(u32());
      scratch.set(randomWords(6));
      const leaf6 = trie.lookup6(scratch);
      if (!(leaf4 >= 0 && leaf4 < trie.allowEntry.length && leaf6 >= 0 && leaf6 < trie.allowEntry.length)) {
        expect([leaf4, leaf6], 'leaf id out of range').toBe(null);
      }
    }
    expect(trie.stats.prefixes).toBe(4000);
    expect(trie.stats.nodes).toBeGreaterThan(0);
    expect(trie.stats.bytes).toBeGreaterThan(0);
  });

  it('keeps the dir on the boundaries\' common prefix when the last boundary is just past it', () => {
    // Boundaries 2000::, 2001:db8::, 2001:db9::, 3000::, 3fff::, 4000:: (the end of 3fff::/16): the
    // dir window is 2000::/3, not ::/1, and 4000:: on is answered by the "above" compare.
    const b = new IpTrieBuilder();
    for (const [text, action, id] of [
      ['2000::/4', 1, 1],
      ['3fff::/16', 0, 2],
      ['2001:db8::/32', 1, 3],
      ['32.0.0.0/4', 1, 4],
      ['63.0.0.0/8', 0, 5],
    ] as const) {
      expect(b.addEntry(text, action, id)).toBe(1);
    }
    const trie = b.build();
    const wire = trie.toWire();
    expect(wire.v6.l).toBe(3);
    expect(wire.v4.l).toBe(3);
    const at = (ip: string): Answer => {
      const fam = parseClientIp(ip, scratch);
      const leaf = trie.lookup(fam as 4 | 6, scratch);
      return { allow: trie.allowEntry[leaf]!, deny: trie.denyEntry[leaf]! };
    };
    expect(at('1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(at('2000::')).toEqual({ allow: NO_ENTRY, deny: 1 });
    expect(at('2001:db8::1')).toEqual({ allow: NO_ENTRY, deny: 3 });
    expect(at('2fff:ffff::')).toEqual({ allow: NO_ENTRY, deny: 1 });
    expect(at('3000::')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(at('3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')).toEqual({ allow: 2, deny: NO_ENTRY });
    expect(at('4000::')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(at('ffff::')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(at('31.255.255.255')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(at('32.0.0.0')).toEqual({ allow: NO_ENTRY, deny: 4 });
    expect(at('47.255.255.255')).toEqual({ allow: NO_ENTRY, deny: 4 });
    expect(at('48.0.0.0')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
    expect(at('63.255.255.255')).toEqual({ allow: 5, deny: NO_ENTRY });
    expect(at('64.0.0.0')).toEqual({ allow: NO_ENTRY, deny: NO_ENTRY });
  });

  it('treats host bits given to add() as zero', () => {
    const b = new IpTrieBuilder();
    b.add({ family: 4, words: [0x0a0000ff], length: 8 }, 1, 1);
    b.add({ family: 6, words: [0x20010db8, 1, 2, 3], length: 32 }, 0, 2);
    const trie = b.build();
    expect(trieAnswer(trie, 4, [0x0a123456])).toEqual({ allow: NO_ENTRY, deny: 1 });
    expect(trieAnswer(trie, 6, [0x20010db8, 9, 9, 9])).toEqual({ allow: 2, deny: NO_ENTRY });
  });

  it('rejects invalid input to add()', () => {
    const b = new IpTrieBuilder();
    const p4 = { family: 4 as const, words: [0], length: 8 };
    expect(() => b.add({ ...p4, length: 33 }, 0, 1)).toThrow(RangeError);
    expect(() => b.add({ ...p4, length: -1 }, 0, 1)).toThrow(RangeError);
    expect(() => b.add({ family: 6, words: [0, 0, 0, 0], length: 129 }, 0, 1)).toThrow(RangeError);
    expect(() => b.add({ family: 6, words: [0], length: 8 }, 0, 1)).toThrow(RangeError);
    expect(() => b.add({ family: 5 as 4, words: [0], length: 8 }, 0, 1)).toThrow(RangeError);
    expect(() => b.add({ ...p4, words: [2 ** 32] }, 0, 1)).toThrow(RangeError);
    expect(() => b.add(p4, 2 as 0, 1)).toThrow(RangeError);
    expect(() => b.add(p4, 0, -1)).toThrow(RangeError);
    expect(() => b.add(p4, 0, 1.5)).toThrow(RangeError);
    expect(() => b.add(p4, 0, 2 ** 31)).toThrow(RangeError);
  });
});

describe('IpTrie vs the naive reference on random lists', () => {
  const cases: [Family | 'both', number, boolean][] = [];
  for (const size of [0, 1, 10, 1000, 20000]) {
    cases.push([4, size, false], [6, size, false], ['both', size, false]);
    if (size >= 10) cases.push([4, size, true], [6, size, true]);
  }
  it.each(cases)('IPv%s, %i entries, clustered=%s', (fam, size, clustered) => {
    rnd = mulberry32(SEED ^ (size * 31 + (fam === 'both' ? 7 : fam) * 1009 + (clustered ? 1 : 0)));
    const entries =
      fam === 'both'
        ? [...randomList(4, Math.ceil(size / 2), clustered), ...randomList(6, Math.floor(size / 2), clustered)]
        : randomList(fam, size, clustered);
    const trie = build(entries);
    for (const family of fam === 'both' ? ([4, 6] as const) : [fam]) {
      const label = `IPv${family} size ${size}${clustered ? ' clustered' : ''}`;
      // Linear reference on a bounded number of queries (it is O(list) per query).
      const linearQs = queries(family, entries, size <= 1000 ? 1000 : 150, size <= 1000 ? 1000 : 300);
      compare(trie, family, linearQs, (a) => linearRef(entries, family, a), label);
      if (size > 1000) {
        // The hash reference (validated against the linear one here) covers the edges of every prefix.
        const hash = new HashRef(entries, family);
        for (const q of linearQs.slice(0, 300)) expect(hash.lookup(q), `seed ${SEED} hash ref`).toEqual(linearRef(entries, family, q));
        compare(trie, family, queries(family, entries, family === 4 ? Infinity : 5000, 3000), (a) => hash.lookup(a), `${label} (hash ref)`);
      }
    }
  });
});

describe('IpTrie.toWire / fromWire', () => {
  it('a trie rebuilt from its wire form (structured-cloned) answers identically, both families', () => {
    rnd = mulberry32(SEED ^ 0x3141);
    const entries = [...randomList(4, 20000, false), ...randomList(6, 20000, false), ...randomList(6, 3000, true)];
    const trie = build(entries);
    const wire = trie.toWire();
    expect(wire.mem.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(wire.v4.dir.buffer).toBeInstanceOf(SharedArrayBuffer);
    const copy = IpTrie.fromWire(structuredClone(wire));
    expect(copy.stats).toEqual(trie.stats);
    for (const family of [4, 6] as const) {
      for (const q of queries(family, entries, 4000, 4000)) {
        const a = trieAnswer(trie, family, q);
        const b = trieAnswer(copy, family, q);
        if (a.allow !== b.allow || a.deny !== b.deny) expect(b, `IPv${family} ${q.join(',')}`).toEqual(a);
      }
    }
  });
});

describe('IpTrieBuilder.addEntry', () => {
  it('adds what parseIpEntry + add() would, and returns the same errors', () => {
    rnd = mulberry32(SEED ^ 0xadd);
    const texts: string[] = [];
    const v6text = (w: readonly number[]): string => {
      const g: string[] = [];
      for (const x of w) g.push((x >>> 16).toString(16), (x & 0xffff).toString(16));
      return g.join(':');
    };
    for (let i = 0; i < 3000; i++) {
      const r = rnd();
      const a4 = [u32() >>> 24, u32() >>> 24, u32() >>> 24, u32() >>> 24].join('.');
      const len4 = int(34);
      const len6 = int(130);
      if (r < 0.2) texts.push(a4, `${a4}/${len4}`);
      else if (r < 0.4) {
        const e = randomList(4, 1, false)[0]!;
        texts.push(`${e.words[0]! >>> 24}.${(e.words[0]! >>> 16) & 255}.${(e.words[0]! >>> 8) & 255}.${e.words[0]! & 255}/${e.length}`);
      } else if (r < 0.6) {
        const e = randomList(6, 1, false)[0]!;
        texts.push(`${v6text(e.words)}/${e.length}`, v6text(e.words), `${v6text(e.words)}/${len6}`);
      } else if (r < 0.7) texts.push(`::ffff:${a4}`, `::ffff:${a4}/${96 + len4}`, `::ffff:${a4}/${len4}`, `::ffff:0:0/96`);
      else if (r < 0.8) texts.push(` ${a4}`, `${a4}\t`, `${a4}/0${len4}`, `${a4}/`, `${a4}/+1`, `0${a4}`, `${a4}-${a4}`, `${a4}%1`);
      else if (r < 0.9) texts.push('10.3.10.*', '10.0.0.1-10.0.0.9', '10.3.10.4-18', `2001:db8::%eth0`, `2001:db8::/0${len6}`, `1::2::3`, '', ' ', 'x');
      else texts.push(`${v6text(randomWords(6))}/${len6}`, `${v6text(randomWords(6)).replace(/:0:0:/, '::')}`, `2001:db8::${a4}`, `\u00a0${a4}`);
    }
    const viaAdd = new IpTrieBuilder();
    const viaEntry = new IpTrieBuilder();
    const list: Entry[] = [];
    texts.forEach((text, id) => {
      const action: 0 | 1 = rnd() < 0.5 ? 0 : 1;
      const parsed = parseIpEntry(text);
      const got = viaEntry.addEntry(text, action, id);
      if (!parsed.ok) {
        if (got !== parsed.error) expect(got, JSON.stringify(text)).toBe(parsed.error);
        return;
      }
      if (got !== parsed.prefixes.length) expect(got, JSON.stringify(text)).toBe(parsed.prefixes.length);
      for (const p of parsed.prefixes) {
        viaAdd.add(p, action, id);
        list.push({ family: p.family, words: [...p.words], length: p.length, action, id });
      }
    });
    expect(list.length).toBeGreaterThan(5000);
    const a = viaAdd.build();
    const b = viaEntry.build();
    expect(b.stats).toEqual(a.stats);
    for (const family of [4, 6] as const) {
      for (const q of queries(family, list, 3000, 2000)) {
        const want = linearRef(list, family, q);
        const x = trieAnswer(a, family, q);
        const y = trieAnswer(b, family, q);
        if (x.allow !== want.allow || x.deny !== want.deny || y.allow !== want.allow || y.deny !== want.deny) {
          expect([x, y], `IPv${family} ${q.join(',')}`).toEqual([want, want]);
        }
      }
    }
  });
});

describe('IpTrie at scale', () => {
  it('handles 1,000,000 IPv4 + 200,000 IPv6 entries in one trie', () => {
    rnd = mulberry32(SEED ^ 0x5eed);
    const b = new IpTrieBuilder();
    const v4: Entry[] = [];
    const v6: Entry[] = [];
    for (let i = 0; i < 1_000_000; i++) {
      const r = rnd();
      const length = r < 0.4 ? 32 : r < 0.7 ? 24 : 8 + int(25);
      const e: Entry = { family: 4, words: [(u32() & wordMask(length, 0)) >>> 0], length, action: rnd() < 0.3 ? 0 : 1, id: i };
      v4.push(e);
    }
    for (let i = 0; i < 200_000; i++) {
      const r = rnd();
      const length = r < 0.3 ? 128 : r < 0.5 ? 64 : r < 0.7 ? 48 : 16 + int(113);
      const words = masked([((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32()], length);
      v6.push({ family: 6, words, length, action: rnd() < 0.3 ? 0 : 1, id: 1_000_000 + i });
    }
    // A few duplicates and nestings on top.
    for (let i = 0; i < 1000; i++) {
      const d = v4[int(v4.length)]!;
      v4.push({ ...d, id: int(2_000_000), action: rnd() < 0.5 ? 0 : 1 });
    }
    for (const e of v4) b.add(e, e.action, e.id);
    for (const e of v6) b.add(e, e.action, e.id);
    const trie = b.build();
    expect(trie.stats.prefixes).toBe(v4.length + v6.length);

    const ref4 = new HashRef(v4, 4);
    const ref6 = new HashRef(v6, 6);
    const sample = (list: Entry[], n: number): Entry[] => Array.from({ length: n }, () => list[int(list.length)]!);
    const q4 = queries(4, sample(v4, 600), Infinity, 1500);
    const q6 = queries(6, sample(v6, 600), Infinity, 1500);
    compare(trie, 4, q4, (a) => ref4.lookup(a), '1M IPv4');
    compare(trie, 6, q6, (a) => ref6.lookup(a), '200k IPv6');
    expect(q4.length + q6.length).toBeGreaterThan(6000);
  });
});
