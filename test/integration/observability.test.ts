/**
 * Logs, metrics and health over real HTTP: a real gateway and upstream, clients bound to
 * 127.0.0.x, /metrics scraped from the admin listener before and after traffic.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import proxyaddr from 'proxy-addr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { AccessList } from '../../src/controlplane/admin/access.js';
import { AdminServer } from '../../src/controlplane/admin/server.js';
import { DataPlane } from '../../src/dataplane/server.js';
import { compileConfig, configToState, type Gateway } from '../../src/main.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { readiness } from '../../src/observability/readiness.js';
import { LogCapture, policy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

const ADMIN = 'observability-admin-token-0123456789';

// ---- helpers ----------------------------------------------------------------------------------

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Prometheus text format → samples (comments skipped). */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

class Scrape {
  constructor(readonly samples: Sample[]) {}
  /** The sample with exactly these labels, or 0 when the series does not exist yet. */
  value(name: string, labels: Record<string, string> = {}): number {
    const want = JSON.stringify(Object.entries(labels).sort());
    const s = this.samples.find((x) => x.name === name && JSON.stringify(Object.entries(x.labels).sort()) === want);
    return s?.value ?? 0;
  }
}

async function scrape(gw: TestGateway, from = '127.0.0.1'): Promise<Scrape> {
  const r = await send(gw.gateway.adminAddress.port, '/metrics', { from });
  expect(r.status).toBe(200);
  return new Scrape(parseMetrics(r.text));
}

