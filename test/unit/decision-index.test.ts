/**
 * policy/decision-index.ts: for a large list, the IPv4 decision index answers exactly what the
 * trie's full (allow, deny) answer implies, for both policy kinds, at block edges and in crowded
 * blocks; small lists get none.
 */
import { describe, expect, it } from 'vitest';
import { buildDecisionIndex4 } from '../../src/policy/decision-index.js';
import { IpTrie, IpTrieBuilder, rejects } from '../../src/policy/ip-trie.js';
import { mulberry32 } from '../helpers/seeded.js';

function maskOf(len: number): number {
  return len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
}

/**
 * n random IPv4 /32 and /24 prefixes (60/40), 30% allow, plus a crowded /18 of every other /32.
 * (No short prefixes: random /8s would cover the whole space and make every decision the same.)
 */
function bigList(n: number, seed: number): IpTrieBuilder[] {
  const rnd = mulberry32(seed);
  const u32 = () => Math.floor(rnd() * 2 ** 32) >>> 0;
  const builders = [new IpTrieBuilder(), new IpTrieBuilder()];
  const add = (words: number, length: number, action: 0 | 1, id: number) => {
    for (const b of builders) b.add({ family: 4, words: [words], length }, action, id);
  };
  for (let i = 0; i < n; i++) {
    const r = rnd();
    const length = r < 0.6 ? 32 : 24;
    add((u32() & maskOf(length)) >>> 0, length, rnd() < 0.3 ? 0 : 1, i);
  }
  // 8,192 alternating /32s in 10.64.0.0/18: one block with thousands of flips (the bisection path).
  for (let k = 0; k < 8192; k++) add((0x0a400000 + 2 * k) >>> 0, 32, 1, n + k);
  return builders;
}

function decisionByTrie(trie: IpTrie, kind: 0 | 1, a: number): boolean {
  const leaf = trie.lookup4(a);
  return rejects(kind, trie.allowEntry[leaf]!, trie.denyEntry[leaf]!);
}

/**
 * The reference the index is checked against: bisect the sorted interval starts for the last one
 * at or below `a` and return that interval's decision. Written out independently on purpose; it
 * must not use src/policy/decision-index*.ts (bisectAbove etc.), or a bug there would pass.
 */
function bisectWant(starts: Uint32Array, rejectsAt: (k: number) => boolean, a: number): boolean {
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid]! <= a) lo = mid;
    else hi = mid - 1;
  }
  return rejectsAt(lo);
}

