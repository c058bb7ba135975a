/**
 * The data plane: the traffic listener, the active snapshot, and everything an Exchange shares.
 *
 * The active snapshot and its upstream pools live in one object that is replaced in a single
 * assignment by install(); every request reads it once at its start. The data plane never imports
 * the control plane: it receives compiled snapshots and nothing else.
 */
import { listenOn } from '../listen.js';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Pool } from 'undici';
import { AccessLog, type AccessLogOptions } from '../observability/access-log.js';
import type { CounterCell } from '../observability/bound-metrics.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { ProxyMetrics } from '../observability/proxy-metrics.js';
import type { CompiledPolicy, CompiledProxy, Snapshot } from '../policy/snapshot.js';
import { relativePath } from './route-table.js';
import { canonicalizeTarget } from './canonical-path.js';
import { createListener, type ProxyProtocolOptions, type TlsFiles } from './listener.js';
import type { TrustFn } from './client-ip.js';
import { PolicyResult, type Rejection } from './decide.js';
import { Exchange } from './exchange.js';
import { FAULTS, faultBody, type FaultCode } from './faults.js';
import type { DataPlaneLimits, DataPlaneShared, ExchangeInfo } from './shared.js';
import { UpstreamPools } from './upstream-pools.js';
import type { UpstreamErrorKind } from './upstream-errors.js';
import { handleUpgrade, upgradeRefusal } from './websocket.js';
import { ConnectionTracker, drainServer, type DrainResult } from '../lifecycle/drain.js';

export interface DataPlaneOptions {
  readonly trust: TrustFn;
  readonly limits: DataPlaneLimits;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly upstreamConnections?: number | undefined;
  /** log.access and log.sampleRate; denied-only when absent. */
  readonly accessLog?: AccessLogOptions | undefined;
  /** HTTPS with certificate reload; plain HTTP when absent. */
  readonly tls?: TlsFiles | null | undefined;
  /** PROXY protocol v1/v2 from trusted load balancers; off when absent. */
  readonly proxyProtocol?: ProxyProtocolOptions | null | undefined;
}

/** The snapshot and the pools bound to it: swapped together, in one assignment. */
export interface Active {
  readonly snapshot: Snapshot;
  readonly pools: readonly Pool[];
  /** Metric cells per policy and per proxy, bound once per install so the hot path never hashes labels. */
  readonly policyCounters: ReadonlyMap<CompiledPolicy, readonly CounterCell[]>;
  readonly proxyMetrics: ReadonlyMap<CompiledProxy, ProxyMetrics>;
}

export interface RoutedRequest {
  readonly proxy: CompiledProxy;
  readonly path: string;
  readonly relPath: string;
  readonly search: string;
}

export class RouteFailure {
  constructor(
    readonly code: FaultCode,
    readonly text: string,
  ) {}
}

const RESULT_LABELS = ['pass', 'reject', 'dry_run_reject', 'unresolved'] as const;

export class DataPlane implements DataPlaneShared {
  readonly trust: TrustFn;
  readonly limits: DataPlaneLimits;
  readonly server: Server;
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly pools: UpstreamPools;
  private readonly accessLog: AccessLog;
  private active: Active | null = null;
  /** Open connections, for a graceful drain (lifecycle/drain.ts). */
  private readonly connections: ConnectionTracker;

