/**
 * WebSocket forwarding: the REQUEST pipeline decides before any upstream handshake; an allowed
 * client gets a working, spliced connection; a denied one gets the HTTP 403 fault and the upstream
 * never hears of it; an unreachable upstream is a 502.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { policy, rawFault, rawStatus, sendRaw, startGateway, type TestGateway } from '../helpers/harness.js';

interface Refused {
  status: number;
  body: string;
}

/** Open a client socket; resolves with the open socket, or with the HTTP answer that refused it. */
function connectWs(port: number, path: string, from: string): Promise<WebSocket | Refused> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { localAddress: from });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        ws.terminate();
      });
    });
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data: Buffer) => resolve(data.toString('utf8')));
    ws.once('error', reject);
  });
}

function closeWs(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    ws.close();
  });
}

describe('WebSocket forwarding', () => {
  let http: Server;
  let wss: WebSocketServer;
  let gw: TestGateway;
  let upgrades = 0;
  let tcpConnections = 0;
  const seenPaths: string[] = [];
  const seenXff: (string | undefined)[] = [];

  beforeAll(async () => {
    http = createServer((_req, res) => res.end('plain'));
    http.on('connection', () => tcpConnections++);
    http.on('upgrade', () => upgrades++);
    wss = new WebSocketServer({ server: http });
    wss.on('connection', (sock, req) => {
      seenPaths.push(req.url ?? '');
      const xff = req.headers['x-forwarded-for'];
      seenXff.push(Array.isArray(xff) ? xff.join(',') : xff);
      sock.on('message', (data: Buffer) => sock.send(`echo:${data.toString('utf8')}`));
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const upUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

    // A port nothing listens on.
    const tmp = createServer();
    await new Promise<void>((r) => tmp.listen(0, '127.0.0.1', r));
    const deadUrl = `http://127.0.0.1:${(tmp.address() as AddressInfo).port}`;
    await new Promise<void>((r) => tmp.close(() => r()));

    const allow = [policy('policy-white-ip', 'ws-allow', ['127.0.0.1'])];
    gw = await startGateway({
      projects: [
        {
          name: 'p',
          apiProxies: [
            { name: 'api', basePath: '/api', upstream: { url: upUrl }, policies: allow },
            { name: 'down', basePath: '/down', upstream: { url: deadUrl }, policies: allow },
            {
              name: 'guarded',
              basePath: '/guarded',
              upstream: { url: upUrl },
              policies: [policy('policy-white-ip', 'ws-get', ['10.0.0.0/8'], {}, { targetScope: 'ENDPOINT', targetEndpoint: '/ws', targetEndpointHTTPMethod: 'GET' })],
            },
            { name: 'resp', basePath: '/resp', upstream: { url: upUrl }, policies: [policy('policy-white-ip', 'resp-only', ['10.0.0.0/8'], {}, { targetPipeline: 'RESPONSE' })] },
            { name: 'pfx', basePath: '/pfx', upstream: { url: `${upUrl}/v1` }, policies: allow },
          ],
        },
      ],
    });
  });
  afterAll(async () => {
    await gw.close();
    for (const c of wss.clients) c.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });

  it('round-trips messages for an allowed client', async () => {
    const ws = await connectWs(gw.port, '/api/ws?room=1', '127.0.0.1');
    expect(ws).toBeInstanceOf(WebSocket);
    const sock = ws as WebSocket;
    try {
      const reply = nextMessage(sock);
      sock.send('hello');
      expect(await reply).toBe('echo:hello');
      const second = nextMessage(sock);
      sock.send('again');
      expect(await second).toBe('echo:again');
    } finally {
      await closeWs(sock);
    }
    expect(seenPaths.at(-1)).toBe('/ws?room=1');
    expect(seenXff.at(-1)).toBe('127.0.0.1');
  });

  it('answers a denied client with the HTTP 403 fault, and the upstream never sees a connection', async () => {
    const upgradesBefore = upgrades;
    const tcpBefore = tcpConnections;
    const r = await connectWs(gw.port, '/api/ws', '127.0.0.2');
    expect(r).not.toBeInstanceOf(WebSocket);
    const refused = r as Refused;
    expect(refused.status).toBe(403);
    const fault = JSON.parse(refused.body).fault;
    expect(fault.faultCode).toBe('IP_NOT_ALLOWED');
    expect(fault.faultString).toBe('Client IP 127.0.0.2 is not allowed');
    expect(upgrades).toBe(upgradesBefore);
    expect(tcpConnections).toBe(tcpBefore);
  });

  it('answers 502 when the upstream is down', async () => {
    const r = await connectWs(gw.port, '/down/ws', '127.0.0.1');
    expect(r).not.toBeInstanceOf(WebSocket);
    const refused = r as Refused;
    expect(refused.status).toBe(502);
    expect(JSON.parse(refused.body).fault.faultCode).toBe('UPSTREAM_UNAVAILABLE');
  });

  it('denies before the upstream is consulted, even when the upstream is down', async () => {
    const r = (await connectWs(gw.port, '/down/ws', '127.0.0.2')) as Refused;
    expect(r.status).toBe(403);
  });

  const handshake = (method: string, path: string, protocol = 'websocket') =>
    `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: ${protocol}\r\n` +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

  it.each(['POST', 'PUT', 'DELETE', 'OPTIONS', 'PROPFIND'])('refuses a %s upgrade: a GET-scoped policy cannot be sidestepped, and the upstream never hears of it', async (method) => {
    const upgradesBefore = upgrades;
    const tcpBefore = tcpConnections;
    const raw = await sendRaw(gw.port, handshake(method, '/guarded/ws'));
    expect(rawStatus(raw)).toBe(400);
    expect(rawFault(raw).faultCode).toBe('UPGRADE_REFUSED');
    expect(rawFault(raw).faultString).toContain(method);
    expect(upgrades).toBe(upgradesBefore);
    expect(tcpConnections).toBe(tcpBefore);
    // The GET handshake meets the endpoint's policy.
    const get = await sendRaw(gw.port, handshake('GET', '/guarded/ws'));
    expect(rawStatus(get)).toBe(403);
    expect(rawFault(get).faultCode).toBe('IP_NOT_ALLOWED');
  });

  it('refuses an upgrade to anything but WebSocket (h2c included)', async () => {
    const upgradesBefore = upgrades;
    const raw = await sendRaw(gw.port, handshake('GET', '/api/ws', 'h2c'));
    expect(rawStatus(raw)).toBe(400);
    expect(rawFault(raw).faultCode).toBe('UPGRADE_REFUSED');
    expect(upgrades).toBe(upgradesBefore);
  });

  it('applies the RESPONSE pipeline to the upstream 101: a rejected client gets the 403 fault and not a byte of the connection', async () => {
    const upgradesBefore = upgrades;
    const raw = await sendRaw(gw.port, handshake('GET', '/resp/ws'));
    expect(rawStatus(raw)).toBe(403);
    expect(rawFault(raw).faultCode).toBe('IP_NOT_ALLOWED');
    expect(raw).not.toContain('101');
    // The upstream did accept: the RESPONSE pipeline runs on its answer.
    expect(upgrades).toBe(upgradesBefore + 1);
  });

  it('addresses the same upstream path as a plain request under an upstream path prefix', async () => {
    for (const [path, expected] of [
      ['/pfx', '/v1'],
      ['/pfx?x=1', '/v1?x=1'],
      ['/pfx/', '/v1/'],
      ['/pfx/ws', '/v1/ws'],
    ] as const) {
      const ws = await connectWs(gw.port, path, '127.0.0.1');
      expect(ws).toBeInstanceOf(WebSocket);
      await closeWs(ws as WebSocket);
      expect(seenPaths.at(-1), path).toBe(expected);
    }
  });
});