describe('IPv4 decision index', () => {
  const [allowB, blockB] = bigList(300_000, 99);
  const tries = { 0: allowB!.build(0), 1: blockB!.build(1) } as const;

  it.each([0, 1] as const)('agrees with the trie for kind %i on random, edge and crowded-block addresses', (kind) => {
    const trie = tries[kind];
    const d = trie.decision4!;
    expect(d).not.toBeNull();
    const rnd = mulberry32(7 + kind);
    let rejected = 0;
    let passed = 0;
    const check = (a: number) => {
      const want = decisionByTrie(trie, kind, a >>> 0);
      if (want) rejected++;
      else passed++;
      expect(d.rejects(a >>> 0)).toBe(want);
    };
    for (let i = 0; i < 200_000; i++) check(Math.floor(rnd() * 2 ** 32));
    // Block edges of both index widths, and the crowded block with its neighbours.
    for (let h = 0; h < 1 << 16; h += 97) for (const a of [h << 16, (h << 16) - 1, (h << 16) + 1]) check(a);
    for (let a = 0x0a3ffff0; a < 0x0a404010; a++) check(a);
    check(0);
    check(0xffffffff);
    // Both answers occur, so the comparison means something.
    expect(rejected).toBeGreaterThan(1000);
    expect(passed).toBeGreaterThan(100);
    // Both lists have under 2^21 flips: the 16-bit width, whose 256 KB table stays in cache.
    expect(d.wire.bits).toBe(16);
  });

  it('answers like a bisection of the interval starts at every width, with crowded blocks', () => {
    // 200,000 intervals of random lengths, a random decision each, plus 5,000 one-address
    // intervals in a row (one block far over the 63 keys of the branch-free search).
    const rnd = mulberry32(21);
    const cuts = new Set<number>();
    while (cuts.size < 200_000) cuts.add(Math.floor(rnd() * 2 ** 32));
    for (let k = 0; k < 5000; k++) cuts.add(0x7f000000 + k);
    const starts = Uint32Array.from([0, ...cuts].sort((a, b) => a - b));
    const n = starts.length;
    const rej = Uint8Array.from(starts, () => (rnd() < 0.5 ? 1 : 0));
    const rejectsAt = (k: number) => rej[k] === 1;
    const want = (a: number) => bisectWant(starts, rejectsAt, a);
    const probes: number[] = [0, 0xffffffff];
    for (let i = 0; i < 100_000; i++) probes.push(Math.floor(rnd() * 2 ** 32));
    for (let i = 0; i < 20_000; i++) {
      const s = starts[Math.floor(rnd() * n)]!;
      probes.push(s, Math.max(0, s - 1), Math.min(0xffffffff, s + 1));
    }
    for (let a = 0x7effff00; a < 0x7f001400; a++) probes.push(a);
    const widths: number[] = [];
    // 32 flips per block is the default (16 bits here); smaller targets pick wider indexes, up to 20.
    for (const perBlock of [32, 1, 0.5, 0.25, 0.125, 0.001]) {
      const d = buildDecisionIndex4(n, starts, rejectsAt, perBlock)!;
      widths.push(d.wire.bits);
      let bad = 0;
      for (const a of probes) if (d.rejects(a) !== want(a)) bad++;
      expect(bad).toBe(0);
    }
    expect(widths).toEqual([16, 17, 18, 19, 20, 20]);
  });


  it('searches blocks of every size the branch-free search covers (1 to 63 flips) and the first crowded one', () => {
    // Block h = size holds `size` flips at random offsets (every start is a flip: the decisions
    // alternate); 70,000 more starts fill blocks 32,768 and up, so the list needs an index. Probed
    // at every flip, next to it, at the block's edges and at random inside: a search that misses a
    // slot or reads one past the block answers wrongly for some size.
    const rnd = mulberry32(63);
    const cuts = new Set<number>();
    for (let size = 1; size <= 64; size++) {
      const inBlock = new Set<number>();
      while (inBlock.size < size) inBlock.add(Math.floor(rnd() * 65536));
      for (const low of inBlock) cuts.add(size * 65536 + low);
    }
    while (cuts.size < 72_080) cuts.add(0x80000000 + Math.floor(rnd() * 2 ** 31));
    const starts = Uint32Array.from([0, ...cuts].sort((a, b) => a - b));
    const n = starts.length;
    const rejectsAt = (k: number) => (k & 1) === 1;
    const d = buildDecisionIndex4(n, starts, rejectsAt)!;
    expect(d.wire.bits).toBe(16);
    expect(d.wire.flips).toBe(n - 1);
    const want = (a: number) => bisectWant(starts, rejectsAt, a);
    let bad = 0;
    let checked = 0;
    for (let size = 1; size <= 64; size++) {
      const probes = [size * 65536, size * 65536 + 65535];
      for (const f of starts) if (f >>> 16 === size) probes.push(f, f - 1, f + 1);
      for (let i = 0; i < 200; i++) probes.push(size * 65536 + Math.floor(rnd() * 65536));
      for (const a of probes) {
        checked++;
        if (d.rejects(a) !== want(a)) bad++;
      }
    }
    expect(checked).toBeGreaterThan(64 * 200 + 3 * 2000);
    expect(bad).toBe(0);
  });

  it('survives the wire (shared arrays) and is absent for small lists and without a kind', () => {
    const trie = tries[0];
    const back = IpTrie.fromWire(structuredClone(trie.toWire()));
    const rnd = mulberry32(3);
    for (let i = 0; i < 20_000; i++) {
      const a = Math.floor(rnd() * 2 ** 32) >>> 0;
      expect(back.decision4!.rejects(a)).toBe(trie.decision4!.rejects(a));
    }
    const small = new IpTrieBuilder();
    small.add({ family: 4, words: [0x0a000000], length: 8 }, 0, 0);
    expect(small.build(0).decision4).toBeNull();
    const [noKind] = bigList(100_000, 5);
    expect(noKind!.build().decision4).toBeNull();
  });
});
