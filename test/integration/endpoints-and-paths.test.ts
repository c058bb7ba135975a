/**
 * Routing and canonicalisation: ENDPOINT-scoped policies, encoding tricks that must not bypass
 * them, the exact path the upstream receives, basePath/host/environment routing, and IPv4-mapped
 * client addresses on a dual-stack listener.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policy, rawFault, rawStatus, send, sendRaw, startGateway, startUpstream, type Reply, type TestGateway, type Upstream } from '../helpers/harness.js';

function expectFault(r: Reply, status: number, code: string): { faultString: string } {
  expect(r.status).toBe(status);
  const fault = r.json().fault;
  expect(fault.faultCode).toBe(code);
  return fault;
}

const endpoint = (type: 'policy-white-ip' | 'policy-black-ip', name: string, list: string[], targetEndpoint: string, method: string) =>
  policy(type, name, list, {}, { targetScope: 'ENDPOINT', targetEndpoint, targetEndpointHTTPMethod: method });

describe('routing, ENDPOINT scope and canonical paths', () => {
  let up1: Upstream;
  let up2: Upstream;
  let gw: TestGateway;
  let staging: TestGateway;

  const config = (environment: string, u1: string, u2: string) => ({
    environment,
    projects: [
      {
        name: 'p',
        apiProxies: [
          {
            name: 'main',
            basePath: '/api',
            upstream: { url: u1 },
            policies: [
              endpoint('policy-black-ip', 'no-admin', ['0.0.0.0/0'], '/admin/**', 'ALL'),
              endpoint('policy-black-ip', 'orders', ['127.0.0.2'], '/orders/{id}', 'GET'),
              endpoint('policy-black-ip', 'me', ['0.0.0.0/0'], '/users/@me', 'ALL'),
              endpoint('policy-black-ip', 'batch', ['0.0.0.0/0'], '/v1/items:batch', 'ALL'),
            ],
          },
          { name: 'v2', basePath: '/api/v2', upstream: { url: u2 } },
          { name: 'prefixed', basePath: '/pfx', upstream: { url: `${u1}/v1` } },
          { name: 'host-a', basePath: '/h', hosts: ['a.example'], upstream: { url: u1 } },
          { name: 'host-b', basePath: '/h', hosts: ['b.example'], upstream: { url: u2 } },
          { name: 'stg', basePath: '/stg', upstream: { url: u1 }, environments: ['staging'] },
        ],
      },
    ],
  });

  beforeAll(async () => {
    up1 = await startUpstream();
    up2 = await startUpstream();
    gw = await startGateway(config('production', up1.url, up2.url));
    staging = await startGateway(config('staging', up1.url, up2.url));
  });
  afterAll(async () => {
    await gw.close();
    await staging.close();
    await up1.close();
    await up2.close();
  });

  describe('ENDPOINT scope', () => {
    it.each(['/api/admin', '/api/admin/', '/api/admin/x', '/api/admin/x/y'])('denies %s (ALL methods, /admin/**)', async (path) => {
      const before = up1.requests.length;
      expectFault(await send(gw.port, path, { method: 'DELETE' }), 403, 'IP_BLOCKED');
      expect(up1.requests.length).toBe(before);
    });

    it('allows paths outside the endpoint pattern', async () => {
      const r = await send(gw.port, '/api/public');
      expect(r.status).toBe(200);
      expect(r.json().url).toBe('/public');
      expect((await send(gw.port, '/api/administrator')).status).toBe(200);
    });

    it('applies a GET endpoint policy to GET and HEAD only, on exactly one {id} segment', async () => {
      expectFault(await send(gw.port, '/api/orders/1', { from: '127.0.0.2' }), 403, 'IP_BLOCKED');
      const head = await send(gw.port, '/api/orders/1', { method: 'HEAD', from: '127.0.0.2' });
      expect(head.status).toBe(403);
      expect((await send(gw.port, '/api/orders/1', { method: 'POST', from: '127.0.0.2', body: '{}' })).status).toBe(200);
      expect((await send(gw.port, '/api/orders/1/items', { from: '127.0.0.2' })).status).toBe(200);
      expect((await send(gw.port, '/api/orders', { from: '127.0.0.2' })).status).toBe(200);
      // Another client is not on the list.
      expect((await send(gw.port, '/api/orders/1', { from: '127.0.0.3' })).status).toBe(200);
    });

    it.each(['X-HTTP-Method-Override', 'X-Method-Override', 'X-HTTP-Method'])('still treats a POST with %s: GET as POST', async (h) => {
      const r = await send(gw.port, '/api/orders/1', { method: 'POST', from: '127.0.0.2', headers: { [h]: 'GET' }, body: '{}' });
      expect(r.status).toBe(200);
      expect(r.json().method).toBe('POST');
    });
  });

  describe('encoding tricks cannot bypass a policy', () => {
    it.each([
      '/api/public/%2e%2e/admin/x',
      '/api/public/%2E%2E/admin/x',
      '/api/public/../admin/x',
      '/api//admin',
      '/api///admin//x',
      '/api/./admin',
      '/api/%61dmin/x',
      '/api/admin/x/%2e%2e',
      '/api/x/../../api/admin',
      '/api/../../../api/admin/x',
      // Reserved characters a segment may hold raw: a backend decodes them before it routes.
      '/api/users/%40me',
      '/api/users/%40me/',
      '/api/v1/items%3abatch',
      '/api/v1/items%3Abatch',
      '/api/v1/%69tems%3Abatch',
      // Case: a backend that routes without regard to it would serve /admin.
      '/api/ADMIN',
      '/api/Admin/x',
      '/api/USERS/%40ME',
    ])('%s is checked on its canonical path: denied and not forwarded', async (path) => {
      const before = up1.requests.length;
      // Raw bytes: no client library gets a chance to normalise the path first.
      const raw = await sendRaw(gw.port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(rawStatus(raw)).toBe(403);
      expect(rawFault(raw).faultCode).toBe('IP_BLOCKED');
      expect(up1.requests.length).toBe(before);
    });

    it.each([
      ['an encoded slash', '/api/public/..%2fadmin'],
      ['an encoded slash (uppercase)', '/api/admin%2F..'],
      ['an encoded backslash', '/api/public/..%5cadmin'],
      ['a raw backslash', '/api/public/..\\admin'],
      ['an encoded NUL', '/api/admin%00'],
      ['encoded CR/LF', '/api/public%0d%0aX-Injected:%20yes'],
      ['a raw fragment', '/api/public#frag'],
      ['malformed percent-encoding', '/api/public/%zz'],
      ['an encoded semicolon', '/api/admin%3bx'],
      ['an encoded tab', '/api/admin%09'],
    ])('refuses %s with 400', async (_what, path) => {
      const before = up1.requests.length;
      const raw = await sendRaw(gw.port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(rawStatus(raw)).toBe(400);
      expect(rawFault(raw).faultCode).toBe('BAD_REQUEST_TARGET');
      expect(up1.requests.length).toBe(before);
    });

    it('refuses an absolute-form target whose authority disagrees with Host', async () => {
      const raw = await sendRaw(gw.port, `GET http://other.example/api/public HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nConnection: close\r\n\r\n`);
      expect(rawStatus(raw)).toBe(400);
      expect(rawFault(raw).faultCode).toBe('HOST_MISMATCH');
    });

    it('routes an absolute-form target that agrees with Host, and applies policies to its path', async () => {
      const ok = await sendRaw(gw.port, `GET http://127.0.0.1:${gw.port}/api/public?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nConnection: close\r\n\r\n`);
      expect(rawStatus(ok)).toBe(200);
      expect(up1.requests.at(-1)!.url).toBe('/public?q=1');
      const denied = await sendRaw(gw.port, `GET http://127.0.0.1:${gw.port}/api/admin HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nConnection: close\r\n\r\n`);
      expect(rawStatus(denied)).toBe(403);
    });
  });

  describe('the upstream receives exactly the canonical path', () => {
    it('without an upstream path prefix', async () => {
      const r = await send(gw.port, '/api/a/./b//c/%7Euser');
      expect(r.status).toBe(200);
      expect(up1.requests.at(-1)!.url).toBe('/a/b/c/~user');
    });

    it('under an upstream path prefix', async () => {
      const r = await send(gw.port, '/pfx/a/./b//c/%7Euser');
      expect(r.status).toBe(200);
      expect(up1.requests.at(-1)!.url).toBe('/v1/a/b/c/~user');
      expect((await send(gw.port, '/pfx')).json().url).toBe('/v1');
    });

    it('spells each character one way (pchar raw, the rest escaped in uppercase) and passes the query string through unchanged', async () => {
      const query = '?b=2&a=%2f%41&a=x+y&empty=&%7e=~';
      const r = await send(gw.port, `/api/q/%2a%3a%40%2b%22%3f%25/x${query}`);
      expect(r.status).toBe(200);
      expect(up1.requests.at(-1)!.url).toBe(`/q/*:@+%22%3F%25/x${query}`);
    });
  });

  describe('route selection', () => {
    it('matches basePath on a segment boundary only', async () => {
      expectFault(await send(gw.port, '/apiX'), 404, 'NO_ROUTE');
      expectFault(await send(gw.port, '/apiX/public'), 404, 'NO_ROUTE');
      expect((await send(gw.port, '/api')).status).toBe(200);
    });

    it('prefers the longest basePath', async () => {
      const b1 = up1.requests.length;
      const b2 = up2.requests.length;
      const r = await send(gw.port, '/api/v2/things');
      expect(r.status).toBe(200);
      expect(up2.requests.length).toBe(b2 + 1);
      expect(up2.requests.at(-1)!.url).toBe('/things');
      // /api/v2x is not under /api/v2: it belongs to /api.
      expect((await send(gw.port, '/api/v2x')).status).toBe(200);
      expect(up1.requests.at(-1)!.url).toBe('/v2x');
      expect(up1.requests.length).toBe(b1 + 1);
      expect(up2.requests.length).toBe(b2 + 1);
    });

    it('lets the Host header choose between proxies with the same basePath', async () => {
      const b1 = up1.requests.length;
      const b2 = up2.requests.length;
      expect((await send(gw.port, '/h/x', { headers: { host: 'a.example' } })).status).toBe(200);
      expect(up1.requests.length).toBe(b1 + 1);
      expect((await send(gw.port, '/h/x', { headers: { host: 'B.Example:8080' } })).status).toBe(200);
      expect(up2.requests.length).toBe(b2 + 1);
      expectFault(await send(gw.port, '/h/x', { headers: { host: 'c.example' } }), 404, 'NO_ROUTE');
      expectFault(await send(gw.port, '/h/x'), 404, 'NO_ROUTE');
    });

    it('does not route a proxy that is not deployed to the node environment', async () => {
      expectFault(await send(gw.port, '/stg/x'), 404, 'NO_ROUTE');
    });

    it('routes it on a node of that environment, and not the production-only proxies', async () => {
      const r = await send(staging.port, '/stg/x');
      expect(r.status).toBe(200);
      expect(r.json().url).toBe('/x');
      expectFault(await send(staging.port, '/api/public'), 404, 'NO_ROUTE');
    });
  });
});

describe('IPv4-mapped client addresses on a dual-stack listener', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    const proxy = (name: string, list: string[]) => ({ name, basePath: `/${name}`, upstream: { url: up.url }, policies: [policy('policy-white-ip', name, list)] });
    gw = await startGateway({
      listen: '[::]:0',
      trustedProxies: ['127.0.0.1'],
      projects: [{ name: 'p', apiProxies: [proxy('v4', ['127.0.0.1']), proxy('mapped', ['::ffff:127.0.0.1']), proxy('v6', ['::1']), proxy('fwd', ['192.0.2.0/24'])] }],
    });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('listens on [::] (so IPv4 clients arrive as ::ffff:a.b.c.d)', () => {
    expect(gw.gateway.trafficAddress.address).toBe('::');
  });

  it('matches an IPv4 client against an IPv4 rule', async () => {
    expect((await send(gw.port, '/v4/x', { from: '127.0.0.1' })).status).toBe(200);
    const denied = await send(gw.port, '/v4/x', { from: '127.0.0.2' });
    // Shown in IPv4 form.
    expect(expectFault(denied, 403, 'IP_NOT_ALLOWED').faultString).toBe('Client IP 127.0.0.2 is not allowed');
  });

  it('matches an IPv4 client against a rule written as ::ffff:a.b.c.d', async () => {
    expect((await send(gw.port, '/mapped/x', { from: '127.0.0.1' })).status).toBe(200);
    expectFault(await send(gw.port, '/mapped/x', { from: '127.0.0.2' }), 403, 'IP_NOT_ALLOWED');
  });

  it('matches an IPv6 client over ::1, and ::1 is not 127.0.0.1', async () => {
    expect((await send(gw.port, '/v6/x', { host: '::1', from: '::1' })).status).toBe(200);
    expectFault(await send(gw.port, '/v6/x', { from: '127.0.0.1' }), 403, 'IP_NOT_ALLOWED');
    const denied = await send(gw.port, '/v4/x', { host: '::1', from: '::1' });
    expect(expectFault(denied, 403, 'IP_NOT_ALLOWED').faultString).toBe('Client IP ::1 is not allowed');
  });

  it('treats an IPv4-mapped peer as the trusted proxy it is', async () => {
    expect((await send(gw.port, '/fwd/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': '192.0.2.9' } })).status).toBe(200);
    // 127.0.0.2 is not trusted: its X-Forwarded-For is ignored.
    expectFault(await send(gw.port, '/fwd/x', { from: '127.0.0.2', headers: { 'x-forwarded-for': '192.0.2.9' } }), 403, 'IP_NOT_ALLOWED');
  });
});
