/**
 * policy/pace.ts: the yield points of long control-plane work. The pacer must be reached from
 * every long loop of a large write (validation, compile, serialisation, hashing), and pacing must
 * change nothing in what is computed: the same texts, the same hashes, the same compiled answers.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cloneDraft, sealBlob } from '../../src/controlplane/store/blobs.js';
import { FileStore } from '../../src/controlplane/store/file-store.js';
import { encode } from '../../src/controlplane/store/pg/rows.js';
import { parseConfigText } from '../../src/config/load.js';
import { policyBindingSchema } from '../../src/config/schema.js';
import { compileConfig, configToState } from '../../src/main.js';
import { buildDecisionIndex4 } from '../../src/policy/decision-index.js';
import { buildDecisionIndex6 } from '../../src/policy/decision-index6.js';
import { pace, pacedSha256, pacedStringify, setPacer } from '../../src/policy/pace.js';
import { stateHash } from '../../src/policy/state-hash.js';
import { snapshotToWire } from '../../src/policy/wire.js';
import { oneProxy, policy } from '../helpers/harness.js';
import { mulberry32 } from '../helpers/seeded.js';

let calls = 0;
/** The functions whose yield points reached the pacer (the caller of pace(), from the stack). */
const callers = new Set<string>();
/** A pacer that counts its checks; contended, so that every paced path is taken. */
const counting = {
  check(): void {
    calls++;
    const lines = new Error().stack!.split('\n');
    const at = lines.findIndex((l) => /^\s*at pace /.test(l));
    const caller = /^\s*at (?:new )?([\w.$<>]+)/.exec(lines[at + 1] ?? '');
    if (caller !== null) callers.add(caller[1]!);
  },
  contended: true,
};

/** Pacer checks made while `fn` runs. */
function pacerCalls(fn: () => void): number {
  calls = 0;
  callers.clear();
  setPacer(counting);
  try {
    fn();
  } finally {
    setPacer(null);
  }
  return calls;
}

afterEach(() => setPacer(null));

/** pacedSha256(input) under the counting pacer: its hex digest and the pacer checks it made. */
function pacedHash(input: string | Uint8Array): { hex: string; checks: number } {
  let hex = '';
  const checks = pacerCalls(() => {
    hex = pacedSha256(input);
  });
  return { hex, checks };
}

const sha256 = (input: string | Uint8Array): string => createHash('sha256').update(input).digest('hex');

function entries(n: number, seed: number): string[] {
  const rnd = mulberry32(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.floor(rnd() * 2 ** 32) >>> 0;
    if (i % 3 === 2) out.push(`2001:db8:${(a >>> 16).toString(16)}:${(a & 0xffff).toString(16)}::/64`);
    else out.push(`${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${i % 3 === 0 ? a & 255 : `0/24`}`);
  }
  return out;
}

function config(ipList: string[]) {
  return parseConfigText(JSON.stringify({ listen: '127.0.0.1:0', ...oneProxy('http://127.0.0.1:9', [policy('policy-white-ip', 'allow', ipList)]) }), 'pace.yaml');
}

describe('pace()', () => {
  it('does nothing without a pacer, and calls the pacer once per 64 units with one', () => {
    for (let i = 0; i < 1000; i++) pace(); // no pacer: must not throw or count
    expect(pacerCalls(() => {
      for (let i = 0; i < 64 * 10; i++) pace();
    })).toBe(10);
    expect(pacerCalls(() => {
      for (let i = 0; i < 10; i++) pace(64);
    })).toBe(10);
  });
});

