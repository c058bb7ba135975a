/**
 * targetVariableForIP: every source type (HEADER, PARAMETER, BODY, CONTEXT, SCRIPT), allowed and
 * denied, and the fail-closed cases where the address cannot be determined.
 *
 * One gateway per concern, each with several API proxies (one per policy variant) in front of the
 * same echo upstream. 127.0.0.1 is the only trusted proxy, so 127.0.0.2+ are untrusted peers.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policy, send, startGateway, startUpstream, type Reply, type TestGateway, type Upstream } from '../helpers/harness.js';

/** A one-project config with one API proxy per basePath, all in front of `upstreamUrl`. */
function proxies(upstreamUrl: string, byBasePath: Record<string, unknown[]>, gateway: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    trustedProxies: ['127.0.0.1'],
    ...gateway,
    projects: [
      {
        name: 'p',
        apiProxies: Object.entries(byBasePath).map(([basePath, policies], i) => ({
          name: `proxy${i}`,
          basePath,
          upstream: { url: upstreamUrl },
          environments: ['production'],
          policies,
        })),
      },
    ],
  };
}

function source(tv: Record<string, unknown>): Record<string, unknown> {
  return { targetVariableForIP: tv };
}

function expectFault(r: Reply, status: number, code: string): { faultString: string } {
  expect(r.status).toBe(status);
  const fault = r.json().fault;
  expect(fault.faultCode).toBe(code);
  return fault;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

describe('HEADER source (X-Real-IP)', () => {
  let up: Upstream;
  let gw: TestGateway;
  const header = source({ type: 'HEADER', headerName: 'X-Real-IP' });

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      proxies(up.url, {
        '/h': [policy('policy-white-ip', 'hdr', ['192.0.2.0/24', '127.0.0.3'], header)],
        '/ht': [policy('policy-white-ip', 'hdr-any-peer', ['192.0.2.0/24'], source({ type: 'HEADER', headerName: 'X-Real-IP', trustUntrustedPeers: true }))],
      }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('allows and denies by the header value from a trusted peer', async () => {
    const before = up.requests.length;
    const ok = await send(gw.port, '/h/x', { from: '127.0.0.1', headers: { 'x-real-ip': '192.0.2.10' } });
    expect(ok.status).toBe(200);
    expect(up.requests.length).toBe(before + 1);
    const denied = await send(gw.port, '/h/x', { from: '127.0.0.1', headers: { 'x-real-ip': '203.0.113.10' } });
    expect(expectFault(denied, 403, 'IP_NOT_ALLOWED').faultString).toBe('Client IP 203.0.113.10 is not allowed');
    expect(up.requests.length).toBe(before + 1);
  });

  it('trims spaces and tabs around the value, but nothing else (a no-break space is not an address)', async () => {
    expect((await send(gw.port, '/h/x', { from: '127.0.0.1', headers: { 'x-real-ip': ' \t192.0.2.10\t ' } })).status).toBe(200);
    const nbsp = Buffer.from([0xa0, ...Buffer.from('192.0.2.10'), 0xa0]).toString('latin1');
    const r = await send(gw.port, '/h/x', { from: '127.0.0.1', headers: { 'x-real-ip': nbsp } });
    expect(expectFault(r, 403, 'CLIENT_IP_UNRESOLVED').faultString).toContain('is not an IP address');
  });

  it('treats the header sent twice as undeterminable, even when both values are allowed', async () => {
    const r = await send(gw.port, '/h/x', {
      from: '127.0.0.1',
      headers: [
        ['X-Real-IP', '192.0.2.10'],
        ['X-Real-IP', '192.0.2.11'],
      ],
    });
    expect(expectFault(r, 403, 'CLIENT_IP_UNRESOLVED').faultString).toContain('more than once');
  });

  it('treats a missing header as undeterminable (no fallback to the trusted socket address)', async () => {
    const r = await send(gw.port, '/h/x', { from: '127.0.0.1' });
    expect(expectFault(r, 403, 'CLIENT_IP_UNRESOLVED').faultString).toContain('missing');
  });

  it('treats a non-IP header value as undeterminable', async () => {
    expectFault(await send(gw.port, '/h/x', { from: '127.0.0.1', headers: { 'x-real-ip': 'not-an-ip' } }), 403, 'CLIENT_IP_UNRESOLVED');
  });

  it('ignores the header from an untrusted peer and uses the socket address', async () => {
    // 127.0.0.2 claims an allowed address: not believed.
    const spoof = await send(gw.port, '/h/x', { from: '127.0.0.2', headers: { 'x-real-ip': '192.0.2.10' } });
    expect(expectFault(spoof, 403, 'IP_NOT_ALLOWED').faultString).toBe('Client IP 127.0.0.2 is not allowed');
    // 127.0.0.3 is itself allowed: its (disallowed) header value does not matter.
    expect((await send(gw.port, '/h/x', { from: '127.0.0.3', headers: { 'x-real-ip': '203.0.113.10' } })).status).toBe(200);
    // ... and a missing header is not "unresolved" for an untrusted peer: its socket decides.
    expect((await send(gw.port, '/h/x', { from: '127.0.0.3' })).status).toBe(200);
  });

  it('believes the header from an untrusted peer with trustUntrustedPeers: true', async () => {
    expect((await send(gw.port, '/ht/x', { from: '127.0.0.2', headers: { 'x-real-ip': '192.0.2.10' } })).status).toBe(200);
    const denied = await send(gw.port, '/ht/x', { from: '127.0.0.2', headers: { 'x-real-ip': '203.0.113.10' } });
    expect(expectFault(denied, 403, 'IP_NOT_ALLOWED').faultString).toContain('203.0.113.10');
  });
});

describe('PARAMETER source (clientIp)', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      proxies(up.url, { '/q': [policy('policy-white-ip', 'param', ['192.0.2.0/24', '2001:db8::/32'], source({ type: 'PARAMETER', paramName: 'clientIp' }))] }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('allows and denies by the parameter value', async () => {
    const ok = await send(gw.port, '/q/x?a=1&clientIp=192.0.2.20', { from: '127.0.0.1' });
    expect(ok.status).toBe(200);
    expect(ok.json().url).toBe('/x?a=1&clientIp=192.0.2.20');
    const denied = await send(gw.port, '/q/x?clientIp=203.0.113.20', { from: '127.0.0.1' });
    expect(expectFault(denied, 403, 'IP_NOT_ALLOWED').faultString).toContain('203.0.113.20');
  });

  it('treats a repeated parameter as undeterminable', async () => {
    const r = await send(gw.port, '/q/x?clientIp=192.0.2.20&clientIp=192.0.2.21', { from: '127.0.0.1' });
    expect(expectFault(r, 403, 'CLIENT_IP_UNRESOLVED').faultString).toContain('more than once');
    // Repeated with an encoded key is still the same parameter.
    expectFault(await send(gw.port, '/q/x?clientIp=192.0.2.20&client%49p=192.0.2.21', { from: '127.0.0.1' }), 403, 'CLIENT_IP_UNRESOLVED');
  });

  it('treats a missing parameter as undeterminable', async () => {
    expectFault(await send(gw.port, '/q/x?other=192.0.2.20', { from: '127.0.0.1' }), 403, 'CLIENT_IP_UNRESOLVED');
  });

  it('decodes a percent-encoded value', async () => {
    expect((await send(gw.port, '/q/x?clientIp=192%2E0%2E2%2E22', { from: '127.0.0.1' })).status).toBe(200);
    expect((await send(gw.port, '/q/x?clientIp=2001%3Adb8%3A%3A1', { from: '127.0.0.1' })).status).toBe(200);
    const denied = await send(gw.port, '/q/x?clientIp=203%2E0%2E113%2E22', { from: '127.0.0.1' });
    expect(expectFault(denied, 403, 'IP_NOT_ALLOWED').faultString).toContain('203.0.113.22');
  });
});

describe('BODY source (client.ip in a JSON body)', () => {
  let up: Upstream;
  let gw: TestGateway;
  const json = { 'content-type': 'application/json' };

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(proxies(up.url, { '/b': [policy('policy-white-ip', 'body', ['192.0.2.0/24'], source({ type: 'BODY', bodyPath: 'client.ip' }))] }));
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('allows by the body field and forwards the body byte for byte', async () => {
    // Odd whitespace and an escape: the upstream must get these exact bytes, not a re-serialisation.
    const body = '{ "client" : {"ip":"192.0.2.30", "note":"caf\\u00e9 \u00e9"},\n\t"n": 1.50 }';
    const r = await send(gw.port, '/b/x', { method: 'POST', from: '127.0.0.1', headers: json, body });
    expect(r.status).toBe(200);
    expect(r.json().bodySha256).toBe(sha256(body));
    expect(r.json().bodyBytes).toBe(Buffer.byteLength(body));
  });

  it('also accepts an application/*+json content type with parameters', async () => {
    const r = await send(gw.port, '/b/x', { method: 'POST', from: '127.0.0.1', headers: { 'content-type': 'application/vnd.x+json; charset=utf-8' }, body: '{"client":{"ip":"192.0.2.31"}}' });
    expect(r.status).toBe(200);
  });

  it('denies by the body field without forwarding', async () => {
    const before = up.requests.length;
    const r = await send(gw.port, '/b/x', { method: 'POST', from: '127.0.0.1', headers: json, body: '{"client":{"ip":"203.0.113.30"}}' });
    expect(expectFault(r, 403, 'IP_NOT_ALLOWED').faultString).toContain('203.0.113.30');
    expect(up.requests.length).toBe(before);
  });

  it.each([
    ['a duplicate key on the path', '{"client":{"ip":"192.0.2.30","ip":"203.0.113.30"}}'],
    ['a duplicate key (reversed order)', '{"client":{"ip":"203.0.113.30","ip":"192.0.2.30"}}'],
    ['a number', '{"client":{"ip":3221225986}}'],
    ['an object', '{"client":{"ip":{"v":"192.0.2.30"}}}'],
    ['a missing field', '{"client":{"addr":"192.0.2.30"}}'],
    ['invalid JSON', '{"client":{"ip":"192.0.2.30"}'],
    ['trailing garbage after valid JSON', '{"client":{"ip":"192.0.2.30"}} x'],
  ])('treats %s as undeterminable', async (_what, body) => {
    const before = up.requests.length;
    const r = await send(gw.port, '/b/x', { method: 'POST', from: '127.0.0.1', headers: json, body });
    expectFault(r, 403, 'CLIENT_IP_UNRESOLVED');
    expect(up.requests.length).toBe(before);
  });

  it('treats a body that is not declared as JSON as undeterminable', async () => {
    const body = '{"client":{"ip":"192.0.2.30"}}';
    expectFault(await send(gw.port, '/b/x', { method: 'POST', from: '127.0.0.1', headers: { 'content-type': 'text/plain' }, body }), 403, 'CLIENT_IP_UNRESOLVED');
    expectFault(await send(gw.port, '/b/x', { method: 'POST', from: '127.0.0.1', body }), 403, 'CLIENT_IP_UNRESOLVED');
  });

  it('treats a request without a body as undeterminable', async () => {
    expectFault(await send(gw.port, '/b/x', { from: '127.0.0.1' }), 403, 'CLIENT_IP_UNRESOLVED');
  });

  it('answers 413 for a body over the default buffering limit (1 MiB) and never calls the upstream', async () => {
    const before = up.requests.length;
    const body = JSON.stringify({ client: { ip: '192.0.2.30' }, pad: 'x'.repeat(2 * 1024 * 1024) });
    const r = await send(gw.port, '/b/x', { method: 'POST', from: '127.0.0.1', headers: json, body });
    expectFault(r, 413, 'PAYLOAD_TOO_LARGE');
    expect(up.requests.length).toBe(before);
  });
});

describe('BODY source with a raised bodyBufferBytes', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      proxies(up.url, { '/b': [policy('policy-white-ip', 'body', ['192.0.2.0/24'], source({ type: 'BODY', bodyPath: 'client.ip' }))] }, { limits: { bodyBufferBytes: 4 * 1024 * 1024 } }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('resolves, allows and forwards a 2 MiB JSON body intact', async () => {
    const head = '{"client":{"ip":"192.0.2.40"},"pad":"';
    const tail = '"}';
    const body = Buffer.from(head + 'y'.repeat(2 * 1024 * 1024 - head.length - tail.length) + tail);
    expect(body.length).toBe(2 * 1024 * 1024);
    const before = up.requests.length;
    const r = await send(gw.port, '/b/big', { method: 'POST', from: '127.0.0.1', headers: { 'content-type': 'application/json' }, body });
    expect(r.status).toBe(200);
    expect(r.json().bodyBytes).toBe(body.length);
    expect(r.json().bodySha256).toBe(sha256(body));
    expect(up.requests.length).toBe(before + 1);
  });

  it('still denies a 2 MiB body whose field is not allowed', async () => {
    const body = JSON.stringify({ client: { ip: '203.0.113.40' }, pad: 'z'.repeat(2 * 1024 * 1024) });
    const r = await send(gw.port, '/b/big', { method: 'POST', from: '127.0.0.1', headers: { 'content-type': 'application/json' }, body });
    expectFault(r, 403, 'IP_NOT_ALLOWED');
  });
});

describe('CONTEXT source', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      proxies(up.url, {
        '/remote': [policy('policy-white-ip', 'remote', ['127.0.0.1'], source({ type: 'CONTEXT', contextValue: 'REMOTE_ADDR' }))],
        '/client': [policy('policy-white-ip', 'client', ['127.0.0.1', '192.0.2.0/24'], source({ type: 'CONTEXT', contextValue: 'CLIENT_IP' }))],
      }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('REMOTE_ADDR uses the socket address even when a trusted peer sends X-Forwarded-For', async () => {
    // The forwarded client is not listed, but the socket (127.0.0.1) is.
    expect((await send(gw.port, '/remote/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.50' } })).status).toBe(200);
    // The reverse: a listed-looking forwarded address does not help an unlisted socket.
    const denied = await send(gw.port, '/remote/x', { from: '127.0.0.2', headers: { 'x-forwarded-for': '127.0.0.1' } });
    expect(expectFault(denied, 403, 'IP_NOT_ALLOWED').faultString).toContain('127.0.0.2');
  });

  it('CLIENT_IP follows X-Forwarded-For through a trusted hop, like the default source', async () => {
    expect((await send(gw.port, '/client/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': '192.0.2.50' } })).status).toBe(200);
    const denied = await send(gw.port, '/client/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': '203.0.113.50' } });
    expect(expectFault(denied, 403, 'IP_NOT_ALLOWED').faultString).toContain('203.0.113.50');
    // From an untrusted peer X-Forwarded-For is ignored.
    const spoof = await send(gw.port, '/client/x', { from: '127.0.0.2', headers: { 'x-forwarded-for': '192.0.2.50' } });
    expect(expectFault(spoof, 403, 'IP_NOT_ALLOWED').faultString).toContain('127.0.0.2');
  });
});

