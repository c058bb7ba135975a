/**
 * Lifecycle of a real `ipgate start` process (dist/cli.js, built by npm test):
 * - SIGTERM while requests wait on a slow upstream: every one completes with 200, new connections
 *   are refused at once, idle keep-alive connections are closed, a keep-alive connection with a
 *   request in flight gets `Connection: close`, and the process exits 0;
 * - SIGINT with a WebSocket open: it keeps working while the gateway drains, is closed at the
 *   drain timeout (set through IPGATE_DRAIN_TIMEOUT_MS), and the process still exits 0;
 * - SIGHUP is ignored (logged): nothing in flight is dropped;
 * - an uncaught exception or unhandled rejection is logged as fatal and the process exits 1. The
 *   failure is injected by a test-only preload module (test/fixtures/crash-on-signal.mjs), so the
 *   product has no hook for it;
 * - the admin listener answers a request that arrives after shutdown began with 503.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { stringify } from 'yaml';
import { drainAdmin } from '../../src/controlplane/admin/drain.js';
import { send, startUpstream, type Reply, type Upstream } from '../helpers/harness.js';

const CLI = 'dist/cli.js';
const dir = mkdtempSync(join(tmpdir(), 'ipgate-lifecycle-'));
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createNetServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Polls a condition the test is waiting on (no timing is asserted: the test timeout bounds it). */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Resolves with 'connected', or with the error code of a refused connection. */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

interface Child {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly port: number;
  readonly adminPort: number;
  readonly exited: Promise<number | null>;
  events(name: string): Record<string, unknown>[];
}

/** `node [nodeArgs] dist/cli.js start` on a one-proxy config in front of `upstreamUrl`; resolves once it has started. */
async function startChild(upstreamUrl: string, opts: { env?: Record<string, string>; nodeArgs?: string[] } = {}): Promise<Child> {
  const port = await freePort();
  const adminPort = await freePort();
  const file = join(dir, `gw-${port}.yaml`);
  writeFileSync(
    file,
    stringify({
      listen: `127.0.0.1:${port}`,
      admin: { listen: `127.0.0.1:${adminPort}` },
      projects: [
        {
          name: 'p',
          apiProxies: [
            {
              name: 'api',
              basePath: '/api',
              upstream: { url: upstreamUrl },
              policies: [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'local', ipList: ['127.0.0.0/8'] } }],
            },
          ],
        },
      ],
    }),
  );
  const proc = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, 'start', '--config', file], { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  proc.stdout.on('data', (c: Buffer) => {
    const parts = (partial + c.toString('utf8')).split('\n');
    partial = parts.pop()!;
    for (const l of parts) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
  });
  let stderr = '';
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  // 'close', not 'exit': only then has all of its stdout been read, the last log lines included.
  const exited = new Promise<number | null>((resolve) => proc.once('close', (code) => resolve(code)));
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  const child: Child = { proc, port, adminPort, exited, events: (name) => lines.filter((l) => l.event === name) };
  await Promise.race([
    until('the gateway to start', () => child.events('started').length > 0),
    exited.then((code) => {
      throw new Error(`gateway exited ${code} before starting: ${stderr}`);
    }),
  ]);
  return child;
}

/** A hand-driven keep-alive connection: the test sees exactly what the gateway sends, and when it closes. */
class RawConnection {
  readonly socket: Socket;
  text = '';
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.socket = connect({ host: '127.0.0.1', port });
    this.socket.on('data', (c: Buffer) => (this.text += c.toString('utf8')));
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()));
    cleanups.push(() => void this.socket.destroy());
  }

  get(path: string): void {
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  }
}

/** An upstream that answers /fast at once and holds every /slow request until release(). */
async function slowUpstream(): Promise<{ upstream: Upstream; held: ServerResponse[]; release(): void }> {
  const held: ServerResponse[] = [];
  const upstream = await startUpstream((req, res) => {
    if (req.url?.startsWith('/slow')) held.push(res);
    else res.end('fast');
  });
  cleanups.push(() => upstream.close());
  return {
    upstream,
    held,
    release: () => {
      for (const res of held) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`done:${res.req.url}`);
      }
    },
  };
}

