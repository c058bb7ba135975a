/**
 * policy/decision-index.ts: for a large list, the IPv4 decision index answers exactly what the
 * trie's full (allow, deny) answer implies, for both policy kinds, at block edges and in crowded
 * blocks; small lists get none.
 */
import { describe, expect, it } from 'vitest';
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
    // The allow list has fewer flips (16-bit blocks), the block list more (18-bit): both widths run.
    expect(d.wire.bits).toBe(kind === 0 ? 16 : 18);
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
