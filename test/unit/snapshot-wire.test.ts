/**
 * policy/wire.ts: a snapshot rebuilt on the other side of postMessage decides exactly as the one
 * the control plane compiled, and shares its tries' memory instead of copying it.
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { compileConfig, configToState } from '../../src/main.js';
import { NO_ENTRY } from '../../src/policy/ip-trie.js';
import type { CompiledPolicy, Snapshot } from '../../src/policy/snapshot.js';
import { snapshotFromWire, snapshotToWire } from '../../src/policy/wire.js';
import { mulberry32 } from '../helpers/seeded.js';

function randomEntries(n: number, rnd: () => number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = Math.floor(rnd() * 2 ** 32) >>> 0;
    const v4 = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
    const h = () => Math.floor(rnd() * 65536).toString(16);
    switch (i % 4) {
      case 0: out.push(v4); break;
      case 1: {
        const len = 8 + Math.floor(rnd() * 24);
        const n = (a & (~0 << (32 - len))) >>> 0;
        out.push(`${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}/${len}`);
        break;
      }
      case 2: out.push(i % 8 === 2 ? `2001:db8:${h()}::/48` : `2001:db8:${h()}:${h()}::/64`); break;
      default: out.push(`2001:db8:${h()}:${h()}:${h()}::${h()}`);
    }
  }
  return out;
}

function compiled(): Snapshot {
  const rnd = mulberry32(7);
  const config = parseConfigText(
    JSON.stringify({
      listen: '127.0.0.1:0',
      projects: [
        {
          name: 'p',
          ipGroups: [{ name: 'office', entries: [{ ip: '10.0.0.0/8' }, { ip: '10.1.2.3', action: 'deny' }] }],
          apiProxies: [
            {
              name: 'api',
              basePath: '/api',
              upstream: { url: 'http://127.0.0.1:9/base' },
              environments: ['production'],
              policies: [
                { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'allow', ipList: randomEntries(3000, rnd), ipGroupIdList: ['office'] } },
                {
                  operationMetadata: { targetScope: 'ENDPOINT', targetPipeline: 'REQUEST', targetEndpoint: '/orders/{id}/**', targetEndpointHTTPMethod: 'POST' },
                  policy: { type: 'policy-black-ip', name: 'block', ipList: randomEntries(500, rnd), targetVariableForIP: { type: 'SCRIPT', script: 'headers["x-client"] || remoteAddress' } },
                },
              ],
            },
            { name: 'other', basePath: '/other', hosts: ['example.test'], upstream: { url: 'http://127.0.0.1:9' }, environments: ['production'], policies: [] },
          ],
        },
      ],
    }),
    'wire.yaml',
  );
  const r = compileConfig(config, configToState(config));
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.snapshot;
}

function policies(s: Snapshot): CompiledPolicy[] {
  return s.proxies.flatMap((p) => [p.request, p.response, p.error].flatMap((pipe) => (pipe === null ? [] : [...pipe.proxyWide, ...pipe.endpoint])));
}

/** What a policy answers for an address: the matched allow and deny entry texts. */
function answer(p: CompiledPolicy, family: 4 | 6, words: Uint32Array): [string | null, string | null] {
  const leaf = p.trie.lookup(family, words);
  const a = p.trie.allowEntry[leaf]!;
  const d = p.trie.denyEntry[leaf]!;
  return [a === NO_ENTRY ? null : p.entryText.at(a)!, d === NO_ENTRY ? null : p.entryText.at(d)!];
}

describe('snapshot wire format', () => {
  const original = compiled();
  // structuredClone is what postMessage does to the message: SharedArrayBuffers are shared.
  const rebuilt = snapshotFromWire(structuredClone(snapshotToWire(original)), { scriptTimeoutMs: 100 });

  it('rebuilds every policy with identical answers for random addresses, hits and misses, both families', () => {
    const a = policies(original);
    const b = policies(rebuilt);
    expect(b.map((p) => [p.name, p.kind, p.enforce, p.methods, p.prefixCount, p.rejectStatus, p.source.kind, p.source.label])).toEqual(
      a.map((p) => [p.name, p.kind, p.enforce, p.methods, p.prefixCount, p.rejectStatus, p.source.kind, p.source.label]),
    );
    const rnd = mulberry32(11);
    let matched = 0;
    for (let i = 0; i < 20_000; i++) {
      const family: 4 | 6 = i % 2 === 0 ? 4 : 6;
      const words = new Uint32Array(4);
      words[0] = family === 6 && i % 4 === 1 ? 0x20010db8 : Math.floor(rnd() * 2 ** 32) >>> 0;
      for (let w = 1; w < 4; w++) words[w] = Math.floor(rnd() * 2 ** 32) >>> 0;
      for (let k = 0; k < a.length; k++) {
        const want = answer(a[k]!, family, words);
        if (want[0] !== null || want[1] !== null) matched++;
        expect(answer(b[k]!, family, words)).toEqual(want);
      }
    }
    // The comparison must include real matches, not only misses.
    expect(matched).toBeGreaterThan(1000);
  });

  it('keeps every entry text by id, and nothing outside the ids', () => {
    for (const [p, q] of policies(original).map((p, i) => [p, policies(rebuilt)[i]!] as const)) {
      expect(q.entryText.length).toBe(p.entryText.length);
      for (let i = 0; i < p.entryText.length; i++) expect(q.entryText.at(i)).toBe(p.entryText.at(i));
      expect(q.entryText.at(-1)).toBeUndefined();
      expect(q.entryText.at(q.entryText.length)).toBeUndefined();
    }
    expect(policies(rebuilt)[0]!.entryText.at(3000)).toBe('10.0.0.0/8 (group office)');
  });

  it('recompiles endpoint patterns and SCRIPT sources, and rebuilds the route table', () => {
    const block = policies(rebuilt).find((p) => p.name === 'block')!;
    expect(block.endpoint!.matches('/orders/7/items')).toBe(true);
    expect(block.endpoint!.matches('/customers/7')).toBe(false);
    expect(block.source.script!({ headers: { 'x-client': '192.0.2.1' }, query: {}, remoteAddress: '127.0.0.1' })).toBe('192.0.2.1');
    expect(block.source.script!({ headers: {}, query: {}, remoteAddress: '127.0.0.5' })).toBe('127.0.0.5');
    expect(rebuilt.routes.match('example.test', '/other/x')?.value.name).toBe('other');
    expect(rebuilt.routes.match(undefined, '/api/x')?.value.name).toBe('api');
    expect(rebuilt.routes.match(undefined, '/nothing')).toBeNull();
    expect(rebuilt.proxies[0]!.upstream).toEqual(original.proxies[0]!.upstream);
    expect([rebuilt.revision, rebuilt.environment, rebuilt.stats]).toEqual([original.revision, original.environment, original.stats]);
  });

  it('shares the tries: the rebuilt arrays are views of SharedArrayBuffers, not copies', () => {
    const p = policies(rebuilt)[0]!;
    expect(p.trie.allowEntry.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(p.trie.denyEntry.buffer).toBeInstanceOf(SharedArrayBuffer);
    // The entry texts crossed as one string, not as an array of strings.
    expect(Array.isArray(p.entryText)).toBe(false);
  });

  it('keeps no second copy in the control plane: the compiled trie already lives in the shared memory it sends', () => {
    for (const p of policies(original)) {
      expect(p.trie.allowEntry.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(p.trie.toWire().mem.buffer).toBe(p.trie.allowEntry.buffer);
    }
  });
});
