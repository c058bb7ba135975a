/**
 * The access log: one `access` line per request, in one of three modes (`log.access`):
 *
 * - `off`: no access lines;
 * - `denied` (the default): denied and dry-run-denied requests only. An allowed request costs one
 *   boolean test (DataPlane.finished reads `logsAllowed`);
 * - `all`: every request. `log.sampleRate` (0..1) keeps that fraction of the allowed ones; denied,
 *   dry-run-denied and gateway-error lines are never sampled away, because they are the ones an
 *   operator has to be able to find.
 *
 * The line's fields are fixed, so every line has the same shape (README "Operating ipgate").
 *
 * The line is serialised here, by concatenation, and written straight to the logger's destination,
 * byte for byte what `log.info(fields, msg)` would write (a test compares the two), except that a
 * lone UTF-16 surrogate is escaped (pino writes it raw, which the file gets as U+FFFD). WHY: in a deny
 * flood every request writes one, and pino's generic path (redaction checks, per-key type
 * dispatch, its object walk) cost more than the rest of the rejection: bench scenario 8 measured
 * 51 µs of CPU per denied request with lines through pino and 32 µs with the access log off.
 */
import type { IncomingMessage } from 'node:http';
import { pino, type DestinationStream } from 'pino';
import { ResolvedIp, resolveDefault } from '../dataplane/client-ip.js';
import type { Rejection } from '../dataplane/decide.js';
import type { CompiledIpSource, CompiledPipeline, CompiledProxy } from '../policy/snapshot.js';
import type { Logger } from './logger.js';

export type AccessLogMode = 'off' | 'denied' | 'all';

export interface AccessLogOptions {
  readonly access: AccessLogMode;
  /** Fraction of allowed requests logged in `all` mode. */
  readonly sampleRate: number;
  /** Random source in [0, 1) for sampling (tests); Math.random otherwise. */
  readonly random?: (() => number) | undefined;
}

/** What the access line needs from a finished request (an Exchange or a WebSocket upgrade). */
export interface AccessLogRequest {
  readonly correlationId: string;
  /** The canonical path. */
  readonly path: string;
  /** The canonical path relative to the proxy's basePath: what endpoint policies match. */
  readonly relPath: string;
  readonly methodBit: number;
  ipFor(source: CompiledIpSource): ResolvedIp;
}

const NEVER_TRUSTED = (): boolean => false;

/** JSON text of a string, or of null. */
const str = (s: string | null | undefined): string => (s === null || s === undefined ? 'null' : JSON.stringify(s));

/**
 * JSON texts of the strings that come from a small set: names from the config (project, proxy,
 * policy), IP source labels, fault codes, HTTP methods. WHY: JSON.stringify was the largest cost of
 * building a line (12 calls, ~3 µs per denied request in bench scenario 8); these repeat on every
 * line, so each is serialised once. Bounded, so a stream of unusual methods cannot grow it.
 */
const MEMO_MAX = 4096;
const memo = new Map<string, string>();
function strOf(s: string | null | undefined): string {
  if (s === null || s === undefined) return 'null';
  let j = memo.get(s);
  if (j === undefined) {
    j = JSON.stringify(s);
    if (memo.size < MEMO_MAX) memo.set(s, j);
  }
  return j;
}

/** The parts of a logger's line that pino keeps precomputed (pino.symbols is its documented hook). */
interface PinoInternals {
  readonly stream: DestinationStream;
  /** `,"time":<epoch ms>` (or whatever the logger's timestamp option writes). */
  readonly time: () => string;
  /** The base fields and the child bindings: `,"pid":123` and so on. */
  readonly chindings: string;
}

function internalsOf(log: Logger): PinoInternals {
  const l = log as unknown as Record<symbol, unknown>;
  return {
    stream: l[pino.symbols.streamSym] as DestinationStream,
    time: (l[pino.symbols.timeSym] as () => string).bind(log),
    chindings: l[pino.symbols.chindingsSym] as string,
  };
}

const MSG_ALLOWED = ',"msg":"request allowed"}\n';
const MSG_ERROR = ',"msg":"gateway error"}\n';
const MSG_DENIED = ',"msg":"request denied"}\n';
const MSG_DRY_RUN = ',"msg":"request would have been denied (dry run)"}\n';
const INFO = 30;

export class AccessLog {
  /** Denied and dry-run-denied requests are logged. */
  readonly logsDenied: boolean;
  /** Some allowed requests are logged (`all` mode with a sample rate above 0). */
  readonly logsAllowed: boolean;
  /** `all` mode: gateway errors (413, 502, 504) are logged. */
  readonly logsErrors: boolean;
  private readonly sampleRate: number;
  private readonly random: () => number;
  private readonly pino: PinoInternals;

