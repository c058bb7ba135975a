import { Agent, request } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configToState, type Gateway } from '../../src/main.js';
import { oneProxy, policy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

const ADMIN = 'reload-admin-token-0123456789';

/** n random IPv4 /32 and /24 entries outside 127.0.0.0/8, deterministic. */
function bigList(n: number, seed: number): string[] {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const a = next();
    const first = 1 + ((a >>> 24) % 126); // 1..126: never 127
    out.push(i % 5 === 0 ? `${first}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.0/24` : `${first}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`);
  }
  return out;
}

describe('hot reload', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-reload-'));
    gw = await startGateway(oneProxy(up.url, [policy('policy-white-ip', 'big', ['127.0.0.1'])], { gateway: { store: { file: join(dir, 'store.json') } } }), {
      env: { IPGATE_ADMIN_TOKEN: ADMIN },
    });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('replaces a 100,000-entry policy repeatedly under load with zero failed requests, each enforced when the write returns', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 8, localAddress: '127.0.0.1' });
    let ok = 0;
    const failures: string[] = [];
    let stop = false;
    const one = () =>
      new Promise<void>((resolve) => {
        const req = request({ host: '127.0.0.1', port: gw.port, path: '/api/load', agent }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) ok++;
            else failures.push(`status ${res.statusCode}`);
            resolve();
          });
        });
        req.on('error', (e) => {
          failures.push(e.message);
          resolve();
        });
        req.end();
      });
    const loops = Array.from({ length: 8 }, async () => {
      while (!stop) await one();
    });

    const writes = 6;
    for (let i = 0; i < writes; i++) {
      // Alternate whether 127.0.0.8 is listed, so each write's enforcement is observable.
      const list8 = i % 2 === 0;
      const ipList = [...bigList(100_000, i + 1), '127.0.0.1', ...(list8 ? ['127.0.0.8'] : [])];
      const r = await send(gw.gateway.adminAddress.port, '/apiops/projects/p/apiProxies/api/policies/big/', {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true }, policy: { type: 'policy-white-ip', ipList } }),
      });
      expect(r.status).toBe(200);
      expect(r.json().deploymentResult.success).toBe(true);
      // Enforced before the admin call returned: no waiting here.
      expect((await send(gw.port, '/api/x', { from: '127.0.0.8' })).status).toBe(list8 ? 200 : 403);
    }
    stop = true;
    await Promise.all(loops);
    agent.destroy();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(writes);
  });

  it('keeps the last good snapshot when a compile fails (control plane inline, where apply() is reachable)', async () => {
    const inline = await startGateway(oneProxy(up.url, [policy('policy-white-ip', 'big', ['127.0.0.1'])], { gateway: { controlPlane: 'inline' } }));
    try {
      const g = inline.gateway as Gateway;
      const before = g.dataPlane.snapshot!;
      const bad = configToState(g.config, before.revision + 1);
      // Two proxies on one basePath cannot be routed: the compile fails as a whole.
      bad.projects[0]!.apiProxies.push({ ...bad.projects[0]!.apiProxies[0]!, name: 'clash' });
      const r = g.apply(bad);
      expect(r.ok).toBe(false);
      expect(g.dataPlane.snapshot).toBe(before);
      expect(inline.logs.events('compile_failed')).toHaveLength(1);
      expect((await send(inline.port, '/api/x', { from: '127.0.0.1' })).status).toBe(200);
    } finally {
      await inline.close();
    }
  });
});
