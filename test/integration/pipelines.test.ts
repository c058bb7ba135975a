/**
 * REQUEST / RESPONSE / ERROR pipeline semantics, dry run, active:false, multi-policy evaluation
 * order, reject overrides, upstream failures and the request body limit.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneProxy, policy, rawFault, rawStatus, send, sendRaw, startGateway, startUpstream, type Reply, type TestGateway, type Upstream } from '../helpers/harness.js';

function expectFault(r: Reply, status: number, code: string): { faultString: string; faultStatusCode: number } {
  expect(r.status).toBe(status);
  const fault = r.json().fault;
  expect(fault.faultCode).toBe(code);
  return fault;
}

/** A URL on which nothing listens: a port we bound and released. */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

/** Poll `fn` until it returns a value (correctness, not timing: log lines are written on 'finish'). */
async function eventually<T>(fn: () => T | undefined, ms = 2000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const resp = (name: string, list: string[], more: Record<string, unknown> = {}) => policy('policy-white-ip', name, list, more, { targetPipeline: 'RESPONSE' });
const err = (name: string, list: string[], more: Record<string, unknown> = {}) => policy('policy-white-ip', name, list, more, { targetPipeline: 'ERROR' });

describe('RESPONSE pipeline', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'yes' });
      res.end('SECRET-UPSTREAM-BODY');
    });
    gw = await startGateway(oneProxy(up.url, [resp('resp-allow', ['127.0.0.1'])]));
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('calls the upstream but never shows its answer to a denied client', async () => {
    const before = up.requests.length;
    const r = await send(gw.port, '/api/x', { from: '127.0.0.2' });
    expectFault(r, 403, 'IP_NOT_ALLOWED');
    expect(r.text).not.toContain('SECRET-UPSTREAM-BODY');
    expect(r.headers['x-upstream']).toBeUndefined();
    expect(up.requests.length).toBe(before + 1);
  });

  it('shows the upstream answer to an allowed client', async () => {
    const r = await send(gw.port, '/api/x', { from: '127.0.0.1' });
    expect(r.status).toBe(200);
    expect(r.text).toBe('SECRET-UPSTREAM-BODY');
    expect(r.headers['x-upstream']).toBe('yes');
  });
});

describe('ERROR pipeline and upstream failures', () => {
  let up: Upstream;
  let gw: TestGateway;
  let hang: Server;
  const hanging = new Set<Socket>();
  let hangSeen = 0;

  beforeAll(async () => {
    up = await startUpstream();
    // Accepts, reads the request, never answers.
    hang = createServer((req: IncomingMessage) => {
      hangSeen++;
      req.resume();
    });
    hang.on('connection', (s: Socket) => hanging.add(s));
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const hangUrl = `http://127.0.0.1:${(hang.address() as AddressInfo).port}`;
    const dead = await deadUrl();
    const errPolicy = [err('err-allow', ['127.0.0.1'])];
    gw = await startGateway({
      projects: [
        {
          name: 'p',
          apiProxies: [
            { name: 'down', basePath: '/down', upstream: { url: dead }, policies: errPolicy },
            { name: 'up', basePath: '/up', upstream: { url: up.url }, policies: errPolicy },
            { name: 'refused', basePath: '/refused', upstream: { url: dead } },
            { name: 'slow', basePath: '/slow', upstream: { url: hangUrl, headersTimeoutMs: 300 } },
          ],
        },
      ],
    });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
    for (const s of hanging) s.destroy();
    await new Promise<void>((r) => hang.close(() => r()));
  });

  it('gives an allowed client the 502 UPSTREAM_UNAVAILABLE fault when the upstream is down', async () => {
    const f = expectFault(await send(gw.port, '/down/x', { from: '127.0.0.1' }), 502, 'UPSTREAM_UNAVAILABLE');
    expect(f.faultString).toContain('unavailable');
  });

  it('gives a client rejected by the ERROR pipeline a 403 without the error details', async () => {
    const r = await send(gw.port, '/down/x', { from: '127.0.0.2' });
    const f = expectFault(r, 403, 'IP_NOT_ALLOWED');
    expect(f.faultString).toBe('Client IP 127.0.0.2 is not allowed');
    expect(r.text.toLowerCase()).not.toContain('upstream');
  });

  it('does not affect successful requests', async () => {
    const before = up.requests.length;
    const r = await send(gw.port, '/up/x', { from: '127.0.0.2' });
    expect(r.status).toBe(200);
    expect(r.json().url).toBe('/x');
    expect(up.requests.length).toBe(before + 1);
  });

  it('answers 502 when the upstream refuses the connection (no policy)', async () => {
    expectFault(await send(gw.port, '/refused/x'), 502, 'UPSTREAM_UNAVAILABLE');
  });

  it('answers 504 UPSTREAM_TIMEOUT when the upstream accepts but never answers', async () => {
    const before = hangSeen;
    const f = expectFault(await send(gw.port, '/slow/x'), 504, 'UPSTREAM_TIMEOUT');
    expect(f.faultString).toContain('did not answer in time');
    expect(hangSeen).toBe(before + 1);
  });
});

