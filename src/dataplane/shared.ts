/**
 * What an Exchange needs from the data plane that owns it. Kept as an interface so the per-request
 * code does not depend on how listeners, logging and metrics are wired.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledIpSource, CompiledPolicy, CompiledProxy } from '../policy/snapshot.js';
import type { ResolvedIp, TrustFn } from './client-ip.js';
import type { PolicyResult, Rejection } from './decide.js';
import type { UpstreamErrorKind } from './upstream-errors.js';

export interface DataPlaneLimits {
  /** Largest request body forwarded (413 past it). */
  readonly requestBodyBytes: number;
  /** Largest body buffered for BODY client-IP sources (413 past it). */
  readonly bodyBufferBytes: number;
}

export interface ExchangeInfo {
  readonly correlationId: string;
  readonly path: string;
  readonly relPath: string;
  readonly methodBit: number;
  /** The client IP a policy source resolves to (the access log names it for allowed requests). */
  ipFor(source: CompiledIpSource): ResolvedIp;
}

export interface DataPlaneShared {
  readonly trust: TrustFn;
  readonly limits: DataPlaneLimits;
  countPolicy(p: CompiledPolicy, result: PolicyResult): void;
  upstreamError(proxy: CompiledProxy, kind: UpstreamErrorKind, err: unknown): void;
  /** The upstream answered with headers, or failed, `seconds` after the request was sent. */
  upstreamTimed(proxy: CompiledProxy, seconds: number): void;
  /** Log an unexpected error and answer 500 (or drop the connection if the answer has started). */
  internalError(res: ServerResponse, correlationId: string, err: unknown): void;
  writeFault(res: ServerResponse, correlationId: string, code: string, status: number, text: string): void;
  finished(
    ex: ExchangeInfo,
    proxy: CompiledProxy,
    status: number,
    decision: string,
    rejection: Rejection | null,
    dryRuns: readonly Rejection[] | null,
    req: IncomingMessage,
    startedAt: number,
  ): void;
}