describe('SCRIPT source', () => {
  let up: Upstream;
  let gw: TestGateway;
  const script = (s: string) => source({ type: 'SCRIPT', script: s });

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      proxies(
        up.url,
        {
          '/s': [policy('policy-white-ip', 'first', ['192.0.2.0/24', '127.0.0.1'], script("headers['x-client'] ? headers['x-client'].split(',')[0].trim() : remoteAddress"))],
          '/query': [policy('policy-white-ip', 'query', ['192.0.2.0/24'], script("Array.isArray(query.ip) ? query.ip[1] : query.ip"))],
          '/throws': [policy('policy-white-ip', 'throws', ['0.0.0.0/0'], script("(() => { throw new Error('boom') })()"))],
          '/number': [policy('policy-white-ip', 'number', ['0.0.0.0/0'], script('2130706433'))],
          '/process': [policy('policy-white-ip', 'process', ['127.0.0.1'], script("typeof process === 'undefined' ? '127.0.0.1' : '203.0.113.1'"))],
          '/escape': [
            policy(
              'policy-white-ip',
              'escape',
              ['127.0.0.1'],
              script("(() => { try { return typeof headers.constructor.constructor('return process')() === 'object' ? '203.0.113.1' : '127.0.0.1'; } catch (e) { return '127.0.0.1'; } })()"),
            ),
          ],
        },
        // Generous, so a slow first run on a loaded machine is never mistaken for a runaway script.
        { scriptTimeoutMs: 2000 },
      ),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('allows and denies by the script result', async () => {
    expect((await send(gw.port, '/s/x', { from: '127.0.0.1', headers: { 'x-client': ' 192.0.2.60 , 203.0.113.60' } })).status).toBe(200);
    const denied = await send(gw.port, '/s/x', { from: '127.0.0.1', headers: { 'x-client': '203.0.113.60, 192.0.2.60' } });
    expect(expectFault(denied, 403, 'IP_NOT_ALLOWED').faultString).toContain('203.0.113.60');
    // Without the header the script returns remoteAddress.
    expect((await send(gw.port, '/s/x', { from: '127.0.0.1' })).status).toBe(200);
  });

  it('sees the query string as parsed parameters', async () => {
    expect((await send(gw.port, '/query/x?ip=203.0.113.61&ip=192.0.2.61', { from: '127.0.0.1' })).status).toBe(200);
    expectFault(await send(gw.port, '/query/x?ip=192.0.2.61&ip=203.0.113.61', { from: '127.0.0.1' }), 403, 'IP_NOT_ALLOWED');
  });

  it('treats a throwing script as undeterminable', async () => {
    const r = await send(gw.port, '/throws/x', { from: '127.0.0.1' });
    expect(expectFault(r, 403, 'CLIENT_IP_UNRESOLVED').faultString).toContain('boom');
  });

  it('treats a non-string result as undeterminable', async () => {
    const r = await send(gw.port, '/number/x', { from: '127.0.0.1' });
    expect(expectFault(r, 403, 'CLIENT_IP_UNRESOLVED').faultString).toContain('did not return a string');
  });

  it('cannot reach process, directly or through a constructor of the request data', async () => {
    expect((await send(gw.port, '/process/x', { from: '127.0.0.1' })).status).toBe(200);
    expect((await send(gw.port, '/escape/x', { from: '127.0.0.1' })).status).toBe(200);
  });

  it('is not believed from an untrusted peer (socket address used)', async () => {
    const r = await send(gw.port, '/s/x', { from: '127.0.0.2', headers: { 'x-client': '192.0.2.60' } });
    expect(expectFault(r, 403, 'IP_NOT_ALLOWED').faultString).toContain('127.0.0.2');
  });
});