describe('dry run (enforce: false)', () => {
  let up: Upstream;
  let gw: TestGateway;

  const dryRunCount = async (): Promise<number> => {
    const text = await gw.gateway.metrics.registry.getSingleMetricAsString('ipgate_policy_decisions_total');
    const line = text.split('\n').find((l) => l.startsWith('ipgate_policy_decisions_total{') && l.includes('policy="dry"') && l.includes('result="dry_run_reject"'));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(oneProxy(up.url, [policy('policy-white-ip', 'dry', ['127.0.0.1'], { enforce: false })]));
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('forwards a non-listed client, logs the would-be denial and counts it', async () => {
    const countBefore = await dryRunCount();
    const before = up.requests.length;
    const r = await send(gw.port, '/api/dry', { from: '127.0.0.2' });
    expect(r.status).toBe(200);
    expect(up.requests.length).toBe(before + 1);
    const line = await eventually(() => gw.logs.events('access').find((l) => l.correlationId === r.headers['x-correlation-id']));
    expect(line).toMatchObject({ decision: 'dry_run_denied', dryRun: true, clientIp: '127.0.0.2', policy: 'dry', faultCode: 'IP_NOT_ALLOWED', status: 200 });
    expect(await dryRunCount()).toBe(countBefore + 1);
  });

  it('logs nothing and counts no dry-run rejection for a listed client', async () => {
    const countBefore = await dryRunCount();
    const r = await send(gw.port, '/api/ok', { from: '127.0.0.1' });
    expect(r.status).toBe(200);
    expect(gw.logs.events('access').some((l) => l.correlationId === r.headers['x-correlation-id'])).toBe(false);
    expect(await dryRunCount()).toBe(countBefore);
  });
});

describe('active: false', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway({
      projects: [
        {
          name: 'p',
          apiProxies: [
            { name: 'off', basePath: '/off', upstream: { url: up.url }, policies: [policy('policy-white-ip', 'off', ['127.0.0.1'], { active: false })] },
            // The same policy active, so the test shows the policy would otherwise reject.
            { name: 'on', basePath: '/on', upstream: { url: up.url }, policies: [policy('policy-white-ip', 'on', ['127.0.0.1'], { active: true })] },
          ],
        },
      ],
    });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('skips an inactive policy', async () => {
    expect((await send(gw.port, '/off/x', { from: '127.0.0.2' })).status).toBe(200);
    expectFault(await send(gw.port, '/on/x', { from: '127.0.0.2' }), 403, 'IP_NOT_ALLOWED');
  });
});

