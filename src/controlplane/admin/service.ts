/**
 * The admin API's operations on the store, independent of HTTP.
 *
 * Every write is one serialised store update. Inside it, the changed state is compiled for every
 * environment the write deploys to (and for this node's own), and a working copy it changes is
 * compiled as if deployed: a change that does not compile is refused with the compiler's field
 * paths and nothing is written. After the commit, this node's snapshot is swapped in before the
 * response is sent, so a deploymentResult of success for this node's environment means
 * "enforced here, now".
 */
import type { CompileIssue, CompileResult } from '../../policy/compile.js';
import type { PolicyState } from '../../policy/model.js';
import type { Snapshot } from '../../policy/snapshot.js';
import type { ProjectRecord, ProxyRecord, StoreData } from '../store/state.js';
import { StoreConflictError, StoreUnavailableError, type DeploymentResult, type NodeInfo, type Store } from '../store/store.js';
import { stateForEnvironment } from '../store/to-state.js';
import type { IncomingMessage } from 'node:http';
import { type TrustFn } from '../../dataplane/client-ip.js';
import { checkPolicy } from '../../dataplane/decide.js';
import { RequestContext } from '../../dataplane/request-context.js';
import type { DataPlaneShared } from '../../dataplane/shared.js';
import type { CompiledPipeline } from '../../policy/snapshot.js';
import { AccessList } from './access.js';
import { appendAudit } from './audit.js';
import { AdminError } from './errors.js';

export type { DeploymentResult };

/** This node's outcome of enforcing a new revision (all of its worker processes). */
export interface EnforceOutcome {
  readonly success: boolean;
  readonly message: string;
}

export interface ServiceDeps {
  readonly store: Store | null;
  /** This node's environment. */
  readonly environment: string;
  readonly compile: (state: PolicyState) => CompileResult;
  /**
   * Enforce a committed state on this node (every worker process), given the snapshot already
   * compiled from it. Resolves when enforced, or with the reason it is not.
   */
  readonly enforce: (snapshot: Snapshot, state: PolicyState) => Promise<EnforceOutcome>;
  /** The snapshot this node enforces now. */
  readonly current: () => Snapshot | null;
  /** Whether an upstream origin is this node's own admin listener. */
  readonly frontsAdmin: (origin: string) => boolean;
  readonly trust: TrustFn;
}

export interface WriteOutcome<T> {
  readonly result: T;
  readonly data: StoreData;
  readonly deploymentResults: DeploymentResult[];
}

export interface WriteSpec<T> {
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  readonly project: string | null;
  readonly proxy: string | null;
  /** The caller, for lockout protection on API proxies that front the admin API. */
  readonly caller?: { readonly callerIp: string | null; readonly force: boolean } | undefined;
  /**
   * Mutates the draft store; returns the result, the environments deployed to, before/after for
   * the audit, and the API proxy (a record of `d`) whose working copy it changed, if any.
   */
  readonly mutate: (d: StoreData) => { result: T; deployed: readonly string[]; before: unknown; after: unknown; working?: ProxyRecord };
}

/** The parts of a route's context writeProxy and writeProject need (a RouteContext has them). */
export interface RouteCaller {
  readonly actor: string;
  readonly callerIp: string | null;
  readonly force: boolean;
  readonly params: Readonly<Record<string, string>>;
}

