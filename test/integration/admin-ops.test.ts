import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneProxy, policy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

const ADMIN = 'ops-admin-token-0123456789';
const VIEWER = 'ops-viewer-token-0123456789';
const POL = '/apiops/projects/p/apiProxies/api/policies/';
const A = '/apiops/projects/p/apiProxies/api/';

describe('admin: deploy history and rollback, audit, explain', () => {
  let up: Upstream;
  let gw: TestGateway;
  const call = async (method: string, path: string, body?: unknown, token = ADMIN) => {
    const r = await send(gw.gateway.adminAddress.port, path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: r.json() };
  };
  const add = (name: string, ipList: string[], extra: Record<string, unknown> = {}, meta: Record<string, unknown> = {}) =>
    call('POST', `${POL}${name}/`, { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', ...meta }, policy: { type: 'policy-black-ip', ipList, ...extra } });

  beforeAll(async () => {
    up = await startUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-ops-'));
    gw = await startGateway(
      oneProxy(up.url, [policy('policy-white-ip', 'allow-local', ['127.0.0.0/8'])], {
        gateway: {
          store: { file: join(dir, 'store.json') },
          admin: { listen: '127.0.0.1:0', tokens: [{ name: 'v', sha256: createHash('sha256').update(VIEWER).digest('hex'), role: 'viewer' }] },
        },
      }),
      { env: { IPGATE_ADMIN_TOKEN: ADMIN, IPGATE_NODE_ID: 'ops-node-1' } },
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('lists this node under /apiops/nodes/ with the revision it enforces, updated by every write', async () => {
    const before = await call('GET', '/apiops/nodes/', undefined, VIEWER);
    expect(before.status).toBe(200);
    expect(before.body.resultCount).toBe(1);
    const node = before.body.resultList[0];
    expect(node).toMatchObject({ nodeId: 'ops-node-1', environment: 'production', state: 'live', failedRevision: null, failedError: null });
    expect(node.revision).toBe(gw.gateway.dataPlane.snapshot!.revision);
    const w = await add('nodes-probe', ['127.0.0.77']);
    expect(w.status).toBe(200);
    const after = (await call('GET', '/apiops/nodes/', undefined, VIEWER)).body.resultList[0];
    expect(after.revision).toBe(node.revision + 1);
    // The hash names what is enforced: a different policy set, a different hash.
    expect(after.snapshotHash).toMatch(/^[0-9a-f]{16}$/);
    expect(after.snapshotHash).not.toBe(node.snapshotHash);
    await call('DELETE', `${POL}nodes-probe/`, { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true } });
    // Back to the same policies: back to the same hash, at a newer revision.
    const back = (await call('GET', '/apiops/nodes/', undefined, VIEWER)).body.resultList[0];
    expect(back.snapshotHash).toBe(node.snapshotHash);
    expect(back.revision).toBe(node.revision + 2);
  });

  it('records each deployment and rolls a proxy back to an earlier one', async () => {
    const first = await add('block-five', ['127.0.0.5']);
    expect(first.status).toBe(200);
    expect((await send(gw.port, '/api/x', { from: '127.0.0.5' })).status).toBe(403);
    const hist1 = await call('GET', `${A}deploy-histories/`);
    const revWithFive = hist1.body.resultList[0].revision as number;
    expect(hist1.body.resultList[0]).toMatchObject({ environmentName: 'production', kind: 'deploy', policyCount: 2 });

    await call('DELETE', `${POL}block-five/`, { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true } });
    expect((await send(gw.port, '/api/x', { from: '127.0.0.5' })).status).toBe(200);

    const rb = await call('POST', `${A}deploy-histories/${revWithFive}/rollback/`);
    expect(rb.status).toBe(200);
    expect(rb.body.deploymentResult.deploymentResults).toEqual([{ environmentName: 'production', success: true, message: expect.stringMatching(/^Deployment successful/) }]);
    expect((await send(gw.port, '/api/x', { from: '127.0.0.5' })).status).toBe(403);
    // The working copy is the rolled-back one.
    expect((await call('GET', `${POL}block-five/`)).status).toBe(200);
    expect((await call('POST', `${A}deploy-histories/999999/rollback/`)).status).toBe(404);
    expect((await call('GET', `${A}deploy-histories/`)).body.resultList[0].kind).toBe('rollback');
  });

  it('audits every write with actor, target, before and after, newest first, paginated and filterable', async () => {
    await add('audited', ['127.0.0.6'], { description: 'first' }, { deploy: false });
    const page1 = await call('GET', '/apiops/audit/?limit=2&proxy=api');
    expect(page1.status).toBe(200);
    expect(page1.body.resultList).toHaveLength(2);
    const newest = page1.body.resultList[0];
    expect(newest).toMatchObject({ actor: 'token:env', action: 'policy.add', project: 'p', proxy: 'api', target: 'p/api/policies/audited', before: null });
    expect(newest.after.policy.description).toBe('first');
    expect(page1.body.next_page_uri).toMatch(/^\/apiops\/audit\/\?limit=2&proxy=api&cursor=/);
    const page2 = await call('GET', page1.body.next_page_uri as string);
    expect(page2.body.resultList[0].id).toBeLessThan(page1.body.resultList[1].id);
    expect((await call('GET', '/apiops/audit/?project=nope')).body.resultList).toEqual([]);
    expect((await call('GET', '/apiops/audit/?limit=5000')).status).toBe(400);
    expect((await call('GET', '/apiops/audit/?cursor=%%%')).status).toBe(400);
  });

  it('explains a decision with the live snapshot: each policy, its result, the matched entry and the IP source', async () => {
    const denied = await call('POST', `${A}ip-check/`, { remoteAddress: '127.0.0.1', headers: { 'X-Forwarded-For': '127.0.0.5' }, path: '/orders/1', method: 'GET' });
    expect(denied.status).toBe(200);
    expect(denied.body).toMatchObject({ decision: 'denied', faultCode: 'IP_BLOCKED', decidedBy: 'block-five', clientIp: '127.0.0.5', ipSource: 'xff', environment: 'production' });
    expect(denied.body.policies).toContainEqual(expect.objectContaining({ policy: 'allow-local', result: 'pass', matchedEntry: '127.0.0.0/8' }));
    expect(denied.body.policies).toContainEqual(expect.objectContaining({ policy: 'block-five', result: 'reject', matchedEntry: '127.0.0.5' }));

    const allowed = await call('POST', `${A}ip-check/`, { ip: '127.0.0.9' }, VIEWER);
    expect(allowed.status).toBe(200);
    expect(allowed.body).toMatchObject({ decision: 'allowed', faultCode: null, clientIp: '127.0.0.9', ipSource: 'socket' });

    const garbage = await call('POST', `${A}ip-check/`, { remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': 'unknown' } });
    expect(garbage.body).toMatchObject({ decision: 'denied', faultCode: 'CLIENT_IP_UNRESOLVED' });

    // The live data plane agrees with explain.
    expect((await send(gw.port, '/api/orders/1', { from: '127.0.0.1', headers: { 'x-forwarded-for': '127.0.0.5' } })).json().fault.faultCode).toBe('IP_BLOCKED');
    expect((await call('POST', `${A}ip-check/`, {})).status).toBe(400);
  });
});
