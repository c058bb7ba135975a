/**
 * POST /apiops/projects/{p}/apiProxies/{a}/ip-check/ — "would this request be let through, and why?"
 *
 * It runs the same compiled policies and the same client-IP resolution and policy check as live
 * traffic: for this node's environment, the very snapshot the data plane is enforcing; for
 * another environment, that environment's deployed state compiled the same way.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { nameSchema } from '../../config/schema.js';
import type { TrustFn } from '../../dataplane/client-ip.js';
import { checkPolicy, PolicyResult, type Rejection } from '../../dataplane/decide.js';
import { RequestContext } from '../../dataplane/request-context.js';
import type { DataPlaneShared } from '../../dataplane/shared.js';
import { NO_ENTRY } from '../../policy/ip-trie.js';
import type { CompiledPipeline, CompiledPolicy, Snapshot } from '../../policy/snapshot.js';
import { stateForEnvironment } from '../store/to-state.js';
import { AdminError } from './errors.js';
import type { Route } from './router.js';
import { findProject, findProxy, requireEnvironment, type AdminService } from './service.js';

export const explainSchema = z
  .strictObject({
    /** Shortcut: the socket address of a direct client (no forwarding headers). */
    ip: z.string().min(1).max(64).optional(),
    remoteAddress: z.string().min(1).max(64).optional(),
    headers: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional(),
    /** Path below the proxy's basePath, with an optional query. */
    path: z.string().startsWith('/').default('/'),
    method: z.string().regex(/^[A-Z]+$/).default('GET'),
    environment: nameSchema.optional(),
  })
  .refine((b) => b.ip !== undefined || b.remoteAddress !== undefined, { message: 'give ip, or remoteAddress (with optional headers)', path: ['ip'] });

export interface ExplainDeps {
  readonly trust: TrustFn;
  readonly snapshot: () => Snapshot | null;
  readonly compile: (env: string) => Snapshot;
}

export function explainRoutes(svc: AdminService, deps: ExplainDeps, bodyLimit: number): Route[] {
  return [
    {
      method: 'POST',
      path: '/apiops/projects/:project/apiProxies/:proxy/ip-check/',
      // Reading, though it is a POST: viewers may ask.
      write: false,
      handler: async (c) => {
        const b = await c.json(explainSchema, bodyLimit);
        const d = svc.data();
        const record = findProxy(findProject(d, c.params.project!), c.params.proxy!);
        const env = b.environment === undefined ? svc.environment : requireEnvironment(d, b.environment);
        const snap = env === svc.environment ? deps.snapshot() : deps.compile(env);
        const proxy = snap?.proxies.find((p) => p.projectName === findProject(d, c.params.project!).name && p.name === record.draft.name);
        if (snap === null || snap === undefined || proxy === undefined) throw new AdminError('NOT_FOUND', `API proxy ${record.draft.name} is not deployed to ${env}`);

        const q = b.path.indexOf('?');
        const relPath = q === -1 ? b.path : b.path.slice(0, q);
        const search = q === -1 ? '' : b.path.slice(q);
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
        const shared = { trust: deps.trust, countPolicy: () => undefined } as unknown as DataPlaneShared;
        const ctx = new (class extends RequestContext {
          override onResult(_p: CompiledPolicy, r: PolicyResult): void {
            last = r;
          }
          override onDryRun(r: Rejection): void {
            dry = r;
          }
        })(shared, req, 'explain', proxy.basePath + relPath, relPath, search);

        const evaluated: unknown[] = [];
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
              if (allow !== NO_ENTRY) entry = p.entryText[allow]!;
            }
            const result = ['pass', 'reject', 'dry_run_reject', 'unresolved'][last]!;
            evaluated.push({
              pipeline,
              policy: p.name,
              scope: p.endpoint === null ? 'ALL' : 'ENDPOINT',
              result,
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
          const resp = evaluated.find((e) => (e as { pipeline: string; result: string }).pipeline === 'RESPONSE' && ['reject', 'unresolved'].includes((e as { result: string }).result)) as
            | { policy: string; faultCode: string }
            | undefined;
          if (resp !== undefined) decision = { allowed: false, faultCode: resp.faultCode, policy: resp.policy };
        }
        run('ERROR', proxy.error);
        const ip = ctx.defaultIp();
        return {
          body: {
            success: true,
            environment: env,
            revision: snap.revision,
            decision: decision.allowed ? 'allowed' : 'denied',
            faultCode: decision.faultCode,
            decidedBy: decision.policy,
            clientIp: ip.family === 0 ? null : ip.display(),
            ipSource: ip.label,
            policies: evaluated,
          },
        };
      },
    },
  ];
}

/** Compile what `env` enforces, for explain on another environment. */
export function compileForEnvironment(svc: AdminService, compile: (s: ReturnType<typeof stateForEnvironment>) => { ok: boolean; snapshot?: Snapshot }): (env: string) => Snapshot {
  return (env) => {
    const r = compile(stateForEnvironment(svc.data(), env));
    if (!r.ok || r.snapshot === undefined) throw new AdminError('CONFLICT', `the state deployed to ${env} does not compile`);
    return r.snapshot;
  };
}
