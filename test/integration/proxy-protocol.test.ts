/**
 * PROXY protocol on the traffic listener, with handcrafted v1/v2 headers over raw sockets bound to
 * 127.0.0.x. 127.0.0.10 and 127.0.0.16/30 play the load balancers; every other address is a
 * stranger. The policy allows only TEST-NET-3 and 2001:db8::/32, which no socket here has, so a 200
 * proves the carried address was used and a fault naming an address proves which one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { V2_SIGNATURE } from '../../src/dataplane/proxy-protocol.js';
import { oneProxy, policy, rawFault, rawStatus, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';
import { makeCertPair, type CertPair } from '../helpers/tls-certs.js';

const LB = '127.0.0.10';
const LB_IN_CIDR = '127.0.0.17';
const STRANGER = '127.0.0.11';

const request = (path = '/api/x', extra = '') => `GET ${path} HTTP/1.1\r\nHost: gw\r\n${extra}Connection: close\r\n\r\n`;

function v1(src: string, family: 'TCP4' | 'TCP6' = 'TCP4'): string {
  return `PROXY ${family} ${src} ${family === 'TCP4' ? '10.0.0.1' : '2001:db8::1'} 40000 8080\r\n`;
}

function v2(command: number, familyTransport: number, block: Buffer, version = 2): Buffer {
  const h = Buffer.alloc(16);
  V2_SIGNATURE.copy(h);
  h[12] = (version << 4) | command;
  h[13] = familyTransport;
  h.writeUInt16BE(block.length, 14);
  return Buffer.concat([h, block]);
}

function v2Inet4(src: string, command = 0x1): Buffer {
  const b = Buffer.alloc(12);
  b.set(src.split('.').map(Number), 0);
  b.set([10, 0, 0, 1], 4);
  b.writeUInt16BE(40000, 8);
  b.writeUInt16BE(8080, 10);
  return v2(command, 0x11, b);
}

function v2Inet6(srcHex: string): Buffer {
  const b = Buffer.alloc(36);
  Buffer.from(srcHex, 'hex').copy(b, 0);
  b.writeUInt16BE(40000, 32);
  b.writeUInt16BE(8080, 34);
  return v2(0x1, 0x21, b);
}

const V2_LOCAL = v2(0x0, 0x00, Buffer.alloc(0));

function connectFrom(port: number, from: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: from }, () => {
      s.off('error', reject);
      resolve(s);
    });
    s.on('error', reject);
  });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Talk {
  /** Everything the server sent. */
  readonly text: string;
}

/**
 * Writes `parts` (one write each, `gapMs` apart, Nagle off so each is its own segment), then
 * optionally half-closes, and collects what comes back until the server closes the connection
 * (by FIN or by reset; both count as closed).
 */
async function talk(port: number, from: string, parts: (string | Buffer)[], opts: { gapMs?: number; end?: boolean } = {}): Promise<Talk> {
  const s = await connectFrom(port, from);
  s.setNoDelay(true);
  const chunks: Buffer[] = [];
  const closed = new Promise<void>((resolve) => {
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => resolve());
  });
  for (let i = 0; i < parts.length; i++) {
    if (i > 0 && opts.gapMs !== undefined) await pause(opts.gapMs);
    if (s.destroyed) break;
    s.write(parts[i]!);
  }
  if (opts.end === true && !s.destroyed) s.end();
  await closed;
  return { text: Buffer.concat(chunks).toString('utf8') };
}

function upstreamXff(up: Upstream, before: number): (string | string[] | undefined)[] {
  return up.requests.slice(before).map((r) => r.headers['x-forwarded-for']);
}

const allowTestNets = () => [policy('policy-white-ip', 'allow', ['203.0.113.0/24', '2001:db8::/32'])];

