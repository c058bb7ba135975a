/**
 * policy/decision-lines4.ts: the one-line-per-lookup IPv4 decision index answers exactly like a
 * bisection of the interval starts: at every block size around a line's 31 slots, at the block's
 * last address (low part 0xFFFF, which the line's padding cannot answer), in overflowing and
 * crowded blocks, at every width; large lists get it through IpTrieBuilder.build, and it survives
 * the wire to another thread and to another process.
 */
import { describe, expect, it } from 'vitest';
import { buildDecisionIndex4, LINES_MIN_FLIPS } from '../../src/policy/decision-index.js';
import { DecisionLines4, type DecisionLinesWire } from '../../src/policy/decision-lines4.js';
import { IpTrie, IpTrieBuilder, rejects } from '../../src/policy/ip-trie.js';
import { mulberry32 } from '../helpers/seeded.js';

/**
 * The reference: bisect the sorted interval starts for the last one at or below `a` and return
 * that interval's decision. Written out independently on purpose; it must not use
 * src/policy/decision-*.ts, or a bug there would pass.
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

const sorted = (cuts: Set<number>) => Uint32Array.from([0, ...cuts].sort((a, b) => a - b));

describe('IPv4 decision index, lines layout', () => {
  it('searches blocks of 0 to 70 flips, overflowing past 31, with and without a flip at the last address', () => {
    // Block h = 1 + size holds `size` flips at random offsets; odd sizes also get a flip at low
    // part 0xFFFF. Every start is a flip (the decisions alternate). 70,000 more starts in the upper
    // half make the list big enough for an index.
    const rnd = mulberry32(31);
    const cuts = new Set<number>();
    for (let size = 0; size <= 70; size++) {
      const base = (1 + size) * 65536;
      const inBlock = new Set<number>();
      if (size % 2 === 1) inBlock.add(0xffff);
      while (inBlock.size < size) inBlock.add(Math.floor(rnd() * 65536));
      for (const low of inBlock) cuts.add(base + low);
    }
    while (cuts.size < 72_000) cuts.add(0x80000000 + Math.floor(rnd() * 2 ** 31));
    const starts = sorted(cuts);
    const n = starts.length;
    const rejectsAt = (k: number) => (k & 1) === 1;
    const d = buildDecisionIndex4(n, starts, rejectsAt, 32, 0)!;
    expect(d).toBeInstanceOf(DecisionLines4);
    expect(d.wire.bits).toBe(16);
    expect(d.wire.flips).toBe(n - 1);
    const want = (a: number) => bisectWant(starts, rejectsAt, a);
    let bad = 0;
    let checked = 0;
    for (let size = 0; size <= 70; size++) {
      const base = (1 + size) * 65536;
      const probes = [base, base + 1, base + 0xfffe, base + 0xffff, base + 0x10000];
      for (const f of starts) if (f >>> 16 === 1 + size) probes.push(f, f - 1, f + 1);
      for (let i = 0; i < 200; i++) probes.push(base + Math.floor(rnd() * 65536));
      for (const a of probes) {
        checked++;
        if (d.rejects(a) !== want(a)) bad++;
      }
    }
    expect(checked).toBeGreaterThan(71 * 205 + 3 * 2400);
    expect(bad).toBe(0);
  });

  it('answers like a bisection at every width, with a crowded block of thousands of flips', () => {
    const rnd = mulberry32(41);
    const cuts = new Set<number>();
    while (cuts.size < 200_000) cuts.add(Math.floor(rnd() * 2 ** 32));
    for (let k = 0; k < 5000; k++) cuts.add(0x7f000000 + 3 * k);
    const starts = sorted(cuts);
    const n = starts.length;
    const rej = Uint8Array.from(starts, () => (rnd() < 0.5 ? 1 : 0));
    const rejectsAt = (k: number) => rej[k] === 1;
    const probes: number[] = [0, 0xffffffff];
    for (let i = 0; i < 100_000; i++) probes.push(Math.floor(rnd() * 2 ** 32));
    for (let i = 0; i < 20_000; i++) {
      const s = starts[Math.floor(rnd() * n)]!;
      probes.push(s, Math.max(0, s - 1), Math.min(0xffffffff, s + 1));
    }
    for (let a = 0x7effff00; a < 0x7f004000; a++) probes.push(a);
    for (let h = 0; h < 1 << 20; h += 331) probes.push((h << 12) >>> 0, ((h << 12) - 1) >>> 0, ((h << 12) + 0xfff) >>> 0);
    const widths: number[] = [];
    for (const perBlock of [32, 1, 0.5, 0.25, 0.125, 0.001]) {
      const d = buildDecisionIndex4(n, starts, rejectsAt, perBlock, 0)!;
      expect(d).toBeInstanceOf(DecisionLines4);
      widths.push(d.wire.bits);
      let bad = 0;
      for (const a of probes) if (d.rejects(a) !== want(a)) bad++;
      expect(bad).toBe(0);
    }
    expect(widths).toEqual([16, 17, 18, 19, 20, 20]);

    function want(a: number): boolean {
      return bisectWant(starts, rejectsAt, a);
    }
  });

  it('is what build() gives a list of 2^20 flips or more, agrees with the trie, and survives both wires', () => {
    // 560,000 random /32 allow entries (two flips each) plus 20,000 /24s: over LINES_MIN_FLIPS.
    const rnd = mulberry32(5);
    const b = new IpTrieBuilder();
    for (let i = 0; i < 560_000; i++) b.add({ family: 4, words: [Math.floor(rnd() * 2 ** 32) >>> 0], length: 32 }, 0, i);
    for (let i = 0; i < 20_000; i++) b.add({ family: 4, words: [(Math.floor(rnd() * 2 ** 32) & 0xffffff00) >>> 0], length: 24 }, 0, 560_000 + i);
    const trie = b.build(0);
    const d = trie.decision4!;
    expect(d.wire.layout).toBe('lines');
    expect(d.wire.flips).toBeGreaterThanOrEqual(LINES_MIN_FLIPS);
    // Lines hold 31 flips; at ~17 flips per block some blocks overflow, and the check below reaches them.
    const lines = (d.wire as DecisionLinesWire).lines;
    let overflowing = 0;
    for (let h = 0; h < 1 << 16; h++) if ((lines[h << 5]! & 2) !== 0) overflowing++;
    expect(overflowing).toBeGreaterThan(0);

    // To the traffic thread: the same shared memory. To a worker process
    // (snapshotToPortableWire): plain copies, which the index copies back onto line boundaries.
    const thread = IpTrie.fromWire(structuredClone(trie.toWire()));
    const w = d.wire as DecisionLinesWire;
    const plain = new DecisionLines4({ ...w, lines: new Uint16Array(w.lines), ovIdx: new Int32Array(w.ovIdx), ovKeys: new Uint16Array(w.ovKeys) });
    expect(plain.wire.lines.buffer).not.toBeInstanceOf(SharedArrayBuffer);

    const check = (a: number) => {
      const leaf = trie.lookup4(a);
      const want = rejects(0, trie.allowEntry[leaf]!, trie.denyEntry[leaf]!);
      return d.rejects(a) === want && thread.decision4!.rejects(a) === want && plain.rejects(a) === want;
    };
    let bad = 0;
    let inside = 0;
    for (let i = 0; i < 150_000; i++) {
      const a = Math.floor(rnd() * 2 ** 32) >>> 0;
      if (!check(a)) bad++;
    }
    // Inside and next to listed entries, where the answer is "allowed".
    const again = mulberry32(5);
    for (let i = 0; i < 50_000; i++) {
      const a = Math.floor(again() * 2 ** 32) >>> 0;
      for (const x of [a, a - 1, a + 1]) if (!check(x >>> 0)) bad++;
      if (!trie.decision4!.rejects(a)) inside++;
    }
    expect(bad).toBe(0);
    expect(inside).toBe(50_000);
  });
});
