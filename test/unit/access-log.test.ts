/**
 * Access-log modes and sampling, with a scripted random source (the integration test covers the
 * modes end to end; sampling rates between 0 and 1 need a deterministic draw), the config keys
 * behind them, and header redaction in the logger.
 */
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../src/config/load.js';
import { ResolvedIp, resolveDefault } from '../../src/dataplane/client-ip.js';
import { Rejection } from '../../src/dataplane/decide.js';
import { compileConfig, configToState } from '../../src/main.js';
import { AccessLog, type AccessLogOptions, type AccessLogRequest } from '../../src/observability/access-log.js';
import { createLogger } from '../../src/observability/logger.js';
import { readiness } from '../../src/observability/readiness.js';
import type { CompiledProxy } from '../../src/policy/snapshot.js';
import { LogCapture } from '../helpers/harness.js';

const CONFIG = `
projects:
  - name: p
    apiProxies:
      - name: api
        basePath: /api
        upstream: { url: "http://127.0.0.1:1" }
        policies:
          - operationMetadata: { targetScope: ALL, targetPipeline: REQUEST }
            policy: { type: policy-white-ip, name: allow-local, ipList: [127.0.0.0/8] }
`;

function compiledProxy(): CompiledProxy {
  const config = parseConfigText(CONFIG, 't.yaml');
  const r = compileConfig(config, configToState(config));
  if (!r.ok) throw new Error('compile failed');
  return r.snapshot.proxies[0]!;
}

const proxy = compiledProxy();
const socketIp = (addr: string) => resolveDefault(new ResolvedIp(), addr, undefined, () => false);
const req = { method: 'GET', socket: { remoteAddress: '127.0.0.9' } } as unknown as IncomingMessage;
const request = (id: string): AccessLogRequest => ({ correlationId: id, path: '/api/x', relPath: '/x', methodBit: 1, ipFor: () => socketIp('127.0.0.9') });
const denial = () => new Rejection(proxy.request!.proxyWide[0]!, 'IP_NOT_ALLOWED', 403, 'no', socketIp('10.0.0.1'), null);

function accessLog(opts: AccessLogOptions): { log: AccessLog; lines: LogCapture } {
  const lines = new LogCapture();
  return { log: new AccessLog(createLogger({ level: 'info', stream: lines }), opts), lines };
}

describe('access log sampling', () => {
  it('in all mode logs the allowed requests whose draw is below sampleRate, and every denial without drawing', () => {
    const draws = [0.1, 0.6, 0.4, 0.5, 0.9];
    let drawn = 0;
    const { log, lines } = accessLog({ access: 'all', sampleRate: 0.5, random: () => draws[drawn++]! });
    for (let i = 0; i < draws.length; i++) {
      log.record(request(`allowed-${i}`), proxy, req, 200, 0.001, 'allowed', null, null);
      log.record(request(`denied-${i}`), proxy, req, 403, 0.001, 'denied', denial(), null);
      log.record(request(`dry-${i}`), proxy, req, 200, 0.001, 'dry_run_denied', null, [denial()]);
      log.record(request(`error-${i}`), proxy, req, 502, 0.001, 'error', null, null);
    }
    const ids = lines.events('access').map((l) => l.correlationId as string);
    expect(ids.filter((id) => id.startsWith('allowed-'))).toEqual(['allowed-0', 'allowed-2']);
    expect(ids.filter((id) => id.startsWith('denied-'))).toHaveLength(5);
    expect(ids.filter((id) => id.startsWith('dry-'))).toHaveLength(5);
    expect(ids.filter((id) => id.startsWith('error-'))).toHaveLength(5);
    // Only allowed requests drew.
    expect(drawn).toBe(5);
  });

  it('denied mode logs denials only and never draws; off logs nothing', () => {
    let drawn = 0;
    const random = () => {
      drawn++;
      return 0;
    };
    const denied = accessLog({ access: 'denied', sampleRate: 1, random });
    const off = accessLog({ access: 'off', sampleRate: 1, random });
    for (const { log } of [denied, off]) {
      log.record(request('a'), proxy, req, 200, 0.001, 'allowed', null, null);
      log.record(request('e'), proxy, req, 502, 0.001, 'error', null, null);
      log.record(request('d'), proxy, req, 403, 0.001, 'denied', denial(), null);
    }
    expect(denied.lines.events('access').map((l) => l.correlationId)).toEqual(['d']);
    expect(off.lines.events('access')).toEqual([]);
    expect(drawn).toBe(0);
    expect(denied.log.logsAllowed).toBe(false);
  });

  it('sampleRate 0 in all mode turns allowed lines off entirely', () => {
    const { log } = accessLog({ access: 'all', sampleRate: 0 });
    expect(log.logsAllowed).toBe(false);
    expect(log.logsDenied).toBe(true);
  });
});