describe('SCRIPT source that never returns (scriptTimeoutMs: 50)', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      proxies(
        up.url,
        {
          '/loop': [policy('policy-white-ip', 'loop', ['0.0.0.0/0'], source({ type: 'SCRIPT', script: '(() => { while (true) {} })()' }))],
          '/plain': [policy('policy-white-ip', 'plain', ['127.0.0.1'])],
        },
        { scriptTimeoutMs: 50 },
      ),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('times out a runaway script as undeterminable and keeps serving', async () => {
    const before = up.requests.length;
    const r = await send(gw.port, '/loop/x', { from: '127.0.0.1' });
    expect(expectFault(r, 403, 'CLIENT_IP_UNRESOLVED').faultString).toContain('timed out');
    const [a, b] = await Promise.all([send(gw.port, '/plain/x', { from: '127.0.0.1' }), send(gw.port, '/loop/y', { from: '127.0.0.1' })]);
    expect(a.status).toBe(200);
    expectFault(b, 403, 'CLIENT_IP_UNRESOLVED');
    expect((await send(gw.port, '/plain/z', { from: '127.0.0.1' })).status).toBe(200);
    expect(up.requests.length).toBe(before + 2);
  });
});

describe('blocklist with an undeterminable client IP', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(proxies(up.url, { '/blk': [policy('policy-black-ip', 'block', ['203.0.113.0/24'], source({ type: 'HEADER', headerName: 'X-Real-IP' }))] }));
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('passes a resolved, unlisted address and blocks a listed one', async () => {
    expect((await send(gw.port, '/blk/x', { from: '127.0.0.1', headers: { 'x-real-ip': '192.0.2.70' } })).status).toBe(200);
    expectFault(await send(gw.port, '/blk/x', { from: '127.0.0.1', headers: { 'x-real-ip': '203.0.113.70' } }), 403, 'IP_BLOCKED');
  });

  it('rejects when the address cannot be determined (fail closed)', async () => {
    const before = up.requests.length;
    expectFault(await send(gw.port, '/blk/x', { from: '127.0.0.1' }), 403, 'CLIENT_IP_UNRESOLVED');
    expectFault(await send(gw.port, '/blk/x', { from: '127.0.0.1', headers: { 'x-real-ip': 'unknown' } }), 403, 'CLIENT_IP_UNRESOLVED');
    expect(up.requests.length).toBe(before);
  });
});
