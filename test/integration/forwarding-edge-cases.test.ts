/**
 * Forwarding edge cases of the data plane (exchange.ts on undici dispatch), from an adversarial
 * review: a slow-read client (a bug the review found, now fixed), pipelining, HEAD, 204/304, 1xx,
 * and a denial racing an early upstream answer. Real sockets only, clients bound to 127.0.0.x.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneProxy, policy, rawStatus, startGateway, type TestGateway } from '../helpers/harness.js';

/** Waits for `cond` to become true, polling; gives up (returning false) after `ms`. */
async function within(ms: number, cond: () => boolean): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

interface Probe {
  server: Server;
  url: string;
  /** Upstream responses that were closed before they finished (the gateway let go of them). */
  closedEarly: number;
  /** Upstream responses currently being written. */
  open: Set<ServerResponse>;
  /** Request bodies the upstream has seen start arriving. */
  bodiesStarted: number;
}

/** An upstream whose behaviour is chosen by the path. */
async function startProbe(): Promise<Probe> {
  const probe: Probe = { server: null as unknown as Server, url: '', closedEarly: 0, open: new Set(), bodiesStarted: 0 };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '';
    if (path.endsWith('/big')) {
      // An endless body written with backpressure: only a reader (or a release) ends it.
      probe.open.add(res);
      res.on('close', () => {
        probe.open.delete(res);
        if (!res.writableFinished) probe.closedEarly++;
      });
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const more = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', more);
      };
      more();
      req.resume();
      return;
    }
    if (path.endsWith('/early')) {
      // Answers as soon as the request head arrives, before the body is complete.
      req.once('data', () => probe.bodiesStarted++);
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
      return;
    }
    if (path.endsWith('/slow')) {
      setTimeout(() => res.end('slow'), 300);
      return;
    }
    if (path.endsWith('/head')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
      res.end(req.method === 'HEAD' ? undefined : 'hello');
      return;
    }
    if (path.endsWith('/204')) {
      res.writeHead(204, { 'x-kind': 'no-content' });
      res.end();
      return;
    }
    if (path.endsWith('/304')) {
      res.writeHead(304, { etag: '"v1"' });
      res.end();
      return;
    }
    if (path.endsWith('/early-hints')) {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
        res.end('final');
      }, 20);
      return;
    }
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  probe.server = server;
  probe.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return probe;
}

async function stopProbe(p: Probe): Promise<void> {
  p.server.closeAllConnections();
  await new Promise<void>((r) => p.server.close(() => r()));
}

/** Raw exchange: write `head` (and optionally more later), collect everything until the server closes. */
function rawClient(port: number, from: string): { socket: Socket; closed: Promise<{ text: string; error: string | null }> } {
  const socket = connect({ host: '127.0.0.1', port, localAddress: from });
  const chunks: Buffer[] = [];
  let error: string | null = null;
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  const closed = new Promise<{ text: string; error: string | null }>((resolve) => socket.on('close', () => resolve({ text: Buffer.concat(chunks).toString('latin1'), error })));
  return { socket, closed };
}

describe('review: response streaming and client timeouts', () => {
  let up: Probe;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startProbe();
    // A short body timeout: an upstream response must not stay claimed much longer than this
    // without progress.
    gw = await startGateway(oneProxy(up.url, [], { proxy: { upstream: { url: up.url, bodyTimeoutMs: 300 } } }));
  });
  afterAll(async () => {
    await gw.close();
    await stopProbe(up);
  });

  // Found in review (fixed): a client that requests a large response and then never reads holds the
  // upstream request (and its pooled upstream connection) for ever. Backpressure pauses the undici
  // request, undici does not run bodyTimeout while a request is paused, and the gateway has no
  // client-side write/idle timeout. 256 such clients exhaust an upstream's pool for everybody.
  it('releases the upstream request of a client that stops reading (slow-read hold)', async () => {
    const before = up.closedEarly;
    const c = rawClient(gw.port, '127.0.0.2');
    // Never read: a paused socket with a full receive window is what a slow-read attacker does.
    c.socket.write('GET /api/big HTTP/1.1\r\nHost: gw\r\n\r\n');
    c.socket.pause();
    expect(await within(5_000, () => up.open.size > 0)).toBe(true);
    // 10x the configured bodyTimeoutMs with no progress at all.
    const released = await within(3_000, () => up.closedEarly > before);
    c.socket.destroy();
    expect(released).toBe(true);
  });

  // a pipelined second request whose client leaves before the first is
  // answered. Its ServerResponse is not attached to the socket yet; its upstream request must
  // still be released.
  it('releases the upstream request of a pipelined request whose client left', async () => {
    const before = up.closedEarly;
    const c = rawClient(gw.port, '127.0.0.5');
    c.socket.write('GET /api/slow HTTP/1.1\r\nHost: gw\r\n\r\nGET /api/big HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(await within(5_000, () => up.open.size > 0)).toBe(true);
    c.socket.destroy();
    const released = await within(3_000, () => up.closedEarly > before);
    expect(released).toBe(true);
  });
});