describe('pacedStringify and pacedSha256', () => {
  const rnd = mulberry32(11);
  const value = {
    a: entries(5000, 3),
    nested: { s: 'é\u2028"\\\n', n: [1, -0, 1.5e300, null, true], u: undefined, d: new Date(0), deep: [{ x: [[], {}] }] },
    sparse: [undefined, () => 1, Symbol('s')],
    big: Array.from({ length: 3000 }, () => ({ k: rnd().toString(36), v: Math.floor(rnd() * 1e9) })),
  };

  it('stringify yields per value only while the traffic thread contends (the fast serialiser otherwise)', () => {
    calls = 0;
    setPacer({ check: () => void calls++, contended: false });
    expect(pacedStringify(value)).toBe(JSON.stringify(value));
    setPacer(null);
    expect(calls).toBe(0);
  });

  it('produce exactly what JSON.stringify and a one-shot SHA-256 produce, and yield while doing it', () => {
    const plain = JSON.stringify(value);
    let text = '';
    expect(pacerCalls(() => {
      text = pacedStringify(value);
    })).toBeGreaterThan(100);
    expect(text).toBe(plain);
    expect(pacedStringify(value)).toBe(plain); // without a pacer too
    const hashed = pacedHash(plain);
    expect(hashed.checks).toBeGreaterThan(0);
    expect(hashed.hex).toBe(sha256(plain));
  });

  it('hashes the same bytes when a surrogate pair or a multi-byte character straddles a piece boundary', () => {
    for (const at of [65_535, 65_534, 131_071]) {
      // '\ud800😀': a lone high surrogate just before the cut, then a pair across it.
      for (const ch of ['😀', 'é', '€', '\ud800', '\ud800😀', '\udc00']) {
        const text = 'x'.repeat(at) + ch + 'y'.repeat(70_000);
        expect(pacedHash(text).hex, `${JSON.stringify(ch)} at ${at}`).toBe(sha256(text));
      }
    }
    const bytes = Buffer.from('z'.repeat(200_001) + '😀');
    const hashed = pacedHash(bytes);
    expect(hashed.checks).toBeGreaterThan(0);
    expect(hashed.hex).toBe(sha256(bytes));
  });
});