describe('graceful shutdown of ipgate start', () => {
  it('SIGTERM: requests in flight to a slow upstream all complete with 200; new connections are refused; exit 0', async () => {
    const { upstream, held, release } = await slowUpstream();
    const gw = await startChild(upstream.url);

    // An idle keep-alive connection, and a keep-alive connection with a request in flight.
    const idle = new RawConnection(gw.port);
    idle.get('/api/fast');
    await until('the idle connection to get its answer', () => idle.text.endsWith('fast'));
    const busy = new RawConnection(gw.port);
    busy.get('/api/slow/keep-alive');
    // Five more on their own connections.
    const inFlight: Promise<Reply>[] = [];
    for (let i = 0; i < 5; i++) {
      const reply = send(gw.port, `/api/slow/${i}`);
      reply.catch(() => undefined); // awaited below; this only keeps an early failure from also reporting these
      inFlight.push(reply);
    }
    await until('six requests to reach the upstream', () => held.length === 6);

    gw.proc.kill('SIGTERM');
    await until('the shutdown log line', () => gw.events('shutdown').length > 0);
    // Both listeners stopped accepting at once.
    expect(await tryConnect(gw.port)).toBe('ECONNREFUSED');
    expect(await tryConnect(gw.adminPort)).toBe('ECONNREFUSED');
    // The idle keep-alive connection is closed now, while the others are still waiting.
    await idle.closed;

    release();
    const replies = await Promise.all(inFlight);
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(replies.map((r) => r.text)).toEqual([0, 1, 2, 3, 4].map((i) => `done:/slow/${i}`));
    // The keep-alive request in flight got its answer, told the connection closes after it, and it did.
    await busy.closed;
    expect(busy.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(busy.text).toMatch(/\r\nconnection: close\r\n/i);
    expect(busy.text).toContain('done:/slow/keep-alive');

    expect(await gw.exited).toBe(0);
    expect(gw.events('shutdown')[0]).toMatchObject({ signal: 'SIGTERM', drainTimeoutMs: 30000 });
    expect(gw.events('drain_timeout')).toEqual([]);
    expect(gw.events('stopped')[0]).toMatchObject({ drained: true });
  });

  it('SIGHUP: ignored and logged; the request in flight completes and the process keeps serving', async () => {
    const { upstream, held, release } = await slowUpstream();
    const gw = await startChild(upstream.url);
    const reply = send(gw.port, '/api/slow/hup');
    reply.catch(() => undefined);
    await until('the request to reach the upstream', () => held.length === 1);
    gw.proc.kill('SIGHUP');
    await until('the signal_ignored log line', () => gw.events('signal_ignored').length > 0);
    release();
    const r = await reply;
    expect(r.status).toBe(200);
    expect(r.text).toBe('done:/slow/hup');
    expect(gw.proc.exitCode).toBeNull();
    expect((await send(gw.port, '/api/fast')).status).toBe(200);
    expect(gw.events('signal_ignored')[0]).toMatchObject({ signal: 'SIGHUP' });
    gw.proc.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
  });

  it('SIGINT: a WebSocket keeps working while the gateway drains, is closed at the drain timeout, and the process exits 0', async () => {
    const http = createHttpServer((_req, res) => res.end('plain'));
    const wss = new WebSocketServer({ server: http });
    wss.on('connection', (ws) => ws.on('message', (m: Buffer) => ws.send(`echo:${m.toString('utf8')}`)));
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const c of wss.clients) c.terminate();
          wss.close();
          http.closeAllConnections();
          http.close(() => r());
        }),
    );
    const gw = await startChild(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, { env: { IPGATE_DRAIN_TIMEOUT_MS: '3000' } });

    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}/api/socket`);
    const messages: string[] = [];
    ws.on('message', (d: Buffer) => messages.push(d.toString('utf8')));
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send('before');
    await until('the first echo', () => messages.length === 1);

    gw.proc.kill('SIGINT');
    await until('the shutdown log line', () => gw.events('shutdown').length > 0);
    expect(await tryConnect(gw.port)).toBe('ECONNREFUSED');
    // Still spliced through while the gateway drains.
    ws.send('during');
    await until('the second echo', () => messages.length === 2);
    expect(messages).toEqual(['echo:before', 'echo:during']);

    // Nothing else is in flight, so only the drain timeout ends it.
    await closed;
    expect(await gw.exited).toBe(0);
    expect(gw.events('shutdown')[0]).toMatchObject({ signal: 'SIGINT', drainTimeoutMs: 3000 });
    expect(gw.events('drain_timeout')[0]).toMatchObject({ destroyedConnections: 1 });
    expect(gw.events('stopped')[0]).toMatchObject({ drained: false });
  });
});

describe('fatal errors in ipgate start', () => {
  for (const kind of ['uncaughtException', 'unhandledRejection'] as const) {
    it(`${kind}: logged as fatal (flushed before exit), and the process exits 1`, async () => {
      const { upstream } = await slowUpstream();
      const gw = await startChild(upstream.url, {
        nodeArgs: ['--import', './test/fixtures/crash-on-signal.mjs'],
        env: { CRASH_KIND: kind === 'unhandledRejection' ? 'rejection' : 'exception' },
      });
      expect((await send(gw.port, '/api/fast')).status).toBe(200);
      gw.proc.kill('SIGUSR2');
      expect(await gw.exited).toBe(1);
      const crash = gw.events('crash');
      expect(crash).toHaveLength(1);
      expect(crash[0]).toMatchObject({ level: 60, kind });
      expect(String(crash[0]!.err)).toContain(`boom: ${kind}`);
      // It died rather than draining: no orderly stop was logged.
      expect(gw.events('stopped')).toEqual([]);
    });
  }
});

describe('admin listener during shutdown', () => {
  it('a request arriving after shutdown began gets 503; the one already running finishes', async () => {
    let release: (() => void) | null = null;
    const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
      release = () => res.end(`ran:${req.url}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const conn = new RawConnection(port);
    conn.get('/first');
    await until('the first request to run', () => release !== null);

    const drained = drainAdmin(server, 30_000);
    let lateSeen = false;
    server.on('request', () => (lateSeen = true));
    expect(await tryConnect(port)).toBe('ECONNREFUSED');
    // A second request on the open connection: refused, not run.
    conn.get('/second');
    await until('the second request to arrive', () => lateSeen);
    release!();
    await conn.closed;
    expect(conn.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*ran:\/first/);
    expect(conn.text).not.toContain('ran:/second');
    const second = conn.text.slice(conn.text.indexOf('ran:/first') + 'ran:/first'.length);
    expect(second).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(JSON.parse(second.slice(second.indexOf('\r\n\r\n') + 4))).toEqual({
      success: false,
      error: 'SERVICE_UNAVAILABLE',
      error_description: 'the gateway is shutting down',
      details: [],
    });
    expect(await drained).toEqual({ timedOut: false, destroyed: 0 });
  });
});
