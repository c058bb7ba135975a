/**
 * policy/decision-index6.ts: for a large list, the IPv6 decision index answers exactly what the
 * trie's full (allow, deny) answer implies: for both policy kinds, on addresses inside listed /128
 * and /64 prefixes (where a flip's 31-bit window ties with the address's), at flips and next to
 * them, outside the flips' common prefix, in a crowded block, and at every index width.
 */
import { describe, expect, it } from 'vitest';
import { buildDecisionIndex6 } from '../../src/policy/decision-index6.js';
import { IpTrie, IpTrieBuilder, rejects } from '../../src/policy/ip-trie.js';
import { mulberry32 } from '../helpers/seeded.js';

type Words = [number, number, number, number];

function masked(w: Words, len: number): Words {
  return w.map((x, i) => {
    const bits = len - i * 32;
    if (bits >= 32) return x >>> 0;
    if (bits <= 0) return 0;
    return (x & (~0 << (32 - bits))) >>> 0;
  }) as Words;
}

/** words + d (d small, may be negative), as 128-bit arithmetic with carries. */
function plus(w: Words, d: number): Words {
  const out = [...w] as Words;
  let carry = d;
  for (let i = 3; i >= 0 && carry !== 0; i--) {
    const v = out[i]! + carry;
    out[i] = ((v % 2 ** 32) + 2 ** 32) % 2 ** 32;
    carry = Math.floor(v / 2 ** 32);
  }
  return out;
}

/**
 * n random prefixes under `top` (the first word's leading `topLen` bits): 40% /128, 30% /64, 30% /48,
 * 30% allow. Plus 5,000 alternating /128s in one /112 (a crowded block).
 */
function bigList(n: number, seed: number, top: number, topLen: number) {
  const rnd = mulberry32(seed);
  const u32 = () => Math.floor(rnd() * 2 ** 32) >>> 0;
  const builders = [new IpTrieBuilder(), new IpTrieBuilder()];
  const listed: Words[] = [];
  const keep = topLen === 0 ? 0 : (~0 << (32 - topLen)) >>> 0;
  const add = (words: Words, length: number, action: 0 | 1, id: number) => {
    for (const b of builders) b.add({ family: 6, words, length }, action, id);
    listed.push(words);
  };
  for (let i = 0; i < n; i++) {
    const r = rnd();
    const length = r < 0.4 ? 128 : r < 0.7 ? 64 : 48;
    const w0 = ((top & keep) | (u32() & ~keep)) >>> 0;
    add(masked([w0, u32(), u32(), u32()], length), length, rnd() < 0.3 ? 0 : 1, i);
  }
  const crowd: Words = [(top & keep) >>> 0 || 0x20010db8, 0x12345678, 0, 0];
  for (let k = 0; k < 5000; k++) add(plus(crowd, 2 * k), 128, k % 3 === 0 ? 1 : 0, n + k);
  return { builders, listed, crowd, rnd, u32 };
}

function decisionByTrie(trie: IpTrie, kind: 0 | 1, w: Uint32Array): boolean {
  const leaf = trie.lookup(6, w);
  return rejects(kind, trie.allowEntry[leaf]!, trie.denyEntry[leaf]!);
}

/** Orders two addresses as 128-bit numbers (-1, 0, 1). */
function cmp(x: Words, y: Words): number {
  for (let t = 0; t < 4; t++) if (x[t] !== y[t]) return x[t]! < y[t]! ? -1 : 1;
  return 0;
}

/**
 * The reference the index is checked against: bisect the sorted interval starts for the last one
 * at or below `a` (whole 128-bit compares) and return that interval's decision. Written out
 * independently on purpose; it must not use src/policy/decision-index*.ts (bisectAbove etc.), or a
 * bug there would pass.
 */
function bisectWant(starts: readonly Words[], rejectsAt: (k: number) => boolean, a: Words): boolean {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (cmp(starts[mid]!, a) <= 0) lo = mid;
    else hi = mid - 1;
  }
  return rejectsAt(lo);
}

