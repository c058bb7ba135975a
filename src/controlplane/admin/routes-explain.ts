/**
 * POST /apiops/projects/{p}/apiProxies/{a}/ip-check/ — "would this request be let through, and why?"
 *
 * It runs the same compiled policies and the same client-IP resolution and policy check as live
 * traffic: for this node's environment, the very snapshot the data plane is enforcing; for
 * another environment, that environment's deployed state compiled the same way.
 */
import type { TrustFn } from '../../dataplane/client-ip.js';
import type { Snapshot } from '../../policy/snapshot.js';
import { explain, explainSchema } from '../explain.js';
import { stateForEnvironment } from '../store/to-state.js';
import { AdminError } from './errors.js';
import type { Route } from './router.js';
import { findProject, findProxy, requireEnvironment, type AdminService } from './service.js';

/** The request body; the schema lives with the shared explain logic. */
export { explainSchema };

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
        return { body: explain(proxy, deps.trust, b, env, snap.revision) };
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