  constructor(opts: DataPlaneOptions) {
    this.trust = opts.trust;
    this.limits = opts.limits;
    this.log = opts.log;
    this.metrics = opts.metrics;
    this.pools = new UpstreamPools({ connections: opts.upstreamConnections ?? 256, keepAliveTimeoutMs: 4_000 });
    this.accessLog = new AccessLog(opts.log, opts.accessLog ?? { access: 'denied', sampleRate: 1 });
    this.server = createListener(
      // Host is checked in route(), so that its absence gets the JSON fault, not Node's bare 400.
      { http: { requireHostHeader: false }, tls: opts.tls ?? null, proxyProtocol: opts.proxyProtocol ?? null, log: opts.log },
      (req, res) => this.handle(req, res),
    );
    this.server.on('connection', (socket: Socket) => this.connectionOpened(socket));
    this.connections = new ConnectionTracker(this.server);
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket as Socket, head));
    // CONNECT (authority-form) is never forwarded. Without a listener Node would close the
    // connection without a word; with one, the client gets the fault.
    this.server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
      this.writeRawFault(socket as Socket, randomUUID(), 'BAD_REQUEST_TARGET', 400, 'Rejected request target: CONNECT (authority-form) is not accepted');
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      // Node's own parser rejected the request (bad header, oversized head): answer in our envelope.
      if (!socket.writable || err.code === 'ECONNRESET') {
        socket.destroy();
        return;
      }
      const id = randomUUID();
      const body = faultBody(id, 'BAD_REQUEST_TARGET', `Malformed HTTP request (${err.code ?? 'parse error'})`, 400);
      socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-correlation-id: ${id}\r\nconnection: close\r\n\r\n${body}`);
    });
  }

  /** Swap in a new snapshot. Requests already running keep the one they started with. */
  install(snapshot: Snapshot): void {
    const counters = new Map<CompiledPolicy, CounterCell[]>();
    const proxyMetrics = new Map<CompiledProxy, ProxyMetrics>();
    for (const proxy of snapshot.proxies) {
      proxyMetrics.set(proxy, new ProxyMetrics(this.metrics, proxy.name));
      for (const pipe of [proxy.request, proxy.response, proxy.error]) {
        if (pipe === null) continue;
        for (const p of [...pipe.proxyWide, ...pipe.endpoint]) counters.set(p, this.bindPolicy(p));
      }
    }
    this.active = { snapshot, pools: this.pools.bind(snapshot), policyCounters: counters, proxyMetrics };
  }

  private bindPolicy(p: CompiledPolicy): CounterCell[] {
    return RESULT_LABELS.map((result) => this.metrics.policyDecisions.cell({ project: p.projectName, proxy: p.proxyName, policy: p.name, result }));
  }

  /**
   * The cells of a request's proxy. A request that started under an older snapshot binds again
   * (cold path, only around a reload); the cells are shared by label set, so its counts still land
   * in the same series.
   */
  private proxyMetricsFor(proxy: CompiledProxy): ProxyMetrics {
    return this.active?.proxyMetrics.get(proxy) ?? new ProxyMetrics(this.metrics, proxy.name);
  }

  /** Per connection, not per request: the open-connections gauge. */
  private connectionOpened(socket: Socket): void {
    const gauge = this.metrics.openConnections;
    gauge.inc();
    socket.once('close', () => gauge.dec());
  }

  get snapshot(): Snapshot | null {
    return this.active?.snapshot ?? null;
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return listenOn(this.server, host, port);
  }

  /**
   * Graceful stop: stop accepting, let requests in flight finish (with `Connection: close`), and
   * destroy what is still open after `drainTimeoutMs`, upgraded connections included. Then close the
   * upstream pools, which lets their last requests finish.
   */
  async close(drainTimeoutMs = 30_000): Promise<DrainResult> {
    const r = await drainServer(this.server, { timeoutMs: drainTimeoutMs, tracker: this.connections });
    await this.pools.close();
    return r;
  }

  // ---- per request -----------------------------------------------------------------------------

  /** HOT PATH. */
  private handle(req: IncomingMessage, res: ServerResponse): void {
    const startedAt = performance.now();
    const correlationId = randomUUID();
    const active = this.active;
    if (active === null) {
      // Not ready: no snapshot means no policy, and no policy must never mean allow-all.
      this.writeFault(res, correlationId, 'NOT_READY', 503, 'Gateway has no policy snapshot loaded');
      return;
    }
    try {
      const route = this.route(req, active);
      if (route instanceof RouteFailure) {
        const status = FAULTS[route.code].status;
        this.writeFault(res, correlationId, route.code, status, route.text);
        this.metrics.requests.inc({ proxy: '', decision: 'error', status_class: `${String(status)[0]}xx` });
        return;
      }
      const proxy = route.proxy;
      new Exchange(this, proxy, active.pools[proxy.index]!, req, res, correlationId, route.path, route.relPath, route.search, startedAt).start();
    } catch (err) {
      this.internalError(res, correlationId, err);
    }
  }

  /** A bug must cost one request a 500, never the process and every other request with it. */
  internalError(res: ServerResponse, correlationId: string, err: unknown): void {
    this.log.error({ event: 'internal_error', correlationId, err: (err as Error)?.stack ?? String(err) }, 'unexpected error while handling a request');
    if (res.headersSent || res.destroyed) res.destroy();
    else this.writeFault(res, correlationId, 'INTERNAL_ERROR', 500, 'Internal gateway error');
  }

  /** Canonicalise the target and find its API proxy. */
  route(req: IncomingMessage, active: Active): RoutedRequest | RouteFailure {
    const t = canonicalizeTarget(req.url ?? '');
    if (!t.ok) return new RouteFailure('BAD_REQUEST_TARGET', `Rejected request target: ${t.reason}`);
    const host = req.headers.host;
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 (HTTP/1.0 may omit it).
    if (host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) {
      return new RouteFailure('BAD_REQUEST_TARGET', 'Rejected request: an HTTP/1.1 request must carry a Host header');
    }
    if (t.authority !== null && !sameAuthority(t.authority, host)) {
      return new RouteFailure('HOST_MISMATCH', `Request target authority ${t.authority} does not match Host ${host ?? '(none)'}`);
    }
    const r = active.snapshot.routes.match(host, t.path);
    if (r === null) return new RouteFailure('NO_ROUTE', `No API proxy matches ${t.path}`);
    return { proxy: r.value, path: t.path, relPath: relativePath(r, t.path), search: t.search };
  }

  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const active = this.active;
    const correlationId = randomUUID();
    if (active === null) {
      this.writeRawFault(socket, correlationId, 'NOT_READY', 503, 'Gateway has no policy snapshot loaded');
      return;
    }
    try {
      const route = this.route(req, active);
      if (route instanceof RouteFailure) {
        this.writeRawFault(socket, correlationId, route.code, FAULTS[route.code].status, route.text);
        return;
      }
      const refused = upgradeRefusal(req);
      if (refused !== null) {
        this.writeRawFault(socket, correlationId, 'UPGRADE_REFUSED', FAULTS.UPGRADE_REFUSED.status, refused);
        this.metrics.requests.inc({ proxy: route.proxy.name, decision: 'error', status_class: '4xx' });
        return;
      }
      handleUpgrade(this, route, active.pools[route.proxy.index]!, req, socket, head, correlationId);
    } catch (err) {
      this.internalSocketError(socket, correlationId, err);
    }
  }

  /** internalError for a connection that is no longer an HTTP response (an upgrade). */
  internalSocketError(socket: Socket, correlationId: string, err: unknown): void {
    this.log.error({ event: 'internal_error', correlationId, err: (err as Error)?.stack ?? String(err) }, 'unexpected error while handling an upgrade');
    this.writeRawFault(socket, correlationId, 'INTERNAL_ERROR', 500, 'Internal gateway error');
  }

  // ---- DataPlaneShared -------------------------------------------------------------------------

  countPolicy(p: CompiledPolicy, result: PolicyResult): void {
    (this.active?.policyCounters.get(p) ?? this.bindPolicy(p))[result]!.inc();
  }

  upstreamTimed(proxy: CompiledProxy, seconds: number): void {
    this.proxyMetricsFor(proxy).upstream.observe(seconds);
  }

  upstreamError(proxy: CompiledProxy, kind: UpstreamErrorKind, err: unknown): void {
    this.metrics.upstreamErrors.inc({ proxy: proxy.name, kind });
    const e = err as { code?: string; message?: string };
    this.log.warn({ event: 'upstream_error', proxy: proxy.name, upstream: proxy.upstream.origin, kind, code: e.code, err: e.message }, 'upstream request failed');
  }

  writeFault(res: ServerResponse, correlationId: string, code: string, status: number, text: string): void {
    const body = faultBody(correlationId, code, text, status);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-correlation-id': correlationId,
    });
    res.end(body);
  }

  writeRawFault(socket: Socket, correlationId: string, code: string, status: number, text: string): void {
    const body = faultBody(correlationId, code, text, status);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(
      `HTTP/1.1 ${status} ${statusText(status)}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `cache-control: no-store\r\nx-correlation-id: ${correlationId}\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  finished(
    ex: ExchangeInfo,
    proxy: CompiledProxy,
    status: number,
    decision: string,
    rejection: Rejection | null,
    dryRuns: readonly Rejection[] | null,
    req: IncomingMessage,
    startedAt: number,
  ): void {
    const seconds = (performance.now() - startedAt) / 1000;
    this.proxyMetricsFor(proxy).request(decision, status, seconds);
    // In the default denied-only mode an allowed request stops at this test.
    if (rejection !== null || dryRuns !== null || this.accessLog.logsAllowed || this.accessLog.logsErrors) {
      this.accessLog.record(ex, proxy, req, status, seconds, decision, rejection, dryRuns);
    }
  }
}

function stripDefaultPort(a: string): string {
  return a.endsWith(':80') || a.endsWith(':443') ? a.slice(0, a.lastIndexOf(':')) : a;
}

function sameAuthority(authority: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  return stripDefaultPort(authority) === stripDefaultPort(host.toLowerCase());
}

function statusText(status: number): string {
  switch (status) {
    case 400:
      return 'Bad Request';
    case 403:
      return 'Forbidden';
    case 404:
      return 'Not Found';
    case 413:
      return 'Payload Too Large';
    case 502:
      return 'Bad Gateway';
    case 503:
      return 'Service Unavailable';
    case 504:
      return 'Gateway Timeout';
    default:
      return 'Error';
  }
}
