/**
 * Policy endpoints, exactly as Apinizer's document gives them:
 *   GET    /apiops/projects/{p}/apiProxies/{a}/policies/
 *   POST   /apiops/projects/{p}/apiProxies/{a}/policies/{name}/   add
 *   PUT    /apiops/projects/{p}/apiProxies/{a}/policies/{name}/   update
 *   DELETE /apiops/projects/{p}/apiProxies/{a}/policies/{name}/   delete
 * plus GET on a single policy, which returns it with its ETag.
 *
 * Positions: the proxy keeps its policies in one array; `order` is the 1-based position among the
 * policies of the same pipeline. It is computed on read, not stored, so it can never go stale.
 */
import { z } from 'zod';
import { environmentNamesSchema, policyBindingSchema } from '../../config/schema.js';
import type { PolicyBinding, TargetPipeline } from '../../policy/model.js';
import { cloneDraft, freezeLeafArrays } from '../store/blobs.js';
import { MAX_HISTORY, type ProxyRecord, type StoreData } from '../store/state.js';
import { AdminError, type ErrorDetail } from './errors.js';
import type { Route, RouteContext, RouteReply } from './router.js';
import { checkIfMatch, deploymentReply, etagOf, findProject, findProxy, nextVersion, type AdminService } from './service.js';

/** A missing field is named as such, not as an invalid value. */
const required = { error: (i: { input: unknown }) => (i.input === undefined ? 'required' : undefined) };

/** Apinizer's delete body: targetScope and targetPipeline are required (and must be the policy's). */
export const deleteBodySchema = z.strictObject({
  operationMetadata: z.strictObject(
    {
      targetScope: z.enum(['ALL', 'ENDPOINT'], required),
      targetPipeline: z.enum(['REQUEST', 'RESPONSE', 'ERROR'], required),
      deploy: z.boolean().optional(),
      deployTargetEnvironmentNameList: environmentNamesSchema.optional(),
    },
    required,
  ),
});

/**
 * A delete names the policy's scope and pipeline: one that names others is refused, as it says
 * the client meant another policy than the one the URL names.
 */
function checkDeleteTarget(old: PolicyBinding, meta: z.output<typeof deleteBodySchema>['operationMetadata']): void {
  const details: ErrorDetail[] = [];
  if (meta.targetScope !== old.operationMetadata.targetScope) details.push({ path: 'operationMetadata.targetScope', message: `the policy's scope is ${old.operationMetadata.targetScope}, not ${meta.targetScope}` });
  if (meta.targetPipeline !== old.operationMetadata.targetPipeline) details.push({ path: 'operationMetadata.targetPipeline', message: `the policy's pipeline is ${old.operationMetadata.targetPipeline}, not ${meta.targetPipeline}` });
  if (details.length > 0) throw new AdminError('BAD_REQUEST', `policy ${old.policy.name}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`, details);
}

function indexOfPolicy(r: ProxyRecord, name: string): number {
  return r.draft.policies.findIndex((b) => b.policy.name.toLowerCase() === name.toLowerCase());
}

/** The index of the policy `name` on `r`, or NOT_FOUND. */
function existing(r: ProxyRecord, name: string): number {
  const i = indexOfPolicy(r, name);
  if (i === -1) throw new AdminError('NOT_FOUND', `no policy ${JSON.stringify(name)} on API proxy ${r.draft.name}`);
  return i;
}

/** A body may repeat the policy's name (in any case), not give another. */
function checkBodyName(body: z.output<typeof policyBindingSchema>, name: string): void {
  if (body.policy.name !== undefined && body.policy.name.toLowerCase() !== name.toLowerCase()) {
    throw new AdminError('BAD_REQUEST', 'policy.name differs from the name in the URL', [{ path: 'policy.name', message: `must be ${name} or absent` }]);
  }
}

/** What a policy write did to the working copy, for the audit record, and where it deploys. */
interface PolicyChange {
  readonly before: PolicyBinding | null;
  readonly after: PolicyBinding | null;
  readonly deploy: boolean;
  /** The environments named in the request, if any. */
  readonly envs: readonly string[] | undefined;
}

