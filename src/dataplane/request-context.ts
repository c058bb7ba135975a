/**
 * Per-request policy context shared by HTTP exchanges and WebSocket upgrades: lazy client-IP
 * resolution (the default source is resolved at most once per request) and dry-run bookkeeping.
 */
import type { IncomingMessage } from 'node:http';
import { IpSourceKind, METHOD_BITS, type CompiledIpSource, type CompiledPolicy } from '../policy/snapshot.js';
import { ResolvedIp, resolveDefault, resolveSource } from './client-ip.js';
import type { PolicyContext, PolicyResult, Rejection } from './decide.js';
import type { DataPlaneShared } from './shared.js';

/** Bit for methods outside METHOD_BITS (PROPFIND, ...): only ALL-method policies match them. */
const OTHER_METHOD = 128;

export class RequestContext implements PolicyContext {
  readonly methodBit: number;
  protected body: Buffer | null = null;
  protected dryRuns: Rejection[] | null = null;
  private defaultResolved: ResolvedIp | null = null;
  private peerTrustedCache = -1;

  constructor(
    protected readonly shared: DataPlaneShared,
    protected readonly req: IncomingMessage,
    readonly correlationId: string,
    readonly path: string,
    readonly relPath: string,
    readonly search: string,
  ) {
    this.methodBit = METHOD_BITS[req.method ?? ''] ?? OTHER_METHOD;
  }

  get peerTrusted(): boolean {
    if (this.peerTrustedCache === -1) {
      const ra = this.req.socket.remoteAddress;
      this.peerTrustedCache = ra !== undefined && this.shared.trust(ra, 0) ? 1 : 0;
    }
    return this.peerTrustedCache === 1;
  }

  defaultIp(): ResolvedIp {
    if (this.defaultResolved === null) {
      const xff = this.req.headers['x-forwarded-for'];
      this.defaultResolved = resolveDefault(new ResolvedIp(), this.req.socket.remoteAddress, Array.isArray(xff) ? xff.join(', ') : xff, this.shared.trust);
    }
    return this.defaultResolved;
  }

  ipFor(source: CompiledIpSource): ResolvedIp {
    if (source.kind === IpSourceKind.Default) return this.defaultIp();
    return resolveSource(
      source,
      { req: this.req, search: this.search, body: this.body, peerTrusted: this.peerTrusted },
      new ResolvedIp(),
    );
  }

  onDryRun(r: Rejection): void {
    (this.dryRuns ??= []).push(r);
  }

  onResult(p: CompiledPolicy, result: PolicyResult): void {
    this.shared.countPolicy(p, result);
  }
}
