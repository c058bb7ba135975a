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
 */
import type { IncomingMessage } from 'node:http';
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

export class AccessLog {
  /** Denied and dry-run-denied requests are logged. */
  readonly logsDenied: boolean;
  /** Some allowed requests are logged (`all` mode with a sample rate above 0). */
  readonly logsAllowed: boolean;
  /** `all` mode: gateway errors (413, 502, 504) are logged. */
  readonly logsErrors: boolean;
  private readonly sampleRate: number;
  private readonly random: () => number;

  constructor(
    private readonly log: Logger,
    opts: AccessLogOptions,
  ) {
    this.logsDenied = opts.access !== 'off';
    this.logsErrors = opts.access === 'all';
    this.logsAllowed = opts.access === 'all' && opts.sampleRate > 0;
    this.sampleRate = opts.sampleRate;
    this.random = opts.random ?? Math.random;
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
    const ip = decided !== null ? decided.ip : firstResolvedIp(ex, proxy, req, decision);
    this.log.info(
      {
        event: 'access',
        correlationId: ex.correlationId,
        method: req.method,
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
        // A dry-run denial is named as one even when the request then failed upstream (decision error).
        decision: rejection !== null ? 'denied' : decided !== null ? 'dry_run_denied' : decision,
        faultCode: decided?.code ?? null,
        dryRun: rejection === null && decided !== null,
      },
      decided === null ? (decision === 'allowed' ? 'request allowed' : 'gateway error') : rejection !== null ? 'request denied' : 'request would have been denied (dry run)',
    );
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
