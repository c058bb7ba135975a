/**
 * The admin listener (default 127.0.0.1:9090). Every /apiops route requires a bearer token;
 * viewers may read, admins may write. Errors use the one admin envelope (errors.ts).
 *
 * Outside /apiops, and without a token: /healthz and /readyz for orchestrators, which probe from
 * addresses an admin rarely knows (so the admin-access list does not apply to them either), and
 * /metrics for Prometheus, which the admin-access list does restrict: metrics name every project,
 * proxy and policy and show their traffic.
 */
import { listenOn } from '../../listen.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '../../observability/logger.js';
import type { Readiness } from '../../observability/readiness.js';
import { ResolvedIp, resolveDefault, type TrustFn } from '../../dataplane/client-ip.js';
import { allows, type Authenticator } from '../auth.js';
import type { AccessList } from './access.js';
import { AdminError } from './errors.js';
import { makeContext, Router, type Route } from './router.js';

export interface AdminServerOptions {
  readonly routes: readonly Route[];
  /** null when no token or JWT is configured: every /apiops request is then refused (fail closed). */
  readonly auth: Authenticator | null;
  readonly log: Logger;
  /** The gateway's trusted proxies, so an admin API behind a proxy sees real caller addresses. */
  readonly trust: TrustFn;
  /** The current admin-access allowlist. */
  readonly access: () => AccessList;
  /** The gateway's metrics, served at /metrics. */
  readonly metrics: Registry;
  /** Readiness for /readyz: a snapshot in force and, if configured, the store open. */
  readonly ready: () => Readiness;
}

export class AdminServer {
  readonly server: Server;
  readonly router: Router;

  constructor(private readonly opts: AdminServerOptions) {
    this.router = new Router(opts.routes);
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.fail(res, err));
    });
  }

  listen(host: string, port: number): Promise<AddressInfo> {
    return listenOn(this.server, host, port);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const method = req.method ?? 'GET';
    if (url.pathname === '/healthz' || url.pathname === '/readyz') {
      this.probe(res, method, url.pathname);
      return;
    }
    const isMetrics = url.pathname === '/metrics';
    if (!isMetrics && !url.pathname.startsWith('/apiops/')) throw new AdminError('NOT_FOUND', `no admin route ${url.pathname}`);
    const xff = req.headers['x-forwarded-for'];
    const caller = resolveDefault(new ResolvedIp(), req.socket.remoteAddress, Array.isArray(xff) ? xff.join(', ') : xff, this.opts.trust);
    const callerIp = caller.family === 0 ? null : caller.display();
    // DigiCert-style account IP restriction: checked before credentials, so a stolen token is useless elsewhere.
    if (!this.opts.access().allows(callerIp)) {
      throw new AdminError('FORBIDDEN', `address ${callerIp ?? '(undeterminable)'} is not in the admin access list`);
    }
    if (isMetrics) {
      await this.serveMetrics(res, method);
      return;
    }
    if (this.opts.auth === null) throw new AdminError('UNAUTHORIZED', 'no admin credentials are configured (admin.tokens, admin.jwt or IPGATE_ADMIN_TOKEN)', [], { 'www-authenticate': 'Bearer' });
    const authn = await this.opts.auth.authenticate(req.headers.authorization);
    if (!authn.ok) throw new AdminError('UNAUTHORIZED', authn.description, [], { 'www-authenticate': 'Bearer' });
    const { route, params } = this.router.match(method, url.pathname);
    const p = authn.principal;
    // A route's `write` flag decides; without one, anything but GET needs the admin role.
    const needsAdmin = route.write ?? route.method !== 'GET';
    if (needsAdmin && !allows(p.role, route.method)) {
      throw new AdminError('FORBIDDEN', `role ${p.role} may not ${route.method} ${url.pathname}`);
    }
    const reply = await route.handler(makeContext(req, params, url.searchParams, p.actor, p.role, callerIp));
    const body = JSON.stringify(reply.body);
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' };
    if (reply.etag !== undefined) headers.etag = reply.etag;
    res.writeHead(reply.status ?? 200, headers);
    res.end(method === 'HEAD' ? undefined : body);
    if (route.method !== 'GET') this.opts.log.info({ event: 'admin_write', actor: p.actor, method, path: url.pathname, status: reply.status ?? 200 }, 'admin write');
  }

  /** /healthz: the process answers. /readyz: it may take traffic (503 with the reasons if not). */
  private probe(res: ServerResponse, method: string, path: string): void {
    readOnly(method, path);
    let status = 200;
    let body: unknown = { status: 'ok' };
    if (path === '/readyz') {
      const r = this.opts.ready();
      status = r.ready ? 200 : 503;
      body = { status: r.ready ? 'ready' : 'not_ready', reasons: r.reasons };
    }
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(method === 'HEAD' ? undefined : text);
  }

  /** Prometheus text exposition of the gateway's registry. */
  private async serveMetrics(res: ServerResponse, method: string): Promise<void> {
    readOnly(method, '/metrics');
    const text = await this.opts.metrics.metrics();
    res.writeHead(200, { 'content-type': this.opts.metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(method === 'HEAD' ? undefined : text);
  }

  private fail(res: ServerResponse, err: unknown): void {
    const e = err instanceof AdminError ? err : new AdminError('INTERNAL_ERROR', 'internal error');
    if (!(err instanceof AdminError)) this.opts.log.error({ event: 'admin_internal_error', err: (err as Error)?.stack ?? String(err) }, 'admin request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = e.toBody();
    // Drain nothing more from a request we refuse: close the connection after a 413.
    if (e.status === 413) res.shouldKeepAlive = false;
    res.writeHead(e.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...e.headers });
    res.end(body);
  }
}

/** The probes and /metrics answer GET and HEAD only. */
function readOnly(method: string, path: string): void {
  if (method !== 'GET' && method !== 'HEAD') throw new AdminError('METHOD_NOT_ALLOWED', `${path} allows GET and HEAD, not ${method}`, [], { allow: 'GET, HEAD' });
}