  constructor(
    private readonly log: Logger,
    opts: AccessLogOptions,
  ) {
    this.logsDenied = opts.access !== 'off';
    this.logsErrors = opts.access === 'all';
    this.logsAllowed = opts.access === 'all' && opts.sampleRate > 0;
    this.sampleRate = opts.sampleRate;
    this.random = opts.random ?? Math.random;
    this.pino = internalsOf(log);
  }

  /**
   * Log a finished request if the mode (and, for allowed requests, the sample) says so.
   * `decision` is allowed, denied, dry_run_denied or error.
   */
  record(
    ex: AccessLogRequest,
    proxy: CompiledProxy,
    req: IncomingMessage,
    status: number,
    seconds: number,
    decision: string,
    rejection: Rejection | null,
    dryRuns: readonly Rejection[] | null,
  ): void {
    const decided = rejection ?? dryRuns?.[0] ?? null;
    if (decided !== null) {
      if (!this.logsDenied) return;
    } else if (decision === 'allowed') {
      if (!this.logsAllowed || (this.sampleRate < 1 && this.random() >= this.sampleRate)) return;
    } else if (!this.logsErrors) {
      return;
    }
    if (this.log.levelVal > INFO) return;
    const ip = decided !== null ? decided.ip : firstResolvedIp(ex, proxy, req, decision);
    const p = this.pino;
    // The same keys, in the same order, as the object pino would be given (see the test).
    const line =
      '{"level":30' +
      p.time() +
      p.chindings +
      ',"event":"access","correlationId":' +
      // A UUID the gateway generated: hex digits and dashes, nothing to escape.
      '"' +
      ex.correlationId +
      '"' +
      ',"method":' +
      strOf(req.method) +
      ',"path":' +
      str(ex.path) +
      ',"endpoint":' +
      str(ex.relPath) +
      ',"project":' +
      strOf(proxy.projectName) +
      ',"proxy":' +
      strOf(proxy.name) +
      ',"status":' +
      status +
      ',"durationMs":' +
      Math.round(seconds * 1e6) / 1e3 +
      ',"clientIp":' +
      // A formatted address (digits, hex, dots and colons): nothing to escape.
      (ip.family === 0 ? 'null' : '"' + ip.display() + '"') +
      ',"ipSource":' +
      strOf(ip.label) +
      ',"policy":' +
      strOf(decided?.policy.name) +
      ',"matchedEntry":' +
      str(decided?.entry) +
      // A dry-run denial is named as one even when the request then failed upstream (decision error).
      ',"decision":' +
      (rejection !== null ? '"denied"' : decided !== null ? '"dry_run_denied"' : strOf(decision)) +
      ',"faultCode":' +
      strOf(decided?.code) +
      ',"dryRun":' +
      (rejection === null && decided !== null) +
      (decided === null ? (decision === 'allowed' ? MSG_ALLOWED : MSG_ERROR) : rejection !== null ? MSG_DENIED : MSG_DRY_RUN);
    p.stream.write(line);
  }
}

/**
 * The client IP of a request no policy rejected: the one the first policy (in evaluation order)
 * resolved, or the socket address when no policy applied. The default source is cached by the
 * request, so this is a lookup; other sources are resolved again, which only logged lines pay for.
 */
function firstResolvedIp(ex: AccessLogRequest, proxy: CompiledProxy, req: IncomingMessage, decision: string): ResolvedIp {
  // The RESPONSE pipeline ran for a forwarded request, the ERROR pipeline for a gateway error.
  const ip = firstIn(ex, proxy.request) ?? (decision === 'error' ? firstIn(ex, proxy.error) : firstIn(ex, proxy.response));
  return ip ?? resolveDefault(new ResolvedIp(), req.socket.remoteAddress, undefined, NEVER_TRUSTED);
}

function firstIn(ex: AccessLogRequest, pipe: CompiledPipeline | null): ResolvedIp | null {
  if (pipe === null) return null;
  for (const p of pipe.proxyWide) {
    const ip = ex.ipFor(p.source);
    if (ip.family !== 0) return ip;
  }
  for (const p of pipe.endpoint) {
    if ((p.methods & ex.methodBit) === 0 || !p.endpoint!.matches(ex.relPath)) continue;
    const ip = ex.ipFor(p.source);
    if (ip.family !== 0) return ip;
  }
  return null;
}