describe('multiple policies', () => {
  let up: Upstream;
  let gw: TestGateway;
  const endpoint = (type: 'policy-white-ip' | 'policy-black-ip', name: string, list: string[], more: Record<string, unknown>, order?: number) =>
    policy(type, name, list, more, { targetScope: 'ENDPOINT', targetEndpoint: '/e/**', targetEndpointHTTPMethod: 'ALL', ...(order === undefined ? {} : { order }) });

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway({
      projects: [
        {
          name: 'p',
          apiProxies: [
            {
              name: 'both',
              basePath: '/both',
              upstream: { url: up.url },
              policies: [policy('policy-white-ip', 'allow-lo', ['127.0.0.0/24']), policy('policy-black-ip', 'block-2', ['127.0.0.2'])],
            },
            {
              name: 'scopes',
              basePath: '/scopes',
              upstream: { url: up.url },
              // The endpoint policy is declared first and has the lower order, yet proxy-wide runs first.
              policies: [
                endpoint('policy-black-ip', 'ep', ['127.0.0.2'], { rejectMessage: 'endpoint policy' }, 1),
                policy('policy-black-ip', 'wide', ['127.0.0.2'], { rejectMessage: 'proxy-wide policy' }, { order: 5 }),
              ],
            },
            {
              name: 'order',
              basePath: '/order',
              upstream: { url: up.url },
              // Declared b, a, c: order puts a (1) before b (2); c (no order) goes last.
              policies: [
                policy('policy-black-ip', 'c', ['127.0.0.0/24'], { rejectMessage: 'policy c' }),
                policy('policy-black-ip', 'b', ['127.0.0.2', '127.0.0.3'], { rejectMessage: 'policy b' }, { order: 2 }),
                policy('policy-black-ip', 'a', ['127.0.0.2'], { rejectMessage: 'policy a' }, { order: 1 }),
              ],
            },
          ],
        },
      ],
    });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('requires every applicable policy to pass', async () => {
    expect((await send(gw.port, '/both/x', { from: '127.0.0.3' })).status).toBe(200);
    // Passes the allowlist, hits the blocklist.
    const f = expectFault(await send(gw.port, '/both/x', { from: '127.0.0.2' }), 403, 'IP_BLOCKED');
    expect(f.faultString).toBe('Client IP 127.0.0.2 is blocked');
    // Fails the allowlist (no X-Forwarded-For: the socket address decides).
    expectFault(await send(gw.port, '/both/x', { from: '127.0.0.1', headers: { 'x-forwarded-for': '192.0.2.1' } }), 403, 'IP_NOT_ALLOWED');
  });

  it('runs proxy-wide policies before endpoint policies', async () => {
    const f = expectFault(await send(gw.port, '/scopes/e/1', { from: '127.0.0.2' }), 403, 'IP_BLOCKED');
    expect(f.faultString).toBe('proxy-wide policy (client IP 127.0.0.2)');
  });

  it('reports the rejection of the policy with the lowest order; unordered ones run last', async () => {
    expect(expectFault(await send(gw.port, '/order/x', { from: '127.0.0.2' }), 403, 'IP_BLOCKED').faultString).toBe('policy a (client IP 127.0.0.2)');
    expect(expectFault(await send(gw.port, '/order/x', { from: '127.0.0.3' }), 403, 'IP_BLOCKED').faultString).toBe('policy b (client IP 127.0.0.3)');
    expect(expectFault(await send(gw.port, '/order/x', { from: '127.0.0.4' }), 403, 'IP_BLOCKED').faultString).toBe('policy c (client IP 127.0.0.4)');
  });
});

describe('rejectStatusCode and rejectMessage', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(oneProxy(up.url, [policy('policy-white-ip', 'geo', ['127.0.0.1'], { rejectStatusCode: 451, rejectMessage: 'Unavailable in your region' })]));
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('overrides the status and the faultString, which still names the client IP', async () => {
    const r = await send(gw.port, '/api/x', { from: '127.0.0.2' });
    const f = expectFault(r, 451, 'IP_NOT_ALLOWED');
    expect(f.faultStatusCode).toBe(451);
    expect(f.faultString).toBe('Unavailable in your region (client IP 127.0.0.2)');
    expect((await send(gw.port, '/api/x', { from: '127.0.0.1' })).status).toBe(200);
  });
});

