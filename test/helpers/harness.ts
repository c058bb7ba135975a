/**
 * Integration-test harness: a real upstream and a real gateway on port 0, and clients that bind
 * their socket to a chosen loopback address (127.0.0.2, 127.0.0.3, ...) so requests really come
 * from different client IPs. Nothing here mocks a gateway component.
 */
import type { Clock } from '../../src/clock.js';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { launchGateway, type RunningGateway } from '../../src/launch.js';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

export interface Upstream {
  readonly url: string;
  readonly port: number;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** Default upstream behaviour: 200 with a JSON echo of what arrived. */
export const echoHandler: UpstreamHandler = (req, res, body) => {
  const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes: body.length, bodySha256: createHash('sha256').update(body).digest('hex') });
  res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
  res.end(out);
};

export async function startUpstream(handler: UpstreamHandler = echoHandler): Promise<Upstream> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Collects the gateway's JSON log lines. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    cb();
  }
  events(name: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.event === name);
  }
}

export interface TestGateway {
  readonly gateway: RunningGateway;
  readonly port: number;
  readonly logs: LogCapture;
  close(): Promise<void>;
}

/** Start a gateway from a config object (written as YAML, so the real loader validates it). */
export async function startGateway(config: Record<string, unknown>, opts: { clock?: Clock; env?: Record<string, string> } = {}): Promise<TestGateway> {
  // A clock cannot cross into the control-plane thread: a test that drives one runs the control plane inline.
  const mode = opts.clock === undefined ? {} : { controlPlane: 'inline' };
  const text = stringify({ listen: '127.0.0.1:0', log: { level: 'info' }, admin: { listen: '127.0.0.1:0' }, ...mode, ...config });
  const parsed = parseConfigText(text, 'test-config.yaml', opts.env ?? {});
  const logs = new LogCapture();
  const gateway = await launchGateway({ config: parsed, logStream: logs, clock: opts.clock, processMetrics: false });
  return { gateway, port: gateway.trafficAddress.port, logs, close: () => gateway.close() };
}

/** A one-proxy config: project "p", proxy "api" at `basePath` in front of `upstreamUrl`. */
export function oneProxy(upstreamUrl: string, policies: unknown[], extra: { basePath?: string; proxy?: Record<string, unknown>; gateway?: Record<string, unknown>; ipGroups?: unknown[] } = {}): Record<string, unknown> {
  return {
    ...extra.gateway,
    projects: [
      {
        name: 'p',
        ipGroups: extra.ipGroups ?? [],
        apiProxies: [{ name: 'api', basePath: extra.basePath ?? '/api', upstream: { url: upstreamUrl }, environments: ['production'], policies, ...extra.proxy }],
      },
    ],
  };
}

/** A REQUEST-pipeline, proxy-wide policy binding. */
export function policy(type: 'policy-white-ip' | 'policy-black-ip', name: string, ipList: string[], more: Record<string, unknown> = {}, meta: Record<string, unknown> = {}): unknown {
  return {
    operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', ...meta },
    policy: { type, name, ipList, ...more },
  };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json(): any;
}

export interface SendOptions {
  method?: string;
  headers?: Record<string, string | string[]> | [string, string][];
  body?: Buffer | string;
  /** Source address of the client socket: 127.0.0.1 (default), 127.0.0.2, ... */
  from?: string;
  host?: string;
}

/** One HTTP/1.1 request over a fresh socket bound to `from`. */
export function send(port: number, path: string, opts: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // Pairs become array values, which Node sends as repeated header lines, in order.
    const headers: Record<string, string | string[]> = {};
    if (Array.isArray(opts.headers)) {
      for (const [k, v] of opts.headers) {
        const prev = headers[k];
        headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
    } else Object.assign(headers, opts.headers);
    // Node frames a GET/DELETE body only when told its length.
    if (opts.body !== undefined && !Object.keys(headers).some((k) => k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding')) {
      headers['content-length'] = String(Buffer.byteLength(opts.body));
    }
    const req = httpRequest({
      host: opts.host ?? '127.0.0.1',
      port,
      path,
      method: opts.method ?? 'GET',
      headers,
      localAddress: opts.from ?? '127.0.0.1',
      agent: false,
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const text = body.toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json: () => JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}

/** Writes raw bytes and returns everything the server sent until it closed the connection. */
export function sendRaw(port: number, raw: string, from = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, localAddress: from });
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    s.on('error', reject);
    s.write(raw);
  });
}

/** Status code of a raw HTTP response text. */
export function rawStatus(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

/** The JSON fault of a raw response text. */
export function rawFault(text: string): { faultCode: string; faultStatusCode: number; correlationId: string; faultString: string } {
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  return (JSON.parse(body) as { fault: { faultCode: string; faultStatusCode: number; correlationId: string; faultString: string } }).fault;
}
