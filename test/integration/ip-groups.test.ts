/**
 * Project IP groups referenced by ipGroupIdList: allow/deny entry actions in white- and black-ip
 * policies, expiry (past, and expiring while the gateway runs, with no reload call), and a
 * dangling reference failing the compile with a path-named error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../helpers/manual-clock.js';
import { oneProxy, send, startGateway, startUpstream, type Reply, type TestGateway, type Upstream } from '../helpers/harness.js';

function expectFault(r: Reply, status: number, code: string): { faultString: string } {
  expect(r.status).toBe(status);
  const fault = r.json().fault;
  expect(fault.faultCode).toBe(code);
  return fault;
}

/** A proxy-wide REQUEST policy that references groups (and optionally has its own ipList). */
function groupPolicy(type: 'policy-white-ip' | 'policy-black-ip', name: string, groups: string[], ipList?: string[]): unknown {
  return {
    operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' },
    policy: { type, name, ipGroupIdList: groups, ...(ipList === undefined ? {} : { ipList }) },
  };
}

describe('IP groups', () => {
  let up: Upstream;
  let gw: TestGateway;
  const past = new Date(Date.now() - 60_000).toISOString();
  const future = new Date(Date.now() + 3_600_000).toISOString();

  beforeAll(async () => {
    up = await startUpstream();
    const proxy = (name: string, policies: unknown[]) => ({ name, basePath: `/${name}`, upstream: { url: up.url }, policies });
    gw = await startGateway({
      projects: [
        {
          name: 'p',
          ipGroups: [
            { name: 'office', entries: [{ ip: '127.0.0.0/29', description: 'office range' }] },
            { id: 'grp-42', name: 'partners', entries: [{ ip: '127.0.0.20' }] },
            { name: 'office-but-not-3', entries: [{ ip: '127.0.0.0/24' }, { ip: '127.0.0.3', action: 'deny' }] },
            { name: 'bad-net', entries: [{ ip: '127.0.0.0/24' }, { ip: '127.0.0.5', action: 'allow' }] },
            { name: 'temps', entries: [{ ip: '127.0.0.6', expiresAt: past }, { ip: '127.0.0.7', expiresAt: future }, { ip: '127.0.0.8' }] },
            { name: 'expired-block', entries: [{ ip: '127.0.0.9', expiresAt: past }] },
          ],
          apiProxies: [
            proxy('allow', [groupPolicy('policy-white-ip', 'office', ['office', 'grp-42'])]),
            proxy('mixed', [groupPolicy('policy-white-ip', 'mixed', ['office-but-not-3'], ['127.0.0.3'])]),
            proxy('block', [groupPolicy('policy-black-ip', 'block', ['bad-net'])]),
            proxy('expiry', [groupPolicy('policy-white-ip', 'expiry', ['temps'])]),
            proxy('expired-block', [groupPolicy('policy-black-ip', 'expired-block', ['expired-block'], ['127.0.0.10'])]),
          ],
        },
      ],
    });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('allows addresses in referenced groups (by name or by id)', async () => {
    expect((await send(gw.port, '/allow/x', { from: '127.0.0.1' })).status).toBe(200);
    expect((await send(gw.port, '/allow/x', { from: '127.0.0.7' })).status).toBe(200);
    expect((await send(gw.port, '/allow/x', { from: '127.0.0.20' })).status).toBe(200);
    expectFault(await send(gw.port, '/allow/x', { from: '127.0.0.8' }), 403, 'IP_NOT_ALLOWED');
  });

  it('lets a deny entry win over a broader allow in a white-ip policy (even one in ipList)', async () => {
    expect((await send(gw.port, '/mixed/x', { from: '127.0.0.4' })).status).toBe(200);
    const before = up.requests.length;
    expectFault(await send(gw.port, '/mixed/x', { from: '127.0.0.3' }), 403, 'IP_NOT_ALLOWED');
    expect(up.requests.length).toBe(before);
  });

  it('blocks group entries without an action in a black-ip policy, with action: allow as an exception', async () => {
    const f = expectFault(await send(gw.port, '/block/x', { from: '127.0.0.4' }), 403, 'IP_BLOCKED');
    expect(f.faultString).toBe('Client IP 127.0.0.4 is blocked');
    expect((await send(gw.port, '/block/x', { from: '127.0.0.5' })).status).toBe(200);
  });

  it('never matches an entry whose expiresAt is in the past', async () => {
    expectFault(await send(gw.port, '/expiry/x', { from: '127.0.0.6' }), 403, 'IP_NOT_ALLOWED');
    expect((await send(gw.port, '/expiry/x', { from: '127.0.0.7' })).status).toBe(200);
    expect((await send(gw.port, '/expiry/x', { from: '127.0.0.8' })).status).toBe(200);
    // In a black-ip policy an expired entry no longer blocks.
    expect((await send(gw.port, '/expired-block/x', { from: '127.0.0.9' })).status).toBe(200);
    expectFault(await send(gw.port, '/expired-block/x', { from: '127.0.0.10' }), 403, 'IP_BLOCKED');
  });
});

describe('an IP group entry expiring while the gateway runs', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
  });
  afterAll(async () => {
    await gw?.close();
    await up.close();
  });

  it('matches until it expires, then stops matching without any reload call (injected clock)', async () => {
    const clock = new ManualClock(Date.parse('2030-01-01T00:00:00Z'));
    const expiresAt = new Date(clock.now() + 3_600_000).toISOString();
    gw = await startGateway(
      oneProxy(up.url, [groupPolicy('policy-white-ip', 'temp', ['temp'])], {
        ipGroups: [{ name: 'temp', entries: [{ ip: '127.0.0.2', expiresAt }, { ip: '127.0.0.3' }] }],
      }),
      { clock },
    );
    expect((await send(gw.port, '/api/x', { from: '127.0.0.2' })).status).toBe(200);
    // One millisecond before expiry nothing changes; the recompile timer is armed for the expiry.
    expect(clock.advance(3_600_000 - 1)).toBe(0);
    expect(clock.pending).toBe(1);
    expect((await send(gw.port, '/api/x', { from: '127.0.0.2' })).status).toBe(200);
    // At expiry the gateway recompiles on its own: no admin call, no reload.
    const revision = gw.gateway.dataPlane.snapshot!.revision;
    expect(clock.advance(1)).toBe(1);
    expectFault(await send(gw.port, '/api/x', { from: '127.0.0.2' }), 403, 'IP_NOT_ALLOWED');
    expect(gw.gateway.dataPlane.snapshot!.revision).toBe(revision);
    // The rest of the group still works after the automatic recompile, and nothing else is armed.
    expect((await send(gw.port, '/api/x', { from: '127.0.0.3' })).status).toBe(200);
    expect(clock.pending).toBe(0);
  });
});

describe('a reference to an unknown IP group', () => {
  it('makes startGateway throw an error naming the path', async () => {
    const up = await startUpstream();
    try {
      let started: TestGateway | null = null;
      let error: unknown = null;
      try {
        started = await startGateway(oneProxy(up.url, [groupPolicy('policy-white-ip', 'dangling', ['no-such-group'])], { ipGroups: [{ name: 'other', entries: [{ ip: '127.0.0.1' }] }] }));
      } catch (err) {
        error = err;
      } finally {
        await started?.close();
      }
      expect(error).toBeInstanceOf(Error);
      const message = (error as Error).message;
      expect(message).toContain('projects[0].apiProxies[0].policies[0].policy.ipGroupIdList[0]');
      expect(message).toContain('no-such-group');
    } finally {
      await up.close();
    }
  });
});