describe('access log config', () => {
  it('defaults to denied with sampleRate 1', () => {
    expect(parseConfigText('{}', 't.yaml').log).toEqual({ level: 'info', access: 'denied', sampleRate: 1 });
  });

  it('takes log.access and log.sampleRate from the file and from IPGATE_ACCESS_LOG / IPGATE_ACCESS_LOG_SAMPLE_RATE', () => {
    expect(parseConfigText('log: { access: all, sampleRate: 0.25 }', 't.yaml').log).toMatchObject({ access: 'all', sampleRate: 0.25 });
    expect(parseConfigText('log: { access: all }', 't.yaml', { IPGATE_ACCESS_LOG: 'off', IPGATE_ACCESS_LOG_SAMPLE_RATE: '0.1' }).log).toMatchObject({ access: 'off', sampleRate: 0.1 });
  });

  it('names the key, or the variable, of a bad value', () => {
    const issues = (text: string, env: Record<string, string> = {}) => {
      try {
        parseConfigText(text, 't.yaml', env);
      } catch (err) {
        return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
      }
      throw new Error('expected a ConfigError');
    };
    expect(issues('log: { access: some }')).toContainEqual(expect.stringMatching(/^log\.access: .*"some"/));
    expect(issues('log: { sampleRate: 1.5 }')).toContainEqual(expect.stringMatching(/^log\.sampleRate: .*1\.5/));
    expect(issues('{}', { IPGATE_ACCESS_LOG_SAMPLE_RATE: 'half' })).toContainEqual(expect.stringMatching(/^log\.sampleRate: .*IPGATE_ACCESS_LOG_SAMPLE_RATE/));
  });
});

describe('logger redaction', () => {
  it('redacts Authorization, Cookie and Set-Cookie wherever a header map is logged', () => {
    const lines = new LogCapture();
    const log = createLogger({ level: 'info', stream: lines });
    log.info({
      event: 'h',
      req: { headers: { authorization: 'Bearer secret-1', cookie: 'sid=secret-2', accept: 'x' } },
      res: { headers: { 'set-cookie': 'sid=secret-3' } },
      headers: { authorization: 'Basic secret-4', cookie: 'secret-5', 'set-cookie': 'secret-6' },
    });
    const text = JSON.stringify(lines.lines);
    expect(text).not.toMatch(/secret-/);
    expect(lines.events('h')[0]).toMatchObject({ req: { headers: { authorization: '[redacted]', cookie: '[redacted]', accept: 'x' } }, res: { headers: { 'set-cookie': '[redacted]' } } });
  });
});

describe('readiness', () => {
  it('names every reason it is not ready', () => {
    let snapshot = false;
    let store = false;
    const ready = readiness({ snapshotLoaded: () => snapshot, storeOpen: () => store });
    expect(ready()).toEqual({ ready: false, reasons: ['no policy snapshot is loaded', 'the policy store is not open'] });
    snapshot = true;
    expect(ready()).toEqual({ ready: false, reasons: ['the policy store is not open'] });
    store = true;
    expect(ready()).toEqual({ ready: true, reasons: [] });
    expect(readiness({ snapshotLoaded: () => true, storeOpen: null })()).toEqual({ ready: true, reasons: [] });
  });
});