describe('PROXY protocol on a plain HTTP listener', () => {
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      oneProxy(up.url, allowTestNets(), {
        gateway: {
          // Only 127.0.0.50 is a trusted (HTTP) proxy: the load balancers are not, and need not be.
          trustedProxies: ['127.0.0.50'],
          proxyProtocol: { trustedLoadBalancers: [LB, '127.0.0.16/30'], headerTimeoutMs: 300 },
          log: { level: 'debug' },
        },
      }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('v1 TCP4: the carried source is the client, and the upstream hears it in X-Forwarded-For', async () => {
    const before = up.requests.length;
    const r = await talk(gw.port, LB, [v1('203.0.113.7') + request()]);
    expect(rawStatus(r.text)).toBe(200);
    expect(upstreamXff(up, before)).toEqual(['203.0.113.7']);
  });

  it('v1 TCP4: a carried source outside the policy is denied by that address, not the balancer', async () => {
    const r = await talk(gw.port, LB, [v1('198.51.100.9') + request()]);
    expect(rawStatus(r.text)).toBe(403);
    expect(rawFault(r.text).faultString).toBe('Client IP 198.51.100.9 is not allowed');
  });

  it('v1 TCP6, v2 TCP4 and v2 TCP6 carry the source the same way', async () => {
    expect(rawStatus((await talk(gw.port, LB, [v1('2001:db8::7', 'TCP6') + request()])).text)).toBe(200);
    expect(rawStatus((await talk(gw.port, LB, [Buffer.concat([v2Inet4('203.0.113.8'), Buffer.from(request())])])).text)).toBe(200);
    const v6 = await talk(gw.port, LB, [Buffer.concat([v2Inet6('20010db8000000000000000000000042'), Buffer.from(request())])]);
    expect(rawStatus(v6.text)).toBe(200);
    const denied6 = await talk(gw.port, LB, [Buffer.concat([v2Inet6('20010dbf000000000000000000000042'), Buffer.from(request())])]);
    expect(rawFault(denied6.text).faultString).toBe('Client IP 2001:dbf::42 is not allowed');
  });

  it('v2 LOCAL and v1 UNKNOWN (health checks) keep the real socket address', async () => {
    const local = await talk(gw.port, LB, [Buffer.concat([V2_LOCAL, Buffer.from(request())])]);
    expect(rawFault(local.text).faultString).toBe(`Client IP ${LB} is not allowed`);
    const unknown = await talk(gw.port, LB, ['PROXY UNKNOWN\r\n' + request()]);
    expect(rawFault(unknown.text).faultString).toBe(`Client IP ${LB} is not allowed`);
  });

  it('accepts a load balancer inside a trusted CIDR', async () => {
    expect(rawStatus((await talk(gw.port, LB_IN_CIDR, [v1('203.0.113.7') + request()])).text)).toBe(200);
  });

  it('X-Forwarded-For trust applies relative to the carried address', async () => {
    const before = up.requests.length;
    // The carried peer 127.0.0.50 is a trusted proxy: its X-Forwarded-For is walked.
    const viaProxy = await talk(gw.port, LB, [v1('127.0.0.50') + request('/api/x', 'X-Forwarded-For: 203.0.113.9\r\n')]);
    expect(rawStatus(viaProxy.text)).toBe(200);
    expect(upstreamXff(up, before)).toEqual(['203.0.113.9, 127.0.0.50']);
    // The carried peer 198.51.100.9 is not: its claim is ignored.
    const spoof = await talk(gw.port, LB, [v1('198.51.100.9') + request('/api/x', 'X-Forwarded-For: 203.0.113.9\r\n')]);
    expect(rawFault(spoof.text).faultString).toBe('Client IP 198.51.100.9 is not allowed');
    // And the balancer itself is no hop: without a header it could not vouch for anything.
    const noHop = await talk(gw.port, LB, [v1('203.0.113.7') + request('/api/x', 'X-Forwarded-For: 198.51.100.1\r\n')]);
    expect(rawStatus(noHop.text)).toBe(200);
  });

  it('one header serves every request on a keep-alive connection', async () => {
    const before = up.requests.length;
    const keepAlive = 'GET /api/one HTTP/1.1\r\nHost: gw\r\n\r\n';
    const r = await talk(gw.port, LB, [v1('203.0.113.7') + keepAlive + request('/api/two')]);
    expect(r.text.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(upstreamXff(up, before)).toEqual(['203.0.113.7', '203.0.113.7']);
  });

  it('closes a connection from an address that is not a trusted load balancer, header or not', async () => {
    const before = gw.logs.events('proxy_protocol_rejected').length;
    expect((await talk(gw.port, STRANGER, [v1('203.0.113.7') + request()])).text).toBe('');
    expect((await talk(gw.port, STRANGER, [request()])).text).toBe('');
    const logged = gw.logs.events('proxy_protocol_rejected').slice(before);
    expect(logged.map((l) => [l.remoteAddress, l.reason, l.level])).toEqual([
      [STRANGER, 'source is not a trusted load balancer', 20],
      [STRANGER, 'source is not a trusted load balancer', 20],
    ]);
  });

  it.each([
    ['no header at all', [request()], 'not a PROXY protocol header'],
    ['a bad v2 signature', [Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIX\n'), v2Inet4('203.0.113.7').subarray(12), Buffer.from(request())])], 'bad v2 signature'],
    ['a v1 line over 107 bytes', [`PROXY TCP4 203.0.113.7 10.0.0.1 1 2${' '.repeat(100)}\r\n` + request()], 'longer than 107'],
    ['a v1 port over 65535', ['PROXY TCP4 203.0.113.7 10.0.0.1 65536 80\r\n' + request()], 'port'],
    ['a v1 port with a leading zero', ['PROXY TCP4 203.0.113.7 10.0.0.1 0080 80\r\n' + request()], 'port'],
    ['a bad v1 address', ['PROXY TCP4 203.0.113.256 10.0.0.1 1 80\r\n' + request()], 'not a valid IPv4'],
    ['an IPv6 address in TCP4', ['PROXY TCP4 2001:db8::1 10.0.0.1 1 80\r\n' + request()], 'not a valid IPv4'],
    ['an unknown v1 protocol', ['PROXY TCP9 203.0.113.7 10.0.0.1 1 80\r\n' + request()], 'TCP4, TCP6 or UNKNOWN'],
    ['an unknown version', [Buffer.concat([v2(0x1, 0x11, v2Inet4('203.0.113.7').subarray(16), 3), Buffer.from(request())])], 'version 3'],
    ['an unknown command', [Buffer.concat([v2(0x2, 0x11, v2Inet4('203.0.113.7').subarray(16)), Buffer.from(request())])], 'command 2'],
    ['v2 PROXY with the UNSPEC family', [Buffer.concat([v2(0x1, 0x00, Buffer.alloc(0)), Buffer.from(request())])], 'UNSPEC'],
    ['v2 PROXY with the UNIX family', [Buffer.concat([v2(0x1, 0x31, Buffer.alloc(216)), Buffer.from(request())])], 'UNIX'],
    ['v2 PROXY over UDP', [Buffer.concat([v2(0x1, 0x12, v2Inet4('203.0.113.7').subarray(16)), Buffer.from(request())])], 'UDP'],
  ])('closes a load balancer connection with %s, answering nothing', async (_name, parts, reason) => {
    const before = gw.logs.events('proxy_protocol_rejected').length;
    const r = await talk(gw.port, LB, parts);
    expect(r.text).toBe('');
    const logged = gw.logs.events('proxy_protocol_rejected').slice(before);
    expect(logged).toHaveLength(1);
    expect(logged[0]!.remoteAddress).toBe(LB);
    expect(logged[0]!.reason).toContain(reason);
    expect(logged[0]!.level).toBe(40);
  });

  it('closes a connection whose header is cut short by the client closing', async () => {
    const before = gw.logs.events('proxy_protocol_rejected').length;
    const r = await talk(gw.port, LB, ['PROXY TCP4 203.0.113.7 10.0.0.1 '], { end: true });
    expect(r.text).toBe('');
    expect(gw.logs.events('proxy_protocol_rejected').slice(before).map((l) => l.reason)).toEqual(['connection ended before a complete PROXY protocol header']);
  });

  it('reads a header split across many TCP segments, v1 byte by byte', async () => {
    const header = v1('203.0.113.7');
    const parts = [...header].concat(request());
    const r = await talk(gw.port, LB, parts, { gapMs: 2 });
    expect(rawStatus(r.text)).toBe(200);
  });

  it('reads a header split across many TCP segments, v2 inside the signature, the length and the addresses', async () => {
    const h = v2Inet4('203.0.113.7');
    const req = Buffer.from(request());
    const parts = [h.subarray(0, 5), h.subarray(5, 13), h.subarray(13, 15), h.subarray(15, 21), Buffer.concat([h.subarray(21), req.subarray(0, 4)]), req.subarray(4)];
    const r = await talk(gw.port, LB, parts, { gapMs: 10 });
    expect(rawStatus(r.text)).toBe(200);
  });

  it('closes a connection whose header does not arrive within headerTimeoutMs', async () => {
    const before = gw.logs.events('proxy_protocol_rejected').length;
    // Half a header, then silence: the server must give up, not wait forever.
    const r = await talk(gw.port, LB, ['PROXY TCP4 203.0.113.7']);
    expect(r.text).toBe('');
    expect(gw.logs.events('proxy_protocol_rejected').slice(before).map((l) => l.reason)).toEqual(['PROXY protocol header not complete within 300 ms']);
  });

  it('a header dripping in one byte at a time does not extend the deadline', async () => {
    const before = gw.logs.events('proxy_protocol_rejected').length;
    const dripped = [...'PROXY TCP4 203.0.113.7 10.0.0.1 40000 8080'];
    // 43 bytes, 20 ms apart: longer than the 300 ms deadline, each gap far shorter.
    const r = await talk(gw.port, LB, dripped, { gapMs: 20 });
    expect(r.text).toBe('');
    expect(gw.logs.events('proxy_protocol_rejected').slice(before).map((l) => l.reason)).toEqual(['PROXY protocol header not complete within 300 ms']);
  });
});

describe('PROXY protocol and shutdown', () => {
  it('closing the gateway closes connections still waiting for their header, without waiting for the drain deadline', async () => {
    const up = await startUpstream();
    const gw = await startGateway(
      oneProxy(up.url, allowTestNets(), { gateway: { drainTimeoutMs: 20_000, proxyProtocol: { trustedLoadBalancers: [LB], headerTimeoutMs: 600_000 } } }),
    );
    try {
      const s = await connectFrom(gw.port, LB);
      s.on('error', () => undefined);
      const closed = new Promise<void>((r) => s.on('close', () => r()));
      s.write('PROXY TCP4 ');
      // Let the server read those bytes, so the connection really is waiting for the rest.
      const probe = await talk(gw.port, LB, [v1('203.0.113.7') + request()]);
      expect(rawStatus(probe.text)).toBe(200);
      await gw.close();
      await closed;
      expect(gw.logs.events('drain_timeout')).toEqual([]);
    } finally {
      await up.close();
    }
  });
});

describe('PROXY protocol with TLS: the header comes first, then the handshake', () => {
  let dir: string;
  let pair: CertPair;
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipgate-pp-tls-'));
    pair = makeCertPair(dir, 'gw', 'ipgate-pp');
    up = await startUpstream();
    gw = await startGateway(
      oneProxy(up.url, allowTestNets(), {
        gateway: {
          trustedProxies: ['127.0.0.50'],
          tls: { certFile: pair.certFile, keyFile: pair.keyFile },
          proxyProtocol: { trustedLoadBalancers: [LB], headerTimeoutMs: 2000 },
        },
      }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  interface TlsReply {
    readonly text: string;
    readonly cn: string | undefined;
  }

  /** A TLS client over `transport`, sending one request and reading until the server closes. */
  function overTls(transport: Duplex): Promise<TlsReply> {
    return new Promise((resolve, reject) => {
      const t = tlsConnect({ socket: transport, rejectUnauthorized: false }, () => {
        const cn = t.getPeerCertificate().subject?.CN;
        const chunks: Buffer[] = [];
        t.on('data', (c: Buffer) => chunks.push(c));
        t.on('end', () => resolve({ text: Buffer.concat(chunks).toString('utf8'), cn: Array.isArray(cn) ? cn[0] : cn }));
        t.write(request());
      });
      t.on('error', reject);
    });
  }

  /** The header in its own write, then the TLS handshake on the same TCP connection. */
  async function headerThenTls(from: string, header: string | Buffer): Promise<TlsReply> {
    const s = await connectFrom(gw.port, from);
    s.setNoDelay(true);
    s.write(header);
    return overTls(s);
  }

  it('uses the carried source for a request inside TLS', async () => {
    const before = up.requests.length;
    const r = await headerThenTls(LB, v2Inet4('203.0.113.7'));
    expect(r.cn).toBe('ipgate-pp');
    expect(rawStatus(r.text)).toBe(200);
    expect(up.requests.slice(before).map((q) => [q.headers['x-forwarded-for'], q.headers['x-forwarded-proto']])).toEqual([['203.0.113.7', 'https']]);
  });

  it('denies by the carried source inside TLS', async () => {
    const r = await headerThenTls(LB, v1('198.51.100.9'));
    expect(rawFault(r.text).faultString).toBe('Client IP 198.51.100.9 is not allowed');
  });

  it('v2 LOCAL inside TLS keeps the real socket address', async () => {
    const r = await headerThenTls(LB, V2_LOCAL);
    expect(rawFault(r.text).faultString).toBe(`Client IP ${LB} is not allowed`);
  });

  it('works when the header and the ClientHello arrive in one segment', async () => {
    const s = await connectFrom(gw.port, LB);
    s.setNoDelay(true);
    // A transport that glues the header to the TLS client's first write (its ClientHello).
    let first = true;
    const glued = new Duplex({
      write(chunk: Buffer, _enc, cb) {
        const out = first ? Buffer.concat([v2Inet4('203.0.113.44'), chunk]) : chunk;
        first = false;
        s.write(out, cb);
      },
      final(cb) {
        s.end(cb);
      },
      read() {},
    });
    s.on('data', (c: Buffer) => glued.push(c));
    s.on('end', () => glued.push(null));
    const before = up.requests.length;
    const r = await overTls(glued);
    expect(rawStatus(r.text)).toBe(200);
    expect(up.requests.slice(before).map((q) => q.headers['x-forwarded-for'])).toEqual(['203.0.113.44']);
  });

  it('closes a stranger before any TLS handshake', async () => {
    const s = await connectFrom(gw.port, STRANGER);
    await expect(overTls(s)).rejects.toThrow(/socket disconnected|ECONNRESET|socket hang up/);
  });

  it('closes a load balancer that starts TLS without a header', async () => {
    const s = await connectFrom(gw.port, LB);
    await expect(overTls(s)).rejects.toThrow(/socket disconnected|ECONNRESET|socket hang up/);
  });
});