function issuesToError(env: string, issues: readonly CompileIssue[], what = 'the change'): AdminError {
  return new AdminError(
    'BAD_REQUEST',
    `${what} does not compile for environment ${env}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    issues.map((i) => ({ path: i.path, message: i.message })),
  );
}

/**
 * The compiler reports a route clash at the state's root ("projects"). Every other proxy is as it
 * was deployed, and compiled then, so in a working-copy check the clash is this proxy's: its
 * basePath is the field to name.
 */
function routingIssue(i: CompileIssue): CompileIssue {
  return i.path === 'projects' && i.message.startsWith('Duplicate route for basePath') ? { path: 'basePath', message: i.message } : i;
}

export class AdminService {
  private access: AccessList = new AccessList([]);
  private accessVersion = -1;

  constructor(private readonly deps: ServiceDeps) {}

  /** The admin-access list of the current store state, compiled once per version. */
  accessList(): AccessList {
    const a = this.deps.store?.data.adminAccess;
    const version = a?.version ?? 0;
    if (version !== this.accessVersion) {
      this.access = new AccessList(a?.ipList ?? []);
      this.accessVersion = version;
    }
    return this.access;
  }

  get environment(): string {
    return this.deps.environment;
  }

  /** Every gateway node the store knows (this one at least, once it has enforced a snapshot). */
  nodes(): Promise<NodeInfo[]> {
    if (this.deps.store === null) throw new AdminError('SERVICE_UNAVAILABLE', 'no store is configured (set store.file or IPGATE_STORE)');
    return this.deps.store.nodes().catch(storeError);
  }

  data(): Readonly<StoreData> {
    if (this.deps.store === null) throw new AdminError('SERVICE_UNAVAILABLE', 'no store is configured (set store.file or IPGATE_STORE)');
    return this.deps.store.data;
  }

  /**
   * A change to a proxy that fronts this admin API must not shut its caller out: if the caller is
   * let through now and would be rejected by the new proxy-wide REQUEST policies, refuse with 409.
   */
  private lockoutGuard(next: Snapshot, callerIp: string | null): void {
    if (callerIp === null) return;
    const now = this.deps.current();
    for (const proxy of next.proxies) {
      if (!this.deps.frontsAdmin(proxy.upstream.origin)) continue;
      const before = now?.proxies.find((p) => p.projectName === proxy.projectName && p.name === proxy.name);
      if (before !== undefined && !passes(before.request, callerIp, this.deps.trust)) continue;
      if (!passes(proxy.request, callerIp, this.deps.trust)) {
        throw new AdminError(
          'CONFLICT',
          `this change would lock you out: API proxy ${proxy.name} fronts the admin API and its policies would reject your address ${callerIp}. Repeat with ?force=true if that is intended.`,
        );
      }
    }
  }

  /**
   * write() for a route on the API proxy its URL names (:project, :proxy): the caller is the actor
   * and the one lockout protection looks at.
   */
  writeProxy<T>(c: RouteCaller, action: string, target: string, mutate: WriteSpec<T>['mutate']): Promise<WriteOutcome<T>> {
    return this.write({ actor: c.actor, caller: c, action, target, project: c.params.project!, proxy: c.params.proxy!, mutate });
  }

  /** The same for a route on a project's own resources (:project; no API proxy in the URL). */
  writeProject<T>(c: RouteCaller, action: string, target: string, mutate: WriteSpec<T>['mutate']): Promise<WriteOutcome<T>> {
    return this.write({ actor: c.actor, caller: c, action, target, project: c.params.project!, proxy: null, mutate });
  }

  /**
   * A working copy that does not compile must not be stored either: saved with deploy: false, it
   * would make every later deploying write of the proxy fail. It is compiled as if deployed, with
   * the other proxies as they are deployed, to each environment the proxy is deployed to (where
   * its next default deploy goes), or to every environment when it is deployed nowhere (its
   * first deploy may go to any). An environment this write deployed it to was compiled already.
   */
  private checkWorkingCopy(next: Readonly<StoreData>, r: ProxyRecord): void {
    const deployedTo = Object.keys(r.deployments);
    const envs = deployedTo.length > 0 ? deployedTo : next.environments.map((e) => e.name);
    for (const env of envs) {
      if (r.deployments[env]?.revision === next.revision) continue;
      const c = this.deps.compile(stateForEnvironment(next, env, r));
      if (!c.ok) throw issuesToError(env, c.issues.map(routingIssue), `the working copy of API proxy ${r.draft.name}`);
    }
  }

  async write<T>(spec: WriteSpec<T>): Promise<WriteOutcome<T>> {
    const store = this.deps.store;
    if (store === null) throw new AdminError('SERVICE_UNAVAILABLE', 'no store is configured (set store.file or IPGATE_STORE)');
    let own: CompileResult | null = null;
    let deployed: readonly string[] = [];
    let working: ProxyRecord | undefined;
    const { data, result } = await store
      .update(
        (d) => {
          const m = spec.mutate(d);
          deployed = m.deployed;
          working = m.working;
          appendAudit(d, { actor: spec.actor, action: spec.action, target: spec.target, project: spec.project, proxy: spec.proxy, before: m.before, after: m.after });
          return m.result;
        },
        {
          // Validate by compiling what each touched environment would enforce at the new revision;
          // a change that does not compile is refused with the compiler's paths and never stored.
          check: (next) => {
            for (const env of new Set([...deployed, this.deps.environment])) {
              const r = this.deps.compile(stateForEnvironment(next, env));
              if (!r.ok) throw issuesToError(env, r.issues);
              if (env === this.deps.environment) {
                own = r;
                if (spec.caller !== undefined && !spec.caller.force) this.lockoutGuard(r.snapshot, spec.caller.callerIp);
              }
            }
            if (working !== undefined) this.checkWorkingCopy(next, working);
          },
        },
      )
      .catch(storeError);
    const compiled = own as CompileResult | null;
    let outcome: EnforceOutcome = { success: false, message: 'compile failed; the last good revision is still enforced' };
    if (compiled !== null && compiled.ok) outcome = await this.deps.enforce(compiled.snapshot, stateForEnvironment(data, this.deps.environment));
    const deploymentResults = await store.deploymentResults(deployed, data.revision, { environment: this.deps.environment, ...outcome });
    return { result, data, deploymentResults };
  }
}

/** The store's own failures in the admin error table: an unreachable database is a 503, a lost version race a 412. */
function storeError(err: unknown): never {
  if (err instanceof StoreUnavailableError) throw new AdminError('SERVICE_UNAVAILABLE', err.message);
  if (err instanceof StoreConflictError) throw new AdminError('PRECONDITION_FAILED', err.message);
  throw err;
}

/** The Apinizer reply of a write that may deploy: overall success only when every environment succeeded. */
export function deploymentReply(results: readonly DeploymentResult[]): { success: true; deploymentResult: { success: boolean; deploymentResults: readonly DeploymentResult[] } } {
  return { success: true, deploymentResult: { success: results.every((x) => x.success), deploymentResults: results } };
}

// ---- lookups shared by the routes (case-insensitive names) ----------------------------------------

export function findProject(d: Readonly<StoreData>, name: string): ProjectRecord {
  const p = d.projects.find((x) => x.name.toLowerCase() === name.toLowerCase());
  if (p === undefined) throw new AdminError('NOT_FOUND', `no project ${JSON.stringify(name)}`);
  return p;
}

export function findProxy(p: ProjectRecord, name: string): ProxyRecord {
  const a = p.proxies.find((x) => x.draft.name.toLowerCase() === name.toLowerCase());
  if (a === undefined) throw new AdminError('NOT_FOUND', `no API proxy ${JSON.stringify(name)} in project ${p.name}`);
  return a;
}

export function requireEnvironment(d: Readonly<StoreData>, name: string): string {
  const e = d.environments.find((x) => x.name.toLowerCase() === name.toLowerCase());
  if (e === undefined) throw new AdminError('NOT_FOUND', `no environment ${JSON.stringify(name)}`);
  return e.name;
}

/**
 * The version a resource gets from the write that creates or changes it: the revision that write
 * commits (the store sets it to the draft's + 1). Revisions only grow, and an import continues
 * them, so a resource never gets a version it had before, not after an import nor when it is
 * deleted and created again: an ETag read before can never match a later content. (A counter per
 * resource restarted at 1 there, and a stale If-Match: "1" overwrote another admin's change.)
 */
export function nextVersion(d: Readonly<StoreData>): number {
  return d.revision + 1;
}

/** ETag of a versioned resource. */
export function etagOf(version: number): string {
  return `"${version}"`;
}

/**
 * RFC 9110 §13.1.1 If-Match: a stale tag is a 412, so two admins never overwrite each other silently.
 * The comparison is strong (§8.8.3.2): a weak tag (W/"7") never matches, whatever its value.
 */
export function checkIfMatch(ifMatch: string | undefined, version: number): void {
  if (ifMatch === undefined) return;
  const tags = ifMatch.split(',').map((t) => t.trim());
  if (tags.includes('*') || tags.includes(etagOf(version))) return;
  throw new AdminError('PRECONDITION_FAILED', `If-Match ${ifMatch} does not match the current ETag ${etagOf(version)}`);
}

/** Does any deployment of this proxy differ from its working copy? */
export function redeployRequired(r: ProxyRecord): boolean {
  const draft = JSON.stringify(r.draft);
  return Object.values(r.deployments).some((dep) => JSON.stringify(dep.proxy) !== draft);
}

/** Would the proxy-wide policies of `pipe` let a direct client at `ip` through? (Same check as traffic.) */
function passes(pipe: CompiledPipeline | null, ip: string, trust: TrustFn): boolean {
  if (pipe === null) return true;
  const req = { method: 'GET', headers: {}, rawHeaders: [], socket: { remoteAddress: ip } } as unknown as IncomingMessage;
  const shared = { trust, countPolicy: () => undefined } as unknown as DataPlaneShared;
  const ctx = new RequestContext(shared, req, 'lockout-check', '/', '/', '');
  return pipe.proxyWide.every((p) => checkPolicy(p, ctx) === null);
}