function orderOf(r: ProxyRecord, index: number): number {
  const pipeline = r.draft.policies[index]!.operationMetadata.targetPipeline;
  let n = 0;
  for (let i = 0; i <= index; i++) if (r.draft.policies[i]!.operationMetadata.targetPipeline === pipeline) n++;
  return n;
}

/** The binding as the API shows it: policy fields (name included) and its metadata with `order`. */
function view(r: ProxyRecord, index: number): Record<string, unknown> {
  const b = r.draft.policies[index]!;
  return {
    ...b.policy,
    targetVariableForIP: b.policy.targetVariableForIP ?? null,
    operationMetadata: { ...b.operationMetadata, deploy: undefined, deployTargetEnvironmentNameList: undefined, order: orderOf(r, index) },
  };
}

/** Insert `b` so that it is the `order`-th policy of its pipeline (null or past the end: last). */
function insertAt(list: PolicyBinding[], b: PolicyBinding, order: number | null | undefined): void {
  const pipeline: TargetPipeline = b.operationMetadata.targetPipeline;
  if (order !== null && order !== undefined) {
    let n = 0;
    for (let i = 0; i < list.length; i++) {
      if (list[i]!.operationMetadata.targetPipeline !== pipeline) continue;
      n++;
      if (n === order) {
        list.splice(i, 0, b);
        return;
      }
    }
  }
  list.push(b);
}

/** Stored bindings carry no deploy options and no order: those belong to the request, not the policy. */
function stored(b: z.output<typeof policyBindingSchema>, name: string): PolicyBinding {
  const { deploy: _d, deployTargetEnvironmentNameList: _l, order: _o, ...meta } = b.operationMetadata;
  return { operationMetadata: meta, policy: { ...b.policy, name } };
}

/** Environments a write deploys to: the list given, else every environment the proxy is deployed to. */
export function deployTargets(d: StoreData, r: ProxyRecord, list: readonly string[] | undefined): string[] {
  const names = list !== undefined && list.length > 0 ? list : Object.keys(r.deployments);
  return names.map((n) => {
    const e = d.environments.find((x) => x.name.toLowerCase() === n.toLowerCase());
    if (e === undefined) throw new AdminError('NOT_FOUND', `no environment ${JSON.stringify(n)}`, [{ path: 'operationMetadata.deployTargetEnvironmentNameList', message: `unknown environment ${n}` }]);
    return e.name;
  });
}

/** Deploy the proxy's working copy to `envs` at the revision being written. */
export function deployTo(d: StoreData, r: ProxyRecord, envs: readonly string[], actor: string, kind = 'deploy'): void {
  const at = new Date().toISOString();
  if (envs.length === 0) return;
  // One copy serves every environment deployed in this write, and its history entries: the store
  // never mutates a committed object, so sharing is safe. The lists (arrays of strings) are frozen
  // first and then shared by the working copy and the deployed copy rather than copied: a
  // 100,000-entry list is held once, and later drafts share it too (cloneDraft).
  freezeLeafArrays(r.draft);
  const proxy = cloneDraft(r.draft);
  for (const env of envs) {
    const dep = { revision: d.revision + 1, deployedAt: at, deployedBy: actor, proxy };
    r.deployments[env] = dep;
    (r.history ??= []).push({ ...dep, environment: env, kind });
  }
  if (r.history !== undefined && r.history.length > MAX_HISTORY) r.history.splice(0, r.history.length - MAX_HISTORY);
}

