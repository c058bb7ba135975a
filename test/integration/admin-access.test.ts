import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneProxy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

const ADMIN = 'access-admin-token-0123456789';

describe('admin access allowlist and lockout protection', () => {
  let up: Upstream;
  let gw: TestGateway;
  const call = async (method: string, path: string, body?: unknown, from = '127.0.0.1') => {
    const r = await send(gw.gateway.adminAddress.port, path, {
      method,
      from,
      headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: r.json() };
  };

  beforeAll(async () => {
    up = await startUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-access-'));
    gw = await startGateway(oneProxy(up.url, [], { gateway: { store: { file: join(dir, 'store.json') }, trustedProxies: [] } }), { env: { IPGATE_ADMIN_TOKEN: ADMIN } });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('is unrestricted while empty, and restricts the admin listener once set', async () => {
    expect((await call('GET', '/apiops/admin-access/', undefined, '127.0.0.2')).body).toMatchObject({ ipList: [], restricted: false });
    const set = await call('PUT', '/apiops/admin-access/', { ipList: ['127.0.0.1', '127.0.0.3/32'] });
    expect(set.status).toBe(200);
    const outsider = await call('GET', '/apiops/projects/', undefined, '127.0.0.2');
    expect(outsider.status).toBe(403);
    expect(outsider.body).toMatchObject({ success: false, error: 'FORBIDDEN', error_description: 'address 127.0.0.2 is not in the admin access list' });
    expect((await call('GET', '/apiops/projects/', undefined, '127.0.0.3')).status).toBe(200);
    expect((await call('GET', '/apiops/projects/')).status).toBe(200);
  });

  it('refuses (409) a list that would lock the caller out, unless ?force=true', async () => {
    const r = await call('PUT', '/apiops/admin-access/', { ipList: ['127.0.0.3'] });
    expect(r.status).toBe(409);
    expect(r.body.error_description).toContain('your address 127.0.0.1 is not in it');
    // Nothing changed: the caller still gets in.
    expect((await call('GET', '/apiops/admin-access/')).body.ipList).toEqual(['127.0.0.1', '127.0.0.3/32']);
    expect((await call('PUT', '/apiops/admin-access/', { ipList: ['10.0.0.1/8'] })).body.details[0].path).toBe('ipList[0]');
  });

  it('refuses a body that gives ipList twice (400), which would otherwise lift the restriction', async () => {
    const r = await send(gw.gateway.adminAddress.port, '/apiops/admin-access/', {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: '{"ipList":["127.0.0.1"],"ipList":[]}',
    });
    expect(r.status).toBe(400);
    expect(r.json().details).toEqual([{ path: 'ipList', message: 'duplicate key' }]);
    expect((await call('GET', '/apiops/admin-access/')).body).toMatchObject({ ipList: ['127.0.0.1', '127.0.0.3/32'], restricted: true });
  });

  it('guards policies on an API proxy that fronts the admin API the same way', async () => {
    const adminUrl = `http://127.0.0.1:${gw.gateway.adminAddress.port}`;
    expect((await call('POST', '/apiops/projects/p/apiProxies/admin-front/', { basePath: '/admin', upstream: { url: adminUrl } })).status).toBe(201);
    expect((await call('POST', '/apiops/projects/p/apiProxies/admin-front/environments/production/')).status).toBe(200);
    const policyBody = (ipList: string[]) => ({ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', ipList } });
    const lockout = await call('POST', '/apiops/projects/p/apiProxies/admin-front/policies/offices/', policyBody(['10.0.0.0/8']));
    expect(lockout.status).toBe(409);
    expect(lockout.body.error_description).toContain('fronts the admin API');
    expect((await send(gw.port, '/admin/apiops/admin-access/', { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(200);
    // A list that keeps the caller is fine; a proxy that does not front the admin API is not guarded.
    expect((await call('POST', '/apiops/projects/p/apiProxies/admin-front/policies/offices/', policyBody(['10.0.0.0/8', '127.0.0.1']))).status).toBe(200);
    expect((await call('POST', '/apiops/projects/p/apiProxies/api/policies/offices/', policyBody(['10.0.0.0/8']))).status).toBe(200);
  });

  it('applies a forced lockout', async () => {
    const r = await call('PUT', '/apiops/admin-access/?force=true', { ipList: ['127.0.0.3'] });
    expect(r.status).toBe(200);
    expect((await call('GET', '/apiops/projects/')).status).toBe(403);
    expect((await call('GET', '/apiops/projects/', undefined, '127.0.0.3')).status).toBe(200);
  });
});