describe('the long loops of a large write reach the pacer', () => {
  const list = entries(20_000, 5);
  // 20,000 entries are at least 20,000 units in each loop: hundreds of pacer calls per stage. A
  // stage without yield points would reach it rarely or never.
  const MIN = 20_000 / 64 / 2;

  it('validation of an admin body (the ipList entries)', () => {
    const body = { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', ipList: list } };
    let ok = false;
    expect(pacerCalls(() => {
      ok = policyBindingSchema.safeParse(body).success;
    })).toBeGreaterThan(MIN);
    expect(ok).toBe(true);
  });

  it('compile, with answers identical to an unpaced compile', () => {
    const cfg = config(list);
    const plain = compileConfig(cfg, configToState(cfg));
    let paced: ReturnType<typeof compileConfig> | null = null;
    // Each compile stage (entry parse, radix sort, sweep, trie) loops over every entry.
    expect(pacerCalls(() => {
      paced = compileConfig(cfg, configToState(cfg));
    })).toBeGreaterThan(4 * MIN);
    // Every stage of the compile has its own yield points: a stage without would hold the CPU for all of its loop.
    expect([...callers]).toEqual(expect.arrayContaining(['compilePolicy', 'PrefixSort.group', 'Sweep.run', 'sweep', 'FamilyTrieBuilder.build']));
    if (!plain.ok || paced === null || !(paced as typeof plain).ok) throw new Error('compile failed');
    const a = plain.snapshot.proxies[0]!.request!.proxyWide[0]!;
    const b = (paced as typeof plain).snapshot.proxies[0]!.request!.proxyWide[0]!;
    expect(b.prefixCount).toBe(a.prefixCount);
    const rnd = mulberry32(9);
    const words = new Uint32Array(4);
    for (let i = 0; i < 20_000; i++) {
      words[0] = Math.floor(rnd() * 2 ** 32) >>> 0;
      expect(b.trie.lookup(4, words)).toBe(a.trie.lookup(4, words));
    }
    // The snapshot handed to the traffic thread: the joined entry texts are the same.
    let wire: ReturnType<typeof snapshotToWire> | null = null;
    expect(pacerCalls(() => {
      wire = snapshotToWire((paced as typeof plain).snapshot);
    })).toBeGreaterThanOrEqual(Math.floor(20_000 / 1024)); // one yield point per piece of 1,024 texts
    expect([...callers]).toEqual(['textsToWire']);
    expect((wire as unknown as ReturnType<typeof snapshotToWire>).proxies[0]!.request!.proxyWide[0]!.entryText.text).toBe(list.join(''));
  });

  it('the decision index of a large list', () => {
    const n = 1 << 16;
    const starts = new Uint32Array(n);
    for (let k = 0; k < n; k++) starts[k] = k * 4096;
    expect(pacerCalls(() => void buildDecisionIndex4(n, starts, (k) => k % 3 === 0))).toBeGreaterThan(n / 16 / 64);
    expect([...callers]).toEqual(['decisionFlips', 'buildDecisionIndex4']);
    // The IPv6 index: the same flip scan, then its own key loop.
    const starts6 = new Uint32Array(n * 4);
    for (let k = 0; k < n; k++) starts6[k * 4] = (0x20000000 + k * 4096) >>> 0;
    expect(pacerCalls(() => void buildDecisionIndex6(n, starts6, (k) => k % 3 === 0))).toBeGreaterThan(n / 16 / 64);
    expect([...callers]).toEqual(['decisionFlips', 'buildDecisionIndex6']);
  });

  it('the state hash, the store copy, and sealing a deployed copy', () => {
    const cfg = config(list);
    const state = configToState(cfg);
    const plainHash = stateHash(state);
    let hash = '';
    expect(pacerCalls(() => {
      hash = stateHash(state);
    })).toBeGreaterThan(MIN);
    expect(hash).toBe(plainHash);
    const proxy = { policies: [{ ipList: [...list] }] };
    expect(pacerCalls(() => void cloneDraft(proxy))).toBeGreaterThan(MIN);
    let sealed = '';
    expect(pacerCalls(() => {
      sealed = sealBlob(proxy);
    })).toBeGreaterThan(MIN);
    expect(sealed).toBe(sha256(JSON.stringify(proxy)));
  });

  it("the PostgreSQL store's rows: the same JSON as unpaced", () => {
    const draft = { name: 'api', basePath: '/api', upstream: { url: 'http://127.0.0.1:9' }, policies: [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'w', ipList: list } }] };
    const state = () =>
      ({
        format: 1,
        epoch: '5f0c6d1e-0000-4000-8000-000000000001',
        revision: 1,
        environments: [{ name: 'prod', createdAt: '2024-01-01T00:00:00.000Z' }],
        projects: [{ name: 'p', createdAt: '2024-01-01T00:00:00.000Z', ipGroups: [], proxies: [{ draft: structuredClone(draft), version: 1, deployments: {} }] }],
        audit: [],
      }) as never;
    const plain = [...encode(state()).rows.values()].map((r) => r.json);
    let paced: string[] = [];
    expect(pacerCalls(() => {
      paced = [...encode(state()).rows.values()].map((r) => r.json);
    })).toBeGreaterThan(MIN);
    expect(paced).toEqual(plain);
    // Serialised through the pacing replacer (called with the holder as `this`: Object./Array.).
    expect([...callers].some((c) => c.endsWith('pacingReplacer'))).toBe(true);
  });

  it('a store write: the file is the one an unpaced write produces, and reads back', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ipgate-pace-'));
    try {
      const data = {
        format: 1,
        epoch: '5f0c6d1e-0000-4000-8000-000000000001',
        revision: 0,
        environments: [{ name: 'prod', createdAt: '2024-01-01T00:00:00.000Z' }],
        projects: [],
        audit: [{ id: 1, time: '2024-01-01T00:00:00.000Z', revision: 1, actor: 'a', action: 'x', project: null, proxy: null, target: 't', before: null, after: list }],
      };
      const store = await FileStore.create(join(dir, 'a.json'), structuredClone(data) as never);
      await store.close();
      calls = 0;
      setPacer(counting);
      const paced = await FileStore.create(join(dir, 'b.json'), structuredClone(data) as never);
      setPacer(null);
      await paced.close();
      expect(calls).toBeGreaterThan(MIN);
      const { readFile } = await import('node:fs/promises');
      expect(await readFile(join(dir, 'b.json'), 'utf8')).toBe(await readFile(join(dir, 'a.json'), 'utf8'));
      const reopened = await FileStore.open(join(dir, 'b.json'));
      expect(reopened!.data.audit[0]!.after).toEqual(list);
      await reopened!.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