export function policyRoutes(svc: AdminService, bodyLimit: number): Route[] {
  const base = '/apiops/projects/:project/apiProxies/:proxy/policies/';

  /**
   * One write to a policy of the API proxy in the URL, the same for add, update and delete: audit
   * action and target; the proxy found in the working state and its If-Match checked; `change`
   * applied to its working copy; the version bumped; then, when the change asks for it, the
   * proxy deployed to the environments listed, or else to every environment it is deployed to.
   */
  const policyWrite = async (c: RouteContext, action: 'policy.add' | 'policy.update' | 'policy.delete', change: (r: ProxyRecord) => PolicyChange): Promise<RouteReply> => {
    const out = await svc.writeProxy(c, action, `${c.params.project}/${c.params.proxy}/policies/${c.params.policy}`, (d) => {
      const r = findProxy(findProject(d, c.params.project!), c.params.proxy!);
      checkIfMatch(c.ifMatch, r.version);
      const { before, after, deploy, envs } = change(r);
      r.version = nextVersion(d);
      const deployed = deploy ? deployTargets(d, r, envs) : [];
      deployTo(d, r, deployed, c.actor);
      return { result: r.version, deployed, before, after, working: r };
    });
    return { body: deploymentReply(out.deploymentResults), etag: etagOf(out.result) };
  };

  return [
    {
      method: 'GET',
      path: base,
      handler: async (c) => {
        const r = findProxy(findProject(svc.data(), c.params.project!), c.params.proxy!);
        const list = (pipeline: TargetPipeline) => r.draft.policies.flatMap((b, i) => (b.operationMetadata.targetPipeline === pipeline ? [view(r, i)] : []));
        return {
          body: {
            success: true,
            resultList: [{ apiProxy: { name: r.draft.name, requestPolicyList: list('REQUEST'), responsePolicyList: list('RESPONSE'), errorPolicyList: list('ERROR') } }],
            resultCount: 1,
          },
          etag: etagOf(r.version),
        };
      },
    },
    {
      method: 'GET',
      path: `${base}:policy/`,
      handler: async (c) => {
        const r = findProxy(findProject(svc.data(), c.params.project!), c.params.proxy!);
        return { body: { success: true, policy: view(r, existing(r, c.params.policy!)) }, etag: etagOf(r.version) };
      },
    },
    {
      method: 'POST',
      path: `${base}:policy/`,
      write: true,
      handler: async (c) => {
        const body = await c.json(policyBindingSchema, bodyLimit);
        const name = c.params.policy!;
        checkBodyName(body, name);
        return policyWrite(c, 'policy.add', (r) => {
          if (indexOfPolicy(r, name) !== -1) throw new AdminError('CONFLICT', `a policy named ${JSON.stringify(name)} already exists on API proxy ${r.draft.name} (names are case-insensitive)`);
          const b = stored(body, name);
          insertAt(r.draft.policies, b, body.operationMetadata.order);
          return { before: null, after: b, deploy: body.operationMetadata.deploy !== false, envs: body.operationMetadata.deployTargetEnvironmentNameList };
        });
      },
    },
    {
      method: 'PUT',
      path: `${base}:policy/`,
      write: true,
      handler: async (c) => {
        const body = await c.json(policyBindingSchema, bodyLimit);
        const name = c.params.policy!;
        return policyWrite(c, 'policy.update', (r) => {
          const i = existing(r, name);
          const old = r.draft.policies[i]!;
          if (old.policy.type !== body.policy.type) {
            throw new AdminError('BAD_REQUEST', `an update may not change the policy type (${old.policy.type})`, [{ path: 'policy.type', message: `must stay ${old.policy.type}` }]);
          }
          checkBodyName(body, name);
          const b = stored(body, old.policy.name);
          const order = body.operationMetadata.order;
          if ((order === null || order === undefined) && b.operationMetadata.targetPipeline === old.operationMetadata.targetPipeline) {
            r.draft.policies[i] = b; // null keeps the position
          } else {
            r.draft.policies.splice(i, 1);
            insertAt(r.draft.policies, b, order);
          }
          return { before: old, after: b, deploy: body.operationMetadata.deploy !== false, envs: body.operationMetadata.deployTargetEnvironmentNameList };
        });
      },
    },
    {
      method: 'DELETE',
      path: `${base}:policy/`,
      write: true,
      handler: async (c) => {
        // An empty body is read as {}, so that it is a 400 naming operationMetadata, not a 415.
        const body = await c.json(deleteBodySchema, bodyLimit, true);
        return policyWrite(c, 'policy.delete', (r) => {
          const i = existing(r, c.params.policy!);
          const meta = body.operationMetadata;
          checkDeleteTarget(r.draft.policies[i]!, meta);
          const [old] = r.draft.policies.splice(i, 1);
          // The seed's default for delete is deploy: false.
          return { before: old!, after: null, deploy: meta.deploy === true, envs: meta.deployTargetEnvironmentNameList };
        });
      },
    },
  ];
}
