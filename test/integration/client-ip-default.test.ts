import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneProxy, policy, rawFault, rawStatus, send, sendRaw, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

describe('default client-IP resolution: socket, then X-Forwarded-For through trusted proxies', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.1', '127.0.0.4', '192.0.2.0/24', '2001:db8::/32'])], {
        // Only 127.0.0.1 and 127.0.0.5 are proxies this gateway believes.
        gateway: { trustedProxies: ['127.0.0.1', '127.0.0.5'] },
      }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('allows a listed socket address and forwards to the upstream', async () => {
    const before = up.requests.length;
    const r = await send(gw.port, '/api/hello', { from: '127.0.0.4' });
    expect(r.status).toBe(200);
    expect(r.json().url).toBe('/hello');
    expect(up.requests.length).toBe(before + 1);
  });

  it('denies an unlisted socket address with the JSON fault envelope and a correlation id', async () => {
    const before = up.requests.length;
    const r = await send(gw.port, '/api/hello', { from: '127.0.0.2' });
    expect(r.status).toBe(403);
    const fault = r.json().fault;
    expect(fault).toEqual({
      correlationId: r.headers['x-correlation-id'],
      faultCode: 'IP_NOT_ALLOWED',
      faultString: 'Client IP 127.0.0.2 is not allowed',
      faultStatusCode: 403,
    });
    expect(r.headers['content-type']).toBe('application/json');
    expect(up.requests.length).toBe(before);
  });

  it('uses the X-Forwarded-For address behind a trusted proxy', async () => {
    expect((await send(gw.port, '/api/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': '192.0.2.7' } })).status).toBe(200);
    const denied = await send(gw.port, '/api/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(denied.status).toBe(403);
    expect(denied.json().fault.faultString).toContain('203.0.113.7');
  });

  it('ignores X-Forwarded-For from an untrusted peer (spoofing)', async () => {
    // 127.0.0.2 is not a trusted proxy: its claim to be 192.0.2.7 must not be believed.
    const r = await send(gw.port, '/api/x', { from: '127.0.0.2', headers: { 'x-forwarded-for': '192.0.2.7' } });
    expect(r.status).toBe(403);
    expect(r.json().fault.faultString).toContain('127.0.0.2');
  });

  it('walks right to left and stops at the first untrusted hop, never using the leftmost', async () => {
    // client-typed 192.0.2.7 (allowed), then 203.0.113.9 (untrusted), then trusted 127.0.0.5.
    const r = await send(gw.port, '/api/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': '192.0.2.7, 203.0.113.9, 127.0.0.5' } });
    expect(r.status).toBe(403);
    expect(r.json().fault.faultString).toContain('203.0.113.9');
    // Through two trusted hops to an allowed client.
    const ok = await send(gw.port, '/api/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.9, 192.0.2.8, 127.0.0.5' } });
    expect(ok.status).toBe(200);
  });

  it('treats repeated X-Forwarded-For lines as one list, in order, and skips empty elements', async () => {
    const r = await send(gw.port, '/api/x', {
      from: '127.0.0.1',
      headers: [
        ['X-Forwarded-For', '203.0.113.50'],
        ['X-Forwarded-For', '192.0.2.9, ,'],
      ],
    });
    // The list is "203.0.113.50, 192.0.2.9, ," → rightmost non-empty is 192.0.2.9 (untrusted, allowed).
    expect(r.status).toBe(200);
    const r2 = await send(gw.port, '/api/x', {
      from: '127.0.0.1',
      headers: [
        ['X-Forwarded-For', '192.0.2.9'],
        ['X-Forwarded-For', '203.0.113.50'],
      ],
    });
    expect(r2.status).toBe(403);
    expect(r2.json().fault.faultString).toContain('203.0.113.50');
  });

  it.each(['unknown', '192.0.2.7:8080', '[2001:db8::1]', '010.0.0.1', '0x7f.0.0.1', 'garbage'])('fails closed when the walk meets a non-IP element %j', async (bad) => {
    const r = await send(gw.port, '/api/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': `192.0.2.7, ${bad}` } });
    expect(r.status).toBe(403);
    expect(r.json().fault.faultCode).toBe('CLIENT_IP_UNRESOLVED');
  });

  it('cannot hide X-Forwarded-For with Connection: X-Forwarded-For', async () => {
    const r = await send(gw.port, '/api/x', { from: '127.0.0.1', headers: { connection: 'X-Forwarded-For', 'x-forwarded-for': '203.0.113.7' } });
    expect(r.status).toBe(403);
  });

  it('matches IPv6 forwarded clients and IPv4-mapped forms against IPv4 rules', async () => {
    expect((await send(gw.port, '/api/x', { headers: { 'x-forwarded-for': '2001:db8:1::5' } })).status).toBe(200);
    expect((await send(gw.port, '/api/x', { headers: { 'x-forwarded-for': '::ffff:192.0.2.44' } })).status).toBe(200);
    expect((await send(gw.port, '/api/x', { headers: { 'x-forwarded-for': '2001:db9::1' } })).status).toBe(403);
  });

  it('strips hop-by-hop headers and sets X-Forwarded-* the client cannot forge', async () => {
    const r = await send(gw.port, '/api/h', {
      from: '127.0.0.4',
      headers: { connection: 'X-Secret, keep-alive', 'x-secret': 'drop-me', 'keep-alive': 'timeout=5', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', 'x-keep': 'yes', 'proxy-authorization': 'Basic abc' },
    });
    expect(r.status).toBe(200);
    const seen = up.requests.at(-1)!;
    expect(seen.headers['x-secret']).toBeUndefined();
    expect(seen.headers['keep-alive']).toBeUndefined();
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect(seen.headers['x-keep']).toBe('yes');
    // 127.0.0.4 is not a trusted proxy: its forwarding headers are replaced, not passed on.
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.4');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-forwarded-host']).toBe(`127.0.0.1:${gw.port}`);
    expect(seen.headers['x-correlation-id']).toBe(r.headers['x-correlation-id']);
  });

  it('drops Forwarded and X-Real-IP from an untrusted peer, and passes them from a trusted proxy', async () => {
    const claims = { forwarded: 'for=192.0.2.7', 'x-real-ip': '192.0.2.7' };
    expect((await send(gw.port, '/api/h', { from: '127.0.0.4', headers: claims })).status).toBe(200);
    expect(up.requests.at(-1)!.headers.forwarded).toBeUndefined();
    expect(up.requests.at(-1)!.headers['x-real-ip']).toBeUndefined();
    expect((await send(gw.port, '/api/h', { from: '127.0.0.1', headers: claims })).status).toBe(200);
    expect(up.requests.at(-1)!.headers.forwarded).toBe('for=192.0.2.7');
    expect(up.requests.at(-1)!.headers['x-real-ip']).toBe('192.0.2.7');
  });

  it('answers an HTTP/1.1 request without Host, and a CONNECT, with the JSON fault', async () => {
    const noHost = await sendRaw(gw.port, 'GET /api/h HTTP/1.1\r\nConnection: close\r\n\r\n', '127.0.0.4');
    expect(rawStatus(noHost)).toBe(400);
    expect(rawFault(noHost).faultCode).toBe('BAD_REQUEST_TARGET');
    expect(rawFault(noHost).faultString).toContain('Host');
    expect(noHost.toLowerCase()).toContain('x-correlation-id:');
    // HTTP/1.0 may omit Host.
    expect(rawStatus(await sendRaw(gw.port, 'GET /api/h HTTP/1.0\r\n\r\n', '127.0.0.4'))).toBe(200);
    const connect = await sendRaw(gw.port, 'CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n', '127.0.0.4');
    expect(rawStatus(connect)).toBe(400);
    expect(rawFault(connect).faultCode).toBe('BAD_REQUEST_TARGET');
  });

  it('appends to X-Forwarded-For from a trusted proxy', async () => {
    const r = await send(gw.port, '/api/h', { from: '127.0.0.1', headers: { 'x-forwarded-for': '192.0.2.1' } });
    expect(r.status).toBe(200);
    expect(up.requests.at(-1)!.headers['x-forwarded-for']).toBe('192.0.2.1, 127.0.0.1');
  });

  it('answers 404 NO_ROUTE outside every basePath, on a segment boundary', async () => {
    const r = await send(gw.port, '/apifoo/x', { from: '127.0.0.4' });
    expect(r.status).toBe(404);
    expect(r.json().fault.faultCode).toBe('NO_ROUTE');
  });
});
