/**
 * Policy evaluation. HOT PATH: indexed loops, no closures, one trie lookup per policy.
 *
 * Semantics (Apinizer-compatible, with ipgate's extensions):
 * - proxy-wide policies first, then endpoint policies, each group in `order`; every applicable
 *   policy must pass;
 * - white-ip: rejected unless an allow entry matches; a matching deny entry (IP groups) wins;
 * - black-ip: rejected when a deny entry matches, unless an allow entry (an exception) matches;
 * - an undeterminable client IP is rejected by both kinds (CLIENT_IP_UNRESOLVED): fail closed;
 * - enforce:false (dry run) records the rejection and lets the request continue.
 */
import { NO_ENTRY } from '../policy/ip-trie.js';
import { IpSourceKind, PolicyKind, type CompiledIpSource, type CompiledPipeline, type CompiledPolicy } from '../policy/snapshot.js';
import type { ResolvedIp } from './client-ip.js';
import type { FaultCode } from './faults.js';

export class Rejection {
  constructor(
    readonly policy: CompiledPolicy,
    readonly code: FaultCode,
    readonly status: number,
    readonly faultString: string,
    readonly ip: ResolvedIp,
    /** The entry that decided (deny/block hit), or null for an allowlist miss or unresolved IP. */
    readonly entry: string | null,
  ) {}
}

export interface PolicyContext {
  readonly methodBit: number;
  readonly relPath: string;
  ipFor(source: CompiledIpSource): ResolvedIp;
  /** A dry-run policy would have rejected. */
  onDryRun(r: Rejection): void;
  /** Every evaluated policy's outcome, for metrics. */
  onResult(p: CompiledPolicy, result: PolicyResult): void;
}

export enum PolicyResult {
  Pass = 0,
  Reject = 1,
  DryRunReject = 2,
  Unresolved = 3,
}

function reject(p: CompiledPolicy, code: FaultCode, ip: ResolvedIp, entry: string | null): Rejection {
  let text: string;
  if (code === 'CLIENT_IP_UNRESOLVED') text = `Client IP could not be determined: ${ip.reason}`;
  else if (p.rejectMessage !== null) text = `${p.rejectMessage} (client IP ${ip.display()})`;
  else if (code === 'IP_BLOCKED') text = `Client IP ${ip.display()} is blocked`;
  else text = `Client IP ${ip.display()} is not allowed`;
  return new Rejection(p, code, p.rejectStatus, text, ip, entry);
}

/** Evaluate one policy; null when it passes. */
export function checkPolicy(p: CompiledPolicy, ctx: PolicyContext): Rejection | null {
  const ip = ctx.ipFor(p.source);
  let r: Rejection | null = null;
  if (ip.family === 0) {
    r = reject(p, 'CLIENT_IP_UNRESOLVED', ip, null);
  } else if (ip.family === 4 ? p.trie.decision4 !== null && !p.trie.decision4.rejects(ip.words[0]!) : p.trie.decision6 !== null && !p.trie.decision6.rejects(ip.words)) {
    // A large list's decision index says it passes: no trie walk. (A rejection walks the trie
    // below, for the entry the fault and the log name.)
  } else {
    const trie = p.trie;
    const leaf = trie.lookup(ip.family, ip.words);
    const deny = trie.denyEntry[leaf]!;
    const allow = trie.allowEntry[leaf]!;
    if (p.kind === PolicyKind.Allow) {
      if (deny !== NO_ENTRY) r = reject(p, 'IP_NOT_ALLOWED', ip, p.entryText.at(deny)!);
      else if (allow === NO_ENTRY) r = reject(p, 'IP_NOT_ALLOWED', ip, null);
    } else if (deny !== NO_ENTRY && allow === NO_ENTRY) {
      r = reject(p, 'IP_BLOCKED', ip, p.entryText.at(deny)!);
    }
  }
  if (r === null) {
    ctx.onResult(p, PolicyResult.Pass);
    return null;
  }
  if (!p.enforce) {
    ctx.onResult(p, PolicyResult.DryRunReject);
    ctx.onDryRun(r);
    return null;
  }
  ctx.onResult(p, ip.family === 0 ? PolicyResult.Unresolved : PolicyResult.Reject);
  return r;
}

/** HOT PATH. Evaluate a pipeline; the first enforced rejection wins. */
export function evaluatePipeline(pipe: CompiledPipeline, ctx: PolicyContext): Rejection | null {
  const wide = pipe.proxyWide;
  for (let i = 0; i < wide.length; i++) {
    const r = checkPolicy(wide[i]!, ctx);
    if (r !== null) return r;
  }
  const ep = pipe.endpoint;
  for (let i = 0; i < ep.length; i++) {
    const p = ep[i]!;
    if ((p.methods & ctx.methodBit) === 0 || !p.endpoint!.matches(ctx.relPath)) continue;
    const r = checkPolicy(p, ctx);
    if (r !== null) return r;
  }
  return null;
}

/** Whether any policy that applies to this request reads the body (so it must be buffered). */
export function pipelineNeedsBody(pipe: CompiledPipeline | null, methodBit: number, relPath: string): boolean {
  if (pipe === null) return false;
  for (const p of pipe.proxyWide) if (p.source.kind === IpSourceKind.Body) return true;
  for (const p of pipe.endpoint) if (p.source.kind === IpSourceKind.Body && (p.methods & methodBit) !== 0 && p.endpoint!.matches(relPath)) return true;
  return false;
}