describe('review: HEAD, 204, 304 and 1xx through the dispatch handler', () => {
  let up: Probe;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startProbe();
    gw = await startGateway(oneProxy(up.url, []));
  });
  afterAll(async () => {
    await gw.close();
    await stopProbe(up);
  });

  /** Two requests on one keep-alive connection: a framing mistake in the first corrupts the second. */
  async function twoOnOneConnection(first: string): Promise<string> {
    const c = rawClient(gw.port, '127.0.0.3');
    c.socket.write(first + 'GET /api/plain HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    return (await c.closed).text;
  }

  // HEAD keeps the upstream's Content-Length and sends no body; the next
  // request on the same connection is framed correctly.
  it('HEAD response has the upstream Content-Length and no body', async () => {
    const text = await twoOnOneConnection('HEAD /api/head HTTP/1.1\r\nHost: gw\r\n\r\n');
    const parts = text.split('HTTP/1.1 ');
    expect(parts.length).toBe(3);
    expect(parts[1]).toMatch(/^200 /);
    expect(parts[1]).toMatch(/content-length: 5\r\n/i);
    expect(parts[1]!.endsWith('\r\n\r\n')).toBe(true);
    expect(parts[2]).toMatch(/^200 /);
    expect(parts[2]!.endsWith('ok')).toBe(true);
  });

  // 204 and 304 carry no body and do not break keep-alive framing.
  it('204 and 304 are forwarded without a body', async () => {
    for (const [path, status] of [
      ['/api/204', 204],
      ['/api/304', 304],
    ] as const) {
      const text = await twoOnOneConnection(`GET ${path} HTTP/1.1\r\nHost: gw\r\n\r\n`);
      const parts = text.split('HTTP/1.1 ');
      expect(parts.length, path).toBe(3);
      expect(rawStatus('HTTP/1.1 ' + parts[1]!), path).toBe(status);
      expect(parts[1]!.endsWith('\r\n\r\n'), path).toBe(true);
      expect(parts[1]!.toLowerCase(), path).not.toContain('transfer-encoding');
      expect(parts[2]!.endsWith('ok'), path).toBe(true);
    }
  });

  // a 103 Early Hints from the upstream is skipped and the final response
  // is delivered (onResponseStart's statusCode < 200 branch).
  it('a 1xx interim response is skipped and the final one delivered', async () => {
    const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/api/early-hints', localAddress: '127.0.0.3', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end();
    });
    expect(body).toEqual({ status: 200, text: 'final' });
  });
});

describe('review: RESPONSE-pipeline denial while the request body is still arriving', () => {
  let up: Probe;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startProbe();
    // Only 127.0.0.1 may see responses; 127.0.0.4 is denied in the RESPONSE pipeline.
    gw = await startGateway(
      oneProxy(up.url, [policy('policy-white-ip', 'resp-only-lo', ['127.0.0.1'], {}, { targetPipeline: 'RESPONSE' })], { gateway: { trustedProxies: [] } }),
    );
  });
  afterAll(async () => {
    await gw.close();
    await stopProbe(up);
  });

  // the upstream answers before the request body is complete (legal, and
  // common for errors) and the RESPONSE pipeline denies the client. onResponseStart aborts the
  // upstream request (whose body stream is the client's IncomingMessage) before writing the 403;
  // the client must still get the 403, not a reset.
  it('a denied client still gets its 403 when the upstream answered before the body ended', async () => {
    const c = rawClient(gw.port, '127.0.0.4');
    c.socket.write('POST /api/early HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n' + 'x'.repeat(1000));
    // The rest of the body is never sent: the upstream has answered already.
    const { text } = await c.closed;
    expect(rawStatus(text)).toBe(403);
  });
});
