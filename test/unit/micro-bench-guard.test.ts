/**
 * The guard of issue 5: a small run of the lookup microbenchmark (bench/micro/lookup.mjs) inside
 * the test suite. It asserts agreement only: for every checked address, ipgate's compiled trie
 * gives the same longest allow and deny entry as a linear ipaddr.js scan, and the same "listed"
 * answer as net.BlockList. It asserts no timing: rates are the benchmark's business.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(fileURLToPath(import.meta.url), '../../..');

describe('microbenchmark guard', () => {
  it('agrees with net.BlockList and a linear ipaddr.js scan on IPv4 and IPv6 lists', { timeout: 120_000 }, () => {
    // npm test builds dist/ first; the benchmark runs on that build.
    const r = spawnSync(process.execPath, ['--expose-gc', join(ROOT, 'bench/micro/lookup.mjs')], {
      encoding: 'utf8',
      env: { ...process.env, SIZES: '10,2000', FAMILIES: '4,6', LOOKUPS: '20000', CHECK_LOOKUPS: '20000', COMPILE_RUNS: '1', REF_CAP: '2000' },
    });
    expect(r.status, r.stderr).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => l.startsWith('| IPv'));
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row).toMatch(/\| 0 mismatches in 20,000 \|$/);
  });
});