async function eventually<T>(fn: () => T | undefined | Promise<T | undefined>, ms = 3000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A port nothing listens on: bound once, then closed. */
async function deadPort(): Promise<number> {
  const s: Server = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * Project p:
 * - api (/api): allow 127.0.0.1 and 127.0.0.2; dry-run block of 127.0.0.2. So 127.0.0.1 is allowed,
 *   127.0.0.2 is dry-run denied (and forwarded), anyone else is denied;
 * - down (/down): allows loopback, upstream refuses connections (502);
 * - hdr (/hdr): the first policy reads X-Real-IP (believed from trusted loopback), the second the socket;
 * - open (/open): no policy at all.
 */
function gatewayConfig(upstreamUrl: string, downUrl: string, gateway: Record<string, unknown> = {}): Record<string, unknown> {
  const proxy = (name: string, basePath: string, url: string, policies: unknown[]) => ({ name, basePath, upstream: { url }, environments: ['production'], policies });
  return {
    ...gateway,
    projects: [
      {
        name: 'p',
        apiProxies: [
          proxy('api', '/api', upstreamUrl, [
            policy('policy-white-ip', 'allow-some', ['127.0.0.1', '127.0.0.2']),
            policy('policy-black-ip', 'dry-block', ['127.0.0.2'], { enforce: false }),
          ]),
          proxy('down', '/down', downUrl, [policy('policy-white-ip', 'allow-loopback', ['127.0.0.0/8'])]),
          proxy('hdr', '/hdr', upstreamUrl, [
            policy('policy-white-ip', 'by-header', ['203.0.113.0/24'], { targetVariableForIP: { type: 'HEADER', headerName: 'X-Real-IP' } }),
            policy('policy-white-ip', 'by-socket', ['127.0.0.0/8']),
          ]),
          proxy('open', '/open', upstreamUrl, []),
        ],
      },
    ],
  };
}

const accessLines = (gw: TestGateway) => gw.logs.events('access');
const lineFor = (gw: TestGateway, correlationId: unknown) => accessLines(gw).find((l) => l.correlationId === correlationId);

/**
 * Lines are written when a response finishes. To show that a request left no line, wait for a
 * later request's upstream_error line (logged in every mode) before looking.
 */
async function barrier(gw: TestGateway): Promise<void> {
  const before = gw.logs.events('upstream_error').length;
  expect((await send(gw.port, '/down/barrier')).status).toBe(502);
  await eventually(() => (gw.logs.events('upstream_error').length > before ? true : undefined));
}

// ---- tests ------------------------------------------------------------------------------------

let up: Upstream;
let down: string;

beforeAll(async () => {
  up = await startUpstream();
  down = `http://127.0.0.1:${await deadPort()}`;
});
afterAll(async () => {
  await up.close();
});

describe('metrics at /metrics, health and readiness (default access log: denied)', () => {
  let gw: TestGateway;
  const admin = (path: string, opts: Parameters<typeof send>[2] = {}) => send(gw.gateway.adminAddress.port, path, opts);

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-observability-'));
    gw = await startGateway(gatewayConfig(up.url, down, { store: { file: join(dir, 'store.json') } }), { env: { IPGATE_ADMIN_TOKEN: ADMIN } });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('counts allowed, denied, dry-run-denied and upstream-error requests, with their durations', async () => {
    const before = await scrape(gw);
    expect((await send(gw.port, '/api/a', { from: '127.0.0.1' })).status).toBe(200);
    expect((await send(gw.port, '/api/b', { from: '127.0.0.2' })).status).toBe(200);
    expect((await send(gw.port, '/api/c', { from: '127.0.0.3' })).status).toBe(403);
    expect((await send(gw.port, '/down/d', { from: '127.0.0.1' })).status).toBe(502);
    // The duration histograms are observed when the response finishes, possibly just after the client has it.
    const after = await eventually(async () => {
      const s = await scrape(gw);
      return s.value('ipgate_request_duration_seconds_count', { proxy: 'down' }) > before.value('ipgate_request_duration_seconds_count', { proxy: 'down' }) ? s : undefined;
    });
    const delta = (name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels);

    expect(delta('ipgate_requests_total', { proxy: 'api', decision: 'allowed', status_class: '2xx' })).toBe(1);
    expect(delta('ipgate_requests_total', { proxy: 'api', decision: 'dry_run_denied', status_class: '2xx' })).toBe(1);
    expect(delta('ipgate_requests_total', { proxy: 'api', decision: 'denied', status_class: '4xx' })).toBe(1);
    expect(delta('ipgate_requests_total', { proxy: 'down', decision: 'error', status_class: '5xx' })).toBe(1);

    expect(delta('ipgate_policy_decisions_total', { project: 'p', proxy: 'api', policy: 'allow-some', result: 'pass' })).toBe(2);
    expect(delta('ipgate_policy_decisions_total', { project: 'p', proxy: 'api', policy: 'allow-some', result: 'reject' })).toBe(1);
    expect(delta('ipgate_policy_decisions_total', { project: 'p', proxy: 'api', policy: 'dry-block', result: 'dry_run_reject' })).toBe(1);
    expect(delta('ipgate_policy_decisions_total', { project: 'p', proxy: 'api', policy: 'dry-block', result: 'pass' })).toBe(1);

    expect(delta('ipgate_request_duration_seconds_count', { proxy: 'api' })).toBe(3);
    expect(delta('ipgate_request_duration_seconds_count', { proxy: 'down' })).toBe(1);
    expect(delta('ipgate_request_duration_seconds_bucket', { proxy: 'api', le: '+Inf' })).toBe(3);
    expect(delta('ipgate_request_duration_seconds_sum', { proxy: 'api' })).toBeGreaterThan(0);
    // Upstream time: the two forwarded api requests, and the refused connection.
    expect(delta('ipgate_upstream_duration_seconds_count', { proxy: 'api' })).toBe(2);
    expect(delta('ipgate_upstream_duration_seconds_count', { proxy: 'down' })).toBe(1);
    expect(delta('ipgate_upstream_errors_total', { proxy: 'down', kind: 'connect' })).toBe(1);
  });

  it('reports the snapshot in force: reloads, revision and entries per policy', async () => {
    const s = await scrape(gw);
    const revision = gw.gateway.dataPlane.snapshot!.revision;
    expect(s.value('ipgate_snapshot_revision')).toBe(revision);
    expect(s.value('ipgate_reloads_total')).toBeGreaterThanOrEqual(1);
    expect(s.value('ipgate_reload_duration_seconds_count')).toBe(s.value('ipgate_reloads_total'));
    expect(s.value('ipgate_reload_failures_total')).toBe(0);
    expect(s.value('ipgate_policy_entries', { project: 'p', proxy: 'api', policy: 'allow-some' })).toBe(2);
    expect(s.value('ipgate_policy_entries', { project: 'p', proxy: 'api', policy: 'dry-block' })).toBe(1);
    expect(s.value('ipgate_policy_entries', { project: 'p', proxy: 'hdr', policy: 'by-header' })).toBe(1);
  });

  it('never uses a client IP or a path as a label value', async () => {
    expect((await send(gw.port, '/api/secret-path-q7x', { from: '127.0.0.3' })).status).toBe(403);
    expect((await send(gw.port, '/api/other-path-k2z', { from: '127.0.0.1', headers: { 'x-forwarded-for': '198.51.100.77' } })).status).toBe(403);
    expect((await send(gw.port, '/nowhere-path-m4w', { from: '127.0.0.4' })).status).toBe(404);
    const r = await send(gw.gateway.adminAddress.port, '/metrics');
    for (const leaked of ['secret-path-q7x', 'other-path-k2z', 'nowhere-path-m4w', '198.51.100.77', '127.0.0.3', '127.0.0.4']) expect(r.text).not.toContain(leaked);
    // Every label value comes from a bounded set: config names and fixed enums.
    const bounded: Record<string, ReadonlySet<string>> = {
      proxy: new Set(['api', 'down', 'hdr', 'open', '']),
      project: new Set(['p']),
      policy: new Set(['allow-some', 'dry-block', 'allow-loopback', 'by-header', 'by-socket']),
      decision: new Set(['allowed', 'denied', 'dry_run_denied', 'error']),
      status_class: new Set(['1xx', '2xx', '3xx', '4xx', '5xx']),
      result: new Set(['pass', 'reject', 'dry_run_reject', 'unresolved']),
      kind: new Set(['connect', 'reset', 'timeout']),
    };
    const samples = parseMetrics(r.text);
    expect(samples.length).toBeGreaterThan(0);
    for (const s of samples) {
      for (const [name, value] of Object.entries(s.labels)) {
        if (name === 'le') expect(value === '+Inf' || Number.isFinite(Number(value))).toBe(true);
        else expect(bounded[name]?.has(value), `${s.name} ${name}="${value}"`).toBe(true);
      }
    }
  });

  it('counts open connections on the traffic listener', async () => {
    const socket = connect({ host: '127.0.0.1', port: gw.port, localAddress: '127.0.0.1' });
    // A keep-alive request answered on the socket proves the server has accepted it.
    await new Promise<void>((resolve, reject) => {
      socket.once('data', () => resolve());
      socket.once('error', reject);
      socket.write('GET /api/held HTTP/1.1\r\nHost: gw\r\n\r\n');
    });
    expect((await scrape(gw)).value('ipgate_open_connections')).toBeGreaterThanOrEqual(1);
    socket.destroy();
    // Every other test connection was closed by now, so the gauge falls back to 0.
    await eventually(async () => ((await scrape(gw)).value('ipgate_open_connections') === 0 ? true : undefined));
  });

  it('serves /healthz, /readyz and /metrics without a token, GET and HEAD only', async () => {
    const h = await admin('/healthz');
    expect(h.status).toBe(200);
    expect(h.headers['content-type']).toBe('application/json');
    expect(h.json()).toEqual({ status: 'ok' });
    const r = await admin('/readyz');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ status: 'ready', reasons: [] });
    const m = await admin('/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(m.text).toContain('# TYPE ipgate_requests_total counter');
    const head = await admin('/readyz', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    const post = await admin('/healthz', { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    expect(post.json()).toMatchObject({ success: false, error: 'METHOD_NOT_ALLOWED' });
    // The admin API itself still wants a token.
    expect((await admin('/apiops/projects/')).status).toBe(401);
  });

  it('keeps the probes open to any address, and /metrics behind the admin-access list', async () => {
    const put = (ipList: string[]) =>
      admin('/apiops/admin-access/', { method: 'PUT', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify({ ipList }) });
    expect((await put(['127.0.0.1'])).status).toBe(200);
    try {
      expect((await admin('/healthz', { from: '127.0.0.5' })).status).toBe(200);
      expect((await admin('/readyz', { from: '127.0.0.5' })).status).toBe(200);
      const denied = await admin('/metrics', { from: '127.0.0.5' });
      expect(denied.status).toBe(403);
      expect(denied.json()).toMatchObject({ error: 'FORBIDDEN', error_description: 'address 127.0.0.5 is not in the admin access list' });
      expect((await admin('/metrics', { from: '127.0.0.1' })).status).toBe(200);
    } finally {
      expect((await put([])).status).toBe(200);
    }
  });

  it('logs a denied request with every access field', async () => {
    // A dot segment and an unreserved escape: the line carries the canonical path.
    const r = await send(gw.port, '/api/./x/%7Efoo?q=1', { from: '127.0.0.3', method: 'DELETE' });
    expect(r.status).toBe(403);
    const line = await eventually(() => lineFor(gw, r.headers['x-correlation-id']));
    expect(line).toMatchObject({
      event: 'access',
      method: 'DELETE',
      path: '/api/x/~foo',
      endpoint: '/x/~foo',
      project: 'p',
      proxy: 'api',
      status: 403,
      clientIp: '127.0.0.3',
      ipSource: 'socket',
      policy: 'allow-some',
      matchedEntry: null,
      decision: 'denied',
      faultCode: 'IP_NOT_ALLOWED',
      dryRun: false,
    });
    expect(typeof line.durationMs).toBe('number');
    expect(line.durationMs as number).toBeGreaterThanOrEqual(0);
  });

  it('logs a dry-run denial with its matched entry, and nothing for an allowed request', async () => {
    const dry = await send(gw.port, '/api/dry', { from: '127.0.0.2' });
    expect(dry.status).toBe(200);
    const line = await eventually(() => lineFor(gw, dry.headers['x-correlation-id']));
    expect(line).toMatchObject({ status: 200, clientIp: '127.0.0.2', ipSource: 'socket', policy: 'dry-block', matchedEntry: '127.0.0.2', decision: 'dry_run_denied', faultCode: 'IP_BLOCKED', dryRun: true });
    const ok = await send(gw.port, '/api/ok', { from: '127.0.0.1' });
    expect(ok.status).toBe(200);
    await barrier(gw);
    expect(lineFor(gw, ok.headers['x-correlation-id'])).toBeUndefined();
  });
});

describe('readiness before a snapshot is loaded', () => {
  it('answers 503 with the reason until a snapshot is installed, as the traffic listener does', async () => {
    const logs = new LogCapture();
    const log = createLogger({ level: 'info', stream: logs });
    const metrics = new Metrics({ processMetrics: false });
    const dataPlane = new DataPlane({ trust: proxyaddr.compile(['loopback']), limits: { requestBodyBytes: 1024, bodyBufferBytes: 1024 }, log, metrics });
    // The same readiness wiring as Gateway.startAdmin, on a data plane that has no snapshot yet.
    const adminServer = new AdminServer({
      routes: [],
      auth: null,
      log,
      trust: dataPlane.trust,
      access: () => new AccessList([]),
      metrics: metrics.registry,
      ready: readiness({ snapshotLoaded: () => dataPlane.snapshot !== null, storeOpen: null }),
    });
    const traffic = await dataPlane.listen('127.0.0.1', 0);
    const adminAddr = await adminServer.listen('127.0.0.1', 0);
    try {
      const notReady = await send(adminAddr.port, '/readyz');
      expect(notReady.status).toBe(503);
      expect(notReady.json()).toEqual({ status: 'not_ready', reasons: ['no policy snapshot is loaded'] });
      expect((await send(adminAddr.port, '/healthz')).status).toBe(200);
      expect((await send(traffic.port, '/api/x')).json().fault.faultCode).toBe('NOT_READY');
      expect((await send(adminAddr.port, '/metrics')).text).toContain('ipgate_snapshot_revision 0');

      const config = parseConfigText(`projects: [{ name: p, apiProxies: [{ name: api, basePath: /api, upstream: { url: "${up.url}" } }] }]`, 't.yaml');
      const compiled = compileConfig(config, configToState(config));
      if (!compiled.ok) throw new Error('compile failed');
      dataPlane.install(compiled.snapshot);
      const ready = await send(adminAddr.port, '/readyz');
      expect(ready.status).toBe(200);
      expect(ready.json()).toEqual({ status: 'ready', reasons: [] });
      expect((await send(traffic.port, '/api/x')).status).toBe(200);
    } finally {
      await adminServer.close();
      await dataPlane.close();
    }
  });
});

describe('access log: all, sampleRate 1', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway(gatewayConfig(up.url, down, { log: { access: 'all' } }));
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('logs an allowed request with the IP the first policy resolved, and its source', async () => {
    const r = await send(gw.port, '/hdr/x', { from: '127.0.0.1', headers: { 'x-real-ip': '203.0.113.9' } });
    expect(r.status).toBe(200);
    const line = await eventually(() => lineFor(gw, r.headers['x-correlation-id']));
    expect(line).toMatchObject({
      event: 'access',
      method: 'GET',
      path: '/hdr/x',
      endpoint: '/x',
      project: 'p',
      proxy: 'hdr',
      status: 200,
      clientIp: '203.0.113.9',
      ipSource: 'header',
      policy: null,
      matchedEntry: null,
      decision: 'allowed',
      faultCode: null,
      dryRun: false,
    });
    const xff = await send(gw.port, '/api/y', { from: '127.0.0.1', headers: { 'x-forwarded-for': '127.0.0.2' } });
    expect(xff.status).toBe(200);
    expect(await eventually(() => lineFor(gw, xff.headers['x-correlation-id']))).toMatchObject({ clientIp: '127.0.0.2', ipSource: 'xff', decision: 'dry_run_denied', dryRun: true });
  });

  it('logs the socket address for a proxy without policies, and gateway errors', async () => {
    const open = await send(gw.port, '/open/z', { from: '127.0.0.4' });
    expect(open.status).toBe(200);
    expect(await eventually(() => lineFor(gw, open.headers['x-correlation-id']))).toMatchObject({ proxy: 'open', clientIp: '127.0.0.4', ipSource: 'socket', policy: null, decision: 'allowed' });
    const failed = await send(gw.port, '/down/z', { from: '127.0.0.6' });
    expect(failed.status).toBe(502);
    expect(await eventually(() => lineFor(gw, failed.headers['x-correlation-id']))).toMatchObject({ proxy: 'down', status: 502, clientIp: '127.0.0.6', decision: 'error', faultCode: null });
  });
});

describe('access log: all, sampleRate 0', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway(gatewayConfig(up.url, down, { log: { access: 'all', sampleRate: 0 } }));
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('logs denied and dry-run-denied requests but no allowed one', async () => {
    const ok = await send(gw.port, '/api/ok', { from: '127.0.0.1' });
    const dry = await send(gw.port, '/api/dry', { from: '127.0.0.2' });
    const denied = await send(gw.port, '/api/no', { from: '127.0.0.3' });
    expect([ok.status, dry.status, denied.status]).toEqual([200, 200, 403]);
    expect(await eventually(() => lineFor(gw, denied.headers['x-correlation-id']))).toMatchObject({ decision: 'denied' });
    expect(await eventually(() => lineFor(gw, dry.headers['x-correlation-id']))).toMatchObject({ decision: 'dry_run_denied' });
    await barrier(gw);
    expect(lineFor(gw, ok.headers['x-correlation-id'])).toBeUndefined();
  });
});

describe('access log: off', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway(gatewayConfig(up.url, down), { env: { IPGATE_ACCESS_LOG: 'off' } });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('logs no access line, not even for a denial, while other events still go out', async () => {
    expect((await send(gw.port, '/api/no', { from: '127.0.0.3' })).status).toBe(403);
    expect((await send(gw.port, '/api/dry', { from: '127.0.0.2' })).status).toBe(200);
    await barrier(gw);
    expect(accessLines(gw)).toEqual([]);
  });
});

describe('reload metrics and log (control plane inline, where apply() is reachable)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ ...gatewayConfig(up.url, down), controlPlane: 'inline' });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('counts installs and failed compiles, and logs each install with its duration and entries', async () => {
    const before = await scrape(gw);
    const started = gw.logs.events('snapshot_installed');
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ revision: 1, entries: 6 });
    expect(typeof started[0]!.durationMs).toBe('number');

    // A reload of a changed state: one more allow entry in allow-some.
    const config = parseConfigText(JSON.stringify(gatewayConfig(up.url, down)), 't.yaml');
    const state = configToState(config, 2);
    state.projects[0]!.apiProxies[0]!.policies[0]!.policy.ipList!.push('127.0.0.7');
    expect((gw.gateway as Gateway).apply(state).ok).toBe(true);
    expect((await send(gw.port, '/api/now-allowed', { from: '127.0.0.7' })).status).toBe(200);
    // A reload whose compile fails: an IP group that does not exist.
    const bad = configToState(config, 3);
    bad.projects[0]!.apiProxies[0]!.policies[0]!.policy.ipGroupIdList = ['no-such-group'];
    expect((gw.gateway as Gateway).apply(bad).ok).toBe(false);

    const after = await scrape(gw);
    expect(after.value('ipgate_reloads_total') - before.value('ipgate_reloads_total')).toBe(1);
    expect(after.value('ipgate_reload_failures_total') - before.value('ipgate_reload_failures_total')).toBe(1);
    expect(after.value('ipgate_reload_duration_seconds_count') - before.value('ipgate_reload_duration_seconds_count')).toBe(1);
    expect(after.value('ipgate_snapshot_revision')).toBe(2);
    expect(after.value('ipgate_policy_entries', { project: 'p', proxy: 'api', policy: 'allow-some' })).toBe(3);
    const installed = gw.logs.events('snapshot_installed');
    expect(installed).toHaveLength(2);
    expect(installed[1]).toMatchObject({ revision: 2, entries: 7 });
    expect(gw.logs.events('compile_failed')).toHaveLength(1);
  });
});
