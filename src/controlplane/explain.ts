/**
 * "Would this request be let through, and why?" — answered with the same compiled policies, the
 * same client-IP resolution and the same policy check as live traffic. Shared by the admin API's
 * ip-check route and the offline `ipgate ip-check` command, so both give the same answer.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { nameSchema } from '../config/schema.js';
import { canonicalizeTarget } from '../dataplane/canonical-path.js';
import type { TrustFn } from '../dataplane/client-ip.js';
import { checkPolicy, PolicyResult, type Rejection } from '../dataplane/decide.js';
import { RequestContext } from '../dataplane/request-context.js';
import type { DataPlaneShared } from '../dataplane/shared.js';
import { NO_ENTRY } from '../policy/ip-trie.js';
import type { CompiledPipeline, CompiledPolicy, CompiledProxy } from '../policy/snapshot.js';

export const explainSchema = z
  .strictObject({
    /** Shortcut: the socket address of a direct client (no forwarding headers). */
    ip: z.string().min(1).max(64).optional(),
    remoteAddress: z.string().min(1).max(64).optional(),
    headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional(),
    /** Path below the proxy's basePath, with an optional query; canonicalised as live traffic is. */
    path: z
      .string()
      .startsWith('/')
      .default('/')
      .superRefine((p, c) => {
        const t = canonicalizeTarget(p);
        if (!t.ok) c.addIssue({ code: 'custom', message: t.reason });
      }),
    method: z.string().regex(/^[A-Z]+$/).default('GET'),
    environment: nameSchema.optional(),
  })
  .refine((b) => b.ip !== undefined || b.remoteAddress !== undefined, { message: 'give ip, or remoteAddress (with optional headers)', path: ['ip'] });

export type ExplainRequest = z.output<typeof explainSchema>;

/** One policy's verdict in an explanation. */
export interface PolicyVerdict {
  readonly pipeline: string;
  readonly policy: string;
  readonly scope: 'ALL' | 'ENDPOINT';
  readonly result: string;
  readonly endpoint?: string;
  readonly faultCode?: string | null;
  readonly clientIp?: string | null;
  readonly ipSource?: string;
  readonly unresolvedReason?: string | null;
  readonly matchedEntry?: string | null;
  readonly dryRun?: boolean;
}

/** The ip-check answer, as the admin API returns it. */
export interface Explanation {
  readonly success: true;
  readonly environment: string;
  /** The store revision evaluated; null offline, where the policies come from a file. */
  readonly revision: number | null;
  readonly decision: 'allowed' | 'denied';
  readonly faultCode: string | null;
  readonly decidedBy: string | null;
  readonly clientIp: string | null;
  readonly ipSource: string;
  readonly policies: readonly PolicyVerdict[];
}

const RESULTS = ['pass', 'reject', 'dry_run_reject', 'unresolved'] as const;

/** Explain `b` against `proxy`, a proxy of a compiled snapshot of `environment` at `revision`. */
export function explain(proxy: CompiledProxy, trust: TrustFn, b: ExplainRequest, environment: string, revision: number | null): Explanation {
  // The same canonical path the data plane matches ("/public/%2e%2e/admin" is "/admin").
  const t = canonicalizeTarget(b.path);
  if (!t.ok) throw new TypeError(`path: ${t.reason}`); // explainSchema already refused it
  const relPath = t.path;
  const search = t.search;
  const headers: Record<string, string | string[]> = {};
  const rawHeaders: string[] = [];
  for (const [k, v] of Object.entries(b.headers ?? {})) {
    const name = k.toLowerCase();
    for (const one of Array.isArray(v) ? v : [v]) rawHeaders.push(k, one);
    // Node joins repeated lines with ", " (set-cookie aside); mirror that.
    headers[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  const req = { method: b.method, headers, rawHeaders, socket: { remoteAddress: b.remoteAddress ?? b.ip } } as unknown as IncomingMessage;
  let last: PolicyResult = PolicyResult.Pass;
  let dry: Rejection | null = null;
  const shared = { trust, countPolicy: () => undefined } as unknown as DataPlaneShared;
  const ctx = new (class extends RequestContext {
    override onResult(_p: CompiledPolicy, r: PolicyResult): void {
      last = r;
    }
    override onDryRun(r: Rejection): void {
      dry = r;
    }
  })(shared, req, 'explain', proxy.basePath + relPath, relPath, search);

  const evaluated: PolicyVerdict[] = [];
  let decision: { allowed: boolean; faultCode: string | null; policy: string | null } = { allowed: true, faultCode: null, policy: null };
  const run = (pipeline: string, pipe: CompiledPipeline | null) => {
    if (pipe === null) return;
    for (const p of [...pipe.proxyWide, ...pipe.endpoint]) {
      const applies = p.endpoint === null || ((p.methods & ctx.methodBit) !== 0 && p.endpoint.matches(relPath));
      if (!applies) {
        evaluated.push({ pipeline, policy: p.name, scope: 'ENDPOINT', endpoint: p.endpoint!.source, result: 'not_applicable' });
        continue;
      }
      dry = null;
      const rej = checkPolicy(p, ctx);
      const ip = ctx.ipFor(p.source);
      let entry = rej?.entry ?? (dry as Rejection | null)?.entry ?? null;
      if (entry === null && ip.family !== 0) {
        const leaf = p.trie.lookup(ip.family, ip.words);
        const allow = p.trie.allowEntry[leaf]!;
        if (allow !== NO_ENTRY) entry = p.entryText.at(allow)!;
      }
      evaluated.push({
        pipeline,
        policy: p.name,
        scope: p.endpoint === null ? 'ALL' : 'ENDPOINT',
        result: RESULTS[last],
        faultCode: rej?.code ?? (dry as Rejection | null)?.code ?? null,
        clientIp: ip.family === 0 ? null : ip.display(),
        ipSource: ip.label,
        unresolvedReason: ip.family === 0 ? ip.reason : null,
        matchedEntry: entry,
        dryRun: !p.enforce,
      });
      if (rej !== null && decision.allowed && pipeline === 'REQUEST') decision = { allowed: false, faultCode: rej.code, policy: p.name };
    }
  };
  run('REQUEST', proxy.request);
  run('RESPONSE', proxy.response);
  if (decision.allowed) {
    const resp = evaluated.find((e) => e.pipeline === 'RESPONSE' && (e.result === 'reject' || e.result === 'unresolved'));
    if (resp !== undefined) decision = { allowed: false, faultCode: resp.faultCode ?? null, policy: resp.policy };
  }
  run('ERROR', proxy.error);
  const ip = ctx.defaultIp();
  return {
    success: true,
    environment,
    revision,
    decision: decision.allowed ? 'allowed' : 'denied',
    faultCode: decision.faultCode,
    decidedBy: decision.policy,
    clientIp: ip.family === 0 ? null : ip.display(),
    ipSource: ip.label,
    policies: evaluated,
  };
}