describe('IPv6 decision index', () => {
  // 2000::/3 like global unicast lists; 2001::/16 puts the window at bit 32 exactly (the other shift case).
  it.each([
    [0, 0x20000000, 3],
    [1, 0x20000000, 3],
    [0, 0x20010000, 16],
  ] as const)('agrees with the trie for kind %i under %s/%i: random, inside prefixes, at flips, outside, crowded', (kind, top, topLen) => {
    const { builders, listed, crowd, rnd, u32 } = bigList(120_000, 40 + kind + topLen, top, topLen);
    const trie = builders[kind]!.build(kind);
    const d = trie.decision6!;
    expect(d).not.toBeNull();
    const w = new Uint32Array(4);
    let rejected = 0;
    let passed = 0;
    let bad = 0;
    const check = (a: Words) => {
      w.set(a);
      const want = decisionByTrie(trie, kind, w);
      if (want) rejected++;
      else passed++;
      if (d.rejects(w) !== want) bad++;
    };
    for (let i = 0; i < 50_000; i++) check([u32(), u32(), u32(), u32()]);
    for (let i = 0; i < 50_000; i++) {
      const p = listed[Math.floor(rnd() * listed.length)]!;
      // Inside the prefix (same first 64 bits at least for /64 and /128), and its edges.
      check([p[0], p[1], rnd() < 0.5 ? p[2] : u32(), rnd() < 0.5 ? p[3] : u32()]);
      check(p);
      check(plus(p, -1));
      check(plus(p, 1));
      check([p[0], p[1], 0xffffffff, 0xffffffff]);
    }
    for (let k = -10; k < 10_010; k++) check(plus(crowd, k));
    check([0, 0, 0, 0]);
    check([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]);
    check([0x1fffffff, 0xffffffff, 0xffffffff, 0xffffffff]);
    check([0x40000000, 0, 0, 0]);
    expect(bad).toBe(0);
    expect(rejected).toBeGreaterThan(1000);
    expect(passed).toBeGreaterThan(1000);
    expect(d.wire.pre).toBe(topLen === 16 ? 16 : 3);
  });

  it('answers like a bisection of the interval starts at every width, with ties in the window', () => {
    // Sorted random 128-bit starts in 2000::/3, many in pairs and runs that differ only in the
    // last words (equal windows), plus a 3,000-start run in one /96 (a crowded block).
    const rnd = mulberry32(77);
    const u32 = () => Math.floor(rnd() * 2 ** 32) >>> 0;
    const list: Words[] = [];
    for (let i = 0; i < 70_000; i++) {
      const a: Words = [((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32()];
      list.push(a);
      if (rnd() < 0.5) list.push(plus(a, 1 + Math.floor(rnd() * 5)), [a[0], a[1], u32(), u32()]);
    }
    for (let k = 0; k < 3000; k++) list.push([0x2a000000, 7, 9, k * 3]);
    list.sort(cmp);
    const uniq = [[0, 0, 0, 0] as Words, ...list.filter((a, i) => i === 0 || cmp(a, list[i - 1]!) !== 0)].filter(
      (a, i) => i === 0 || cmp(a, [0, 0, 0, 0]) !== 0,
    );
    const n = uniq.length;
    const starts = new Uint32Array(n * 4);
    uniq.forEach((a, i) => starts.set(a, i * 4));
    const rej = Uint8Array.from(uniq, () => (rnd() < 0.5 ? 1 : 0));
    const rejectsAt = (k: number) => rej[k] === 1;
    const want = (a: Words) => bisectWant(uniq, rejectsAt, a);
    const probes: Words[] = [
      [0, 0, 0, 0],
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    ];
    for (let i = 0; i < 30_000; i++) probes.push([((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32()]);
    for (let i = 0; i < 10_000; i++) {
      const s = uniq[1 + Math.floor(rnd() * (n - 1))]!;
      probes.push(s, plus(s, -1), plus(s, 1), [s[0], s[1], u32(), u32()]);
    }
    for (let k = -3; k < 9005; k++) probes.push(plus([0x2a000000, 7, 9, 0], k));
    const widths: number[] = [];
    const w = new Uint32Array(4);
    for (const perBlock of [32, 1, 0.25, 0.001]) {
      const d = buildDecisionIndex6(n, starts, rejectsAt, perBlock)!;
      widths.push(d.wire.bits);
      let bad = 0;
      for (const a of probes) {
        w.set(a);
        if (d.rejects(w) !== want(a)) bad++;
      }
      expect(bad).toBe(0);
    }
    expect(widths).toEqual([16, 17, 19, 20]);
  });


  it('searches blocks of every size the branch-free search covers (1 to 63 flips) and the first crowded one', () => {
    // As in the IPv4 test: block h = size (of the 16 bits after 2000::/3) holds `size` flips with
    // random windows, every start a flip; 70,000 more starts fill the upper half of 2000::/3.
    const rnd = mulberry32(64);
    const u32 = () => Math.floor(rnd() * 2 ** 32) >>> 0;
    const list: Words[] = [];
    const blockW0 = (h: number) => (0x20000000 | (h << 13)) >>> 0;
    for (let size = 1; size <= 64; size++) {
      for (let k = 0; k < size; k++) list.push([(blockW0(size) | (u32() & 0x1fff)) >>> 0, u32(), 0, 0]);
    }
    for (let i = 0; i < 70_000; i++) list.push([(0x30000000 | (u32() & 0x0fffffff)) >>> 0, u32(), u32(), u32()]);
    list.sort(cmp);
    const uniq: Words[] = [[0, 0, 0, 0], ...list.filter((a, i) => i === 0 || cmp(a, list[i - 1]!) !== 0)];
    const n = uniq.length;
    const starts = new Uint32Array(n * 4);
    uniq.forEach((a, i) => starts.set(a, i * 4));
    const rejectsAt = (k: number) => (k & 1) === 1;
    const d = buildDecisionIndex6(n, starts, rejectsAt)!;
    expect(d.wire.bits).toBe(16);
    expect(d.wire.pre).toBe(3);
    const want = (a: Words) => bisectWant(uniq, rejectsAt, a);
    const w = new Uint32Array(4);
    let bad = 0;
    let checked = 0;
    for (let size = 1; size <= 64; size++) {
      const probes: Words[] = [
        [blockW0(size), 0, 0, 0],
        [(blockW0(size) | 0x1fff) >>> 0, 0xffffffff, 0xffffffff, 0xffffffff],
      ];
      for (const f of uniq) if (f[0] >>> 13 === blockW0(size) >>> 13) probes.push(f, plus(f, -1), plus(f, 1));
      for (let i = 0; i < 200; i++) probes.push([(blockW0(size) | (u32() & 0x1fff)) >>> 0, u32(), u32(), u32()]);
      for (const a of probes) {
        checked++;
        w.set(a);
        if (d.rejects(w) !== want(a)) bad++;
      }
    }
    expect(checked).toBeGreaterThan(64 * 200 + 3 * 2000);
    expect(bad).toBe(0);
  });

  it('survives the wire (shared arrays) and is absent for small lists and without a kind', () => {
    const { builders, u32 } = bigList(80_000, 5, 0x20000000, 3);
    const trie = builders[0]!.build(0);
    const back = IpTrie.fromWire(structuredClone(trie.toWire()));
    const w = new Uint32Array(4);
    for (let i = 0; i < 20_000; i++) {
      w.set([((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32()]);
      expect(back.decision6!.rejects(w)).toBe(trie.decision6!.rejects(w));
    }
    expect(builders[1]!.build().decision6).toBeNull();
    const small = new IpTrieBuilder();
    small.add({ family: 6, words: [0x20010db8, 0, 0, 0], length: 32 }, 0, 0);
    expect(small.build(0).decision6).toBeNull();
  });
});
