/**
 * `controlPlane: thread` (the default): the admin API, store and compile run in a worker thread,
 * and the traffic thread only swaps in the snapshots it is sent.
 */
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { launchGateway, type RunningGateway } from '../../src/launch.js';
import { LogCapture, oneProxy, policy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';
import type { CompiledPolicy } from '../../src/policy/snapshot.js';

const ADMIN = 'control-thread-admin-token-0123456789';

function firstPolicy(gw: TestGateway): CompiledPolicy {
  return gw.gateway.dataPlane.snapshot!.proxies[0]!.request!.proxyWide[0]!;
}

describe('control plane in its own thread', () => {
  let up: Upstream;
  beforeAll(async () => {
    up = await startUpstream();
  });
  afterAll(async () => {
    await up.close();
  });

  it('enforces, in the traffic thread, snapshots compiled in the other thread (shared tries), from start and after an admin write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-thread-'));
    const gw = await startGateway(oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.2'])], { gateway: { store: { file: join(dir, 's.json') } } }), {
      env: { IPGATE_ADMIN_TOKEN: ADMIN },
    });
    try {
      expect((await send(gw.port, '/api/x', { from: '127.0.0.2' })).status).toBe(200);
      expect((await send(gw.port, '/api/x', { from: '127.0.0.3' })).status).toBe(403);
      // Rebuilt from the wire: the trie arrays live in shared memory and the texts in one string
      // (compiled in this thread, controlPlane: inline, the texts would be the compiler's array).
      expect(firstPolicy(gw).trie.allowEntry.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(Array.isArray(firstPolicy(gw).entryText)).toBe(false);

      const r = await send(gw.gateway.adminAddress.port, '/apiops/projects/p/apiProxies/api/policies/allow/', {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true }, policy: { type: 'policy-white-ip', ipList: ['127.0.0.3'] } }),
      });
      expect(r.status).toBe(200);
      expect(r.json().deploymentResult.success).toBe(true);
      // Enforced in the traffic thread when the write returned.
      expect((await send(gw.port, '/api/x', { from: '127.0.0.3' })).status).toBe(200);
      expect((await send(gw.port, '/api/x', { from: '127.0.0.2' })).status).toBe(403);
      expect(firstPolicy(gw).entryText.at(0)).toBe('127.0.0.3');
      // One install line per snapshot, written by the traffic thread; the control plane's own lines arrive too.
      expect(gw.logs.events('snapshot_installed').map((l) => l.revision)).toEqual([1, 2]);
      expect(gw.logs.events('store_opened')).toHaveLength(1);
    } finally {
      await gw.close();
    }
    expect(gw.logs.events('stopped')).toHaveLength(1);
  });

  it('keeps the compiled entry texts when inline (the property above is what the thread changes)', async () => {
    const gw = await startGateway({ ...oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.2'])]), controlPlane: 'inline' });
    try {
      expect(Array.isArray(firstPolicy(gw).entryText)).toBe(true);
    } finally {
      await gw.close();
    }
  });

  it('sends the recompiled snapshot to the traffic thread when an IP group entry expires', async () => {
    // Far enough ahead that the gateway has started and answered once before it passes, even on a
    // loaded machine (1.5 s was not: a slow start made the first answer a 403 already).
    const expiresAt = new Date(Date.now() + 6000).toISOString();
    const gw = await startGateway(
      oneProxy(up.url, [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'temp', ipGroupIdList: ['temp'] } }], {
        ipGroups: [{ name: 'temp', entries: [{ ip: '127.0.0.2', expiresAt }, { ip: '127.0.0.3' }] }],
      }),
    );
    try {
      expect((await send(gw.port, '/api/x', { from: '127.0.0.2' })).status).toBe(200);
      // Polled, not timed: the entry stops matching once its expiry has passed, with no admin call.
      let status = 200;
      for (let i = 0; i < 200 && status === 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await send(gw.port, '/api/x', { from: '127.0.0.2' })).status;
      }
      expect(status).toBe(403);
      expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(expiresAt));
      expect((await send(gw.port, '/api/x', { from: '127.0.0.3' })).status).toBe(200);
    } finally {
      await gw.close();
    }
  });

  it('lowers the control-plane thread\'s priority, and only that thread\'s (controlPlaneNice)', async () => {
    const gw = await startGateway({ ...oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.2'])]), controlPlaneNice: 7 });
    try {
      const [line] = gw.logs.events('control_plane_thread');
      expect(line).toMatchObject({ nice: 7 });
      // Field 19 of /proc/<pid>/task/<tid>/stat is the nice value (after the parenthesised name).
      const niceOf = (tid: number | string) => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
      expect(niceOf(line!.tid as number)).toBe(7);
      expect(niceOf(process.pid)).toBe(0);
    } finally {
      await gw.close();
    }
  });

  it('paces the control-plane thread by default on Linux, and not with controlPlanePacing: false', async () => {
    const on = await startGateway(oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.2'])]));
    try {
      expect(on.logs.events('control_plane_thread')[0]).toMatchObject({ pacing: true });
    } finally {
      await on.close();
    }
    const off = await startGateway({ ...oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.2'])]), controlPlanePacing: false });
    try {
      expect(off.logs.events('control_plane_thread')[0]).toMatchObject({ pacing: false });
    } finally {
      await off.close();
    }
  });

  it("reports the control-plane thread's own heap and its pacing at /metrics; the heap holds a large list the traffic thread does not", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-thread-heap-'));
    const gw = await startGateway(oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.2'])], { gateway: { store: { file: join(dir, 's.json') } } }), {
      env: { IPGATE_ADMIN_TOKEN: ADMIN },
    });
    const gauge = async (name: string): Promise<number> => {
      const r = await send(gw.gateway.adminAddress.port, '/metrics');
      expect(r.status).toBe(200);
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.text);
      expect(m, `${name} in /metrics`).not.toBeNull();
      return Number(m![1]);
    };
    try {
      const total = await gauge('ipgate_control_plane_heap_total_bytes');
      const used = await gauge('ipgate_control_plane_heap_used_bytes');
      expect(used).toBeGreaterThan(0);
      expect(used).toBeLessThanOrEqual(total);
      const slices = await gauge('ipgate_control_plane_pacing_slices_total');
      const pauses = await gauge('ipgate_control_plane_pacing_pauses_total');
      // 200,000 entries: the control plane keeps them as strings in the store's draft and
      // deployed copy; the traffic thread gets one string and shared arrays.
      const ipList = Array.from({ length: 200_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      const r = await send(gw.gateway.adminAddress.port, '/apiops/projects/p/apiProxies/api/policies/allow/', {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true }, policy: { type: 'policy-white-ip', ipList } }),
      });
      expect(r.status).toBe(200);
      // The store keeps the 200,000 strings and two arrays of them (draft and deployed copy),
      // well over 5 MB whatever the collector has reclaimed meanwhile (measured: ~36 MB more).
      expect(await gauge('ipgate_control_plane_heap_used_bytes')).toBeGreaterThan(used + 5 * 1024 * 1024);
      // The write ran through the installed pacer: far more than 0.25 ms of work, so many slices.
      // Whether it paused depends on what else wanted this CPU meanwhile, so pauses only count up.
      expect(await gauge('ipgate_control_plane_pacing_slices_total')).toBeGreaterThan(slices + 20);
      expect(await gauge('ipgate_control_plane_pacing_pauses_total')).toBeGreaterThanOrEqual(pauses);
    } finally {
      await gw.close();
    }
  });

  it('refuses to start, with the reason, when the traffic listener cannot open', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    try {
      let error: unknown = null;
      try {
        const gw = await startGateway({ ...oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.2'])]), listen: `127.0.0.1:${port}` });
        await gw.close();
      } catch (err) {
        error = err;
      }
      expect(String((error as Error | null)?.message)).toContain(`cannot open the traffic listener on 127.0.0.1:${port}`);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});

describe('when the control-plane thread dies', () => {
  let up: Upstream;
  beforeAll(async () => {
    up = await startUpstream();
  });
  afterAll(async () => {
    await up.close();
  });

  /** The thread ends as it would on a crash; only the test reaches into the gateway for it. */
  function killControlThread(gw: RunningGateway): Promise<number> {
    return (gw as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
  }

  async function until(check: () => boolean | Promise<boolean>): Promise<boolean> {
    for (let i = 0; i < 100; i++) {
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  it('logs the crash and hands it to onControlPlaneExit (the CLI exits 1); traffic stays under the last snapshot', async () => {
    const logs = new LogCapture();
    const exits: Error[] = [];
    const text = stringify({ listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, ...oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.2'])]) });
    const gw = await launchGateway({ config: parseConfigText(text, 't.yaml', {}), logStream: logs, processMetrics: false, onControlPlaneExit: (e) => exits.push(e) });
    try {
      await killControlThread(gw);
      expect(await until(() => exits.length === 1)).toBe(true);
      expect(logs.events('crash')).toMatchObject([{ kind: 'controlPlaneThread' }]);
      expect((await send(gw.trafficAddress.port, '/api/x', { from: '127.0.0.2' })).status).toBe(200);
      expect((await send(gw.trafficAddress.port, '/api/x', { from: '127.0.0.3' })).status).toBe(403);
    } finally {
      await gw.close();
    }
  });

  it('stops taking traffic when nobody handles it (fail closed: expiry and changes would silently stop)', async () => {
    const logs = new LogCapture();
    const text = stringify({ listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, ...oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.2'])]) });
    const gw = await launchGateway({ config: parseConfigText(text, 't.yaml', {}), logStream: logs, processMetrics: false });
    try {
      const port = gw.trafficAddress.port;
      expect((await send(port, '/api/x', { from: '127.0.0.2' })).status).toBe(200);
      await killControlThread(gw);
      const refused = () => send(port, '/api/x', { from: '127.0.0.2' }).then(() => false, (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED');
      expect(await until(refused)).toBe(true);
      expect(logs.events('crash')).toHaveLength(1);
    } finally {
      await gw.close();
    }
  });
});