describe('request body limit (limits.requestBodyBytes: 1000)', () => {
  let gw: TestGateway;
  let upstream: Server;
  /** Every request the upstream saw: bytes received, and whether the body ended normally. */
  const seen: { bytes: number; complete: boolean; aborted: boolean }[] = [];

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      const rec = { bytes: 0, complete: false, aborted: false };
      seen.push(rec);
      req.on('data', (c: Buffer) => (rec.bytes += c.length));
      req.on('end', () => {
        rec.complete = true;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes: rec.bytes }));
      });
      req.on('error', () => undefined);
      req.on('close', () => {
        if (!rec.complete) rec.aborted = true;
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    gw = await startGateway(oneProxy(url, [policy('policy-white-ip', 'lo', ['127.0.0.1'])], { gateway: { limits: { requestBodyBytes: 1000 } } }));
  });
  afterAll(async () => {
    await gw.close();
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  it('forwards a body within the limit', async () => {
    const r = await send(gw.port, '/api/x', { method: 'POST', body: 'a'.repeat(1000) });
    expect(r.status).toBe(200);
    expect(r.json().bytes).toBe(1000);
  });

  it('answers 413 to a Content-Length over the limit without calling the upstream', async () => {
    const before = seen.length;
    const r = await send(gw.port, '/api/x', { method: 'POST', body: 'b'.repeat(2000) });
    expectFault(r, 413, 'PAYLOAD_TOO_LARGE');
    expect(r.headers.connection).toBe('close');
    expect(seen.length).toBe(before);
  });

  it('forwards a chunked body within the limit', async () => {
    const chunk = 'c'.repeat(400);
    const raw = await sendRaw(
      gw.port,
      `POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` + `190\r\n${chunk}\r\n`.repeat(2) + '0\r\n\r\n',
    );
    expect(rawStatus(raw)).toBe(200);
    expect(raw).toContain('{"bytes":800}');
  });

  it('answers 413 to a chunked body over the limit, and the upstream never gets it complete', async () => {
    const before = seen.length;
    const chunk = 'd'.repeat(400);
    // 2000 bytes in five chunks, no Content-Length, all written at once.
    const raw = await sendRaw(
      gw.port,
      `POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` + `190\r\n${chunk}\r\n`.repeat(5) + '0\r\n\r\n',
    );
    expect(rawStatus(raw)).toBe(413);
    expect(rawFault(raw).faultCode).toBe('PAYLOAD_TOO_LARGE');
    for (const rec of seen.slice(before)) {
      expect(rec.bytes).toBeLessThanOrEqual(1000);
      expect(rec.complete).toBe(false);
    }
  });

  it('cuts off a chunked body that crosses the limit while already streaming to the upstream', async () => {
    const before = seen.length;
    const chunk = 'e'.repeat(400);
    const s = connect({ host: '127.0.0.1', port: gw.port, localAddress: '127.0.0.1' });
    const received: Buffer[] = [];
    const closed = new Promise<string>((resolve) => {
      s.on('data', (c: Buffer) => received.push(c));
      s.on('close', () => resolve(Buffer.concat(received).toString('utf8')));
      s.on('error', () => undefined);
    });
    s.write(`POST /api/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n190\r\n${chunk}\r\n`);
    // Wait until the upstream is receiving this body: forwarding is streamed, not buffered.
    const rec = await eventually(() => (seen.length > before && seen[before]!.bytes > 0 ? seen[before] : undefined));
    for (let i = 0; i < 4 && !s.destroyed; i++) s.write(`190\r\n${chunk}\r\n`);
    if (!s.destroyed) s.write('0\r\n\r\n');
    const raw = await closed;
    expect(rawStatus(raw)).toBe(413);
    expect(rawFault(raw).faultCode).toBe('PAYLOAD_TOO_LARGE');
    // The upstream saw the start of the body, but the request was cut off before it completed.
    await eventually(() => (rec!.aborted ? true : undefined));
    expect(rec!.bytes).toBeLessThanOrEqual(1000);
    expect(rec!.complete).toBe(false);
    expect(seen.length).toBe(before + 1);
  });
});
