import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneProxy, policy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

const SECRET = 'an-hs256-secret-of-at-least-32-bytes!!';

describe('admin API: JWT over HTTP, body limit, and in-flight requests across a reload', () => {
  let up: Upstream;
  let gw: TestGateway;
  let release: (() => void) | null = null;

  beforeAll(async () => {
    // /slow answers only when the test says so, to hold a request in flight across a reload.
    up = await startUpstream((req, res) => {
      const answer = () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('upstream body');
      };
      if (req.url === '/slow') release = answer;
      else answer();
    });
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-extra-'));
    gw = await startGateway(
      oneProxy(up.url, [policy('policy-white-ip', 'resp', ['127.0.0.0/8'], {}, { targetPipeline: 'RESPONSE' })], {
        gateway: {
          store: { file: join(dir, 'store.json') },
          admin: { listen: '127.0.0.1:0', bodyLimitBytes: 4096, jwt: { algorithm: 'HS256', secret: SECRET, issuer: 'https://idp.example', audience: 'ipgate' } },
        },
      }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  const jwt = (claims: Record<string, unknown>, exp: string | number = '5m') =>
    new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuer('https://idp.example').setAudience('ipgate').setSubject('alice').setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(SECRET));
  const get = (token: string) => send(gw.gateway.adminAddress.port, '/apiops/projects/', { headers: { authorization: `Bearer ${token}` } });

  it('accepts a valid JWT with a role, names its subject as actor, and refuses expired or role-less ones', async () => {
    expect((await get(await jwt({ role: 'viewer' }))).status).toBe(200);
    const expired = await get(await jwt({ role: 'admin' }, Math.floor(Date.now() / 1000) - 3600));
    expect(expired.status).toBe(401);
    expect(expired.json().error_description).toBe('token expired');
    expect((await get(await jwt({}))).status).toBe(401);
    const admin = await jwt({ role: 'admin' });
    const w = await send(gw.gateway.adminAddress.port, '/apiops/projects/jwtproj/', { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: '{}' });
    expect(w.status).toBe(201);
    const audit = await send(gw.gateway.adminAddress.port, '/apiops/audit/?limit=1', { headers: { authorization: `Bearer ${admin}` } });
    expect(audit.json().resultList[0]).toMatchObject({ actor: 'alice', action: 'project.create' });
  });

  it('answers 413 for a body over admin.bodyLimitBytes, and writes nothing', async () => {
    const admin = await jwt({ role: 'admin' });
    const big = JSON.stringify({ description: 'x'.repeat(5000) });
    const r = await send(gw.gateway.adminAddress.port, '/apiops/projects/toolarge/', { method: 'POST', headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' }, body: big });
    expect(r.status).toBe(413);
    expect(r.json().error).toBe('PAYLOAD_TOO_LARGE');
    const p = await send(gw.gateway.adminAddress.port, '/apiops/projects/toolarge/', { headers: { authorization: `Bearer ${admin}` } });
    expect(p.status).toBe(404);
  });

  it('finishes an in-flight request under the snapshot it started with', async () => {
    const admin = await jwt({ role: 'admin' });
    const inflight = send(gw.port, '/api/slow', { from: '127.0.0.5' });
    for (let i = 0; i < 100 && release === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(release).not.toBeNull();
    // While it waits on the upstream, the RESPONSE policy is replaced by one that rejects 127.0.0.5.
    const w = await send(gw.gateway.adminAddress.port, '/apiops/projects/p/apiProxies/api/policies/resp/', {
      method: 'PUT',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ operationMetadata: { targetScope: 'ALL', targetPipeline: 'RESPONSE' }, policy: { type: 'policy-white-ip', ipList: ['127.0.0.1'] } }),
    });
    expect(w.status).toBe(200);
    release!();
    const r = await inflight;
    expect(r.status).toBe(200);
    expect(r.text).toBe('upstream body');
    // A request that starts now gets the new snapshot.
    release = null;
    const after = send(gw.port, '/api/slow', { from: '127.0.0.5' });
    for (let i = 0; i < 100 && release === null; i++) await new Promise((r) => setTimeout(r, 10));
    release!();
    expect((await after).status).toBe(403);
  });
});