describe('access line serialisation', () => {
  it('writes byte for byte what pino writes for the same fields, for every kind of line, child bindings and awkward strings', () => {
    const raw: string[] = [];
    const stream = { write: (s: string) => void raw.push(s) };
    const base = createLogger({ level: 'info', stream });
    // A child logger, as a cluster worker's has bindings of its own.
    const logger = base.child({ worker: 3 });
    const access = new AccessLog(logger, { access: 'all', sampleRate: 1 });
    const strange = ['/api/ü/\u2028', '/x"y\\z', '/\u0000\u001f', '/\ud800lone', '/' + 'a'.repeat(60) + '"'];
    const cases: [AccessLogRequest, IncomingMessage, number, number, string, Rejection | null, Rejection[] | null][] = [];
    for (const path of strange) {
      const ex: AccessLogRequest = { correlationId: 'c-' + path.length, path, relPath: path.slice(4), methodBit: 1, ipFor: () => socketIp('127.0.0.9') };
      const r = { method: 'GE"T', socket: { remoteAddress: '127.0.0.9' } } as unknown as IncomingMessage;
      cases.push([ex, r, 200, 0.0012345, 'allowed', null, null]);
      cases.push([ex, r, 403, 0.5, 'denied', denial(), null]);
      cases.push([ex, r, 200, 1 / 3, 'dry_run_denied', null, [denial()]]);
      cases.push([ex, r, 502, 2, 'error', null, null]);
    }
    const unresolved = new Rejection(proxy.request!.proxyWide[0]!, 'CLIENT_IP_UNRESOLVED', 403, 'no', new ResolvedIp(), null);
    cases.push([request('u'), req, 403, 0.001, 'denied', unresolved, null]);
    const withEntry = new Rejection(proxy.request!.proxyWide[0]!, 'IP_BLOCKED', 403, 'no', socketIp('10.0.0.1'), '10.0.0.0/8');
    cases.push([request('w'), req, 403, 0.001, 'denied', withEntry, null]);
    let compared = 0;
    for (const [ex, r, status, seconds, decision, rejection, dryRuns] of cases) {
      raw.length = 0;
      access.record(ex, proxy, r, status, seconds, decision, rejection, dryRuns);
      expect(raw).toHaveLength(1);
      const ours = raw[0]!;
      // The same record through pino: the fields as AccessLog passed them before it serialised itself.
      const decided = rejection ?? dryRuns?.[0] ?? null;
      const ip = decided !== null ? decided.ip : socketIp('127.0.0.9');
      raw.length = 0;
      logger.info(
        {
          event: 'access',
          correlationId: ex.correlationId,
          method: r.method,
          path: ex.path,
          endpoint: ex.relPath,
          project: proxy.projectName,
          proxy: proxy.name,
          status,
          durationMs: Math.round(seconds * 1e6) / 1e3,
          clientIp: ip.family === 0 ? null : ip.display(),
          ipSource: ip.label,
          policy: decided?.policy.name ?? null,
          matchedEntry: decided?.entry ?? null,
          decision: rejection !== null ? 'denied' : decided !== null ? 'dry_run_denied' : decision,
          faultCode: decided?.code ?? null,
          dryRun: rejection === null && decided !== null,
        },
        decided === null ? (decision === 'allowed' ? 'request allowed' : 'gateway error') : rejection !== null ? 'request denied' : 'request would have been denied (dry run)',
      );
      const theirs = raw[0]!;
      const noTime = (s: string) => s.replace(/,"time":\d+/, '');
      expect(JSON.parse(noTime(ours))).toEqual(JSON.parse(noTime(theirs)));
      // A lone surrogate is the one difference: pino writes it raw (it reaches the file as U+FFFD),
      // JSON.stringify escapes it (\ud800), so the line stays valid UTF-8 and keeps the value.
      if (!/[\ud800-\udfff]/.test(ex.path)) expect(noTime(ours)).toBe(noTime(theirs));
      else expect(ours).toContain('\\ud800');
      expect(JSON.parse(ours)).toMatchObject({ worker: 3, pid: process.pid, event: 'access' });
      compared++;
    }
    expect(compared).toBe(cases.length);
    // Above the info level nothing is written.
    const quiet = new AccessLog(createLogger({ level: 'warn', stream }), { access: 'all', sampleRate: 1 });
    raw.length = 0;
    quiet.record(request('q'), proxy, req, 403, 0.001, 'denied', denial(), null);
    expect(raw).toHaveLength(0);
  });
});
