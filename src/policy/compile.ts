/**
 * The compiler: declarative PolicyState → immutable Snapshot.
 *
 * Everything the data plane needs per request is prepared here: IP entries parsed into tries,
 * endpoint patterns compiled, SCRIPT sources compiled with node:vm, upstream URLs split, the route
 * table built. A compile either produces a whole snapshot or a list of path-named errors; it never
 * produces a partial one, so a bad write can never weaken enforcement.
 */
import { performance } from 'node:perf_hooks';
import { RouteTable } from '../dataplane/route-table.js';
import { compileEndpointPattern } from './endpoint-pattern.js';
import { IpTrieBuilder } from './ip-trie.js';
import { pace } from './pace.js';
import type { ApiProxyDef, IpGroupDef, PolicyBinding, PolicyState, ProjectDef, TargetPipeline, TargetVariableForIP } from './model.js';
import { compileScriptSource } from './script-source.js';
import {
  ALL_METHODS,
  IpSourceKind,
  METHOD_BITS,
  PolicyKind,
  type CompiledIpSource,
  type CompiledPipeline,
  type CompiledPolicy,
  type CompiledProxy,
  type CompiledUpstream,
  type Snapshot,
} from './snapshot.js';

export interface CompileOptions {
  /** This node's environment: only proxies deployed to it are routed. */
  readonly environment: string;
  readonly upstreamDefaults: { readonly connectTimeoutMs: number; readonly headersTimeoutMs: number; readonly bodyTimeoutMs: number };
  readonly scriptTimeoutMs: number;
  /** Wall clock in epoch ms, for IP group entry expiry. Injectable for tests. */
  readonly now?: number | undefined;
}

export interface CompileIssue {
  readonly path: string;
  readonly message: string;
}

export type CompileResult = { ok: true; snapshot: Snapshot } | { ok: false; issues: CompileIssue[] };

const DEFAULT_SOURCE: CompiledIpSource = {
  kind: IpSourceKind.Default,
  name: '',
  bodyPath: [],
  script: null,
  trustUntrustedPeers: false,
  label: 'default',
};

class Issues {
  readonly list: CompileIssue[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
}

function compileSource(tv: TargetVariableForIP | null | undefined, opts: CompileOptions): CompiledIpSource {
  if (tv === null || tv === undefined) return DEFAULT_SOURCE;
  const trust = tv.trustUntrustedPeers === true;
  switch (tv.type) {
    case 'HEADER':
      return { kind: IpSourceKind.Header, name: (tv.headerName ?? '').toLowerCase(), bodyPath: [], script: null, trustUntrustedPeers: trust, label: 'header' };
    case 'PARAMETER':
      return { kind: IpSourceKind.Parameter, name: tv.paramName ?? '', bodyPath: [], script: null, trustUntrustedPeers: trust, label: 'parameter' };
    case 'BODY':
      return { kind: IpSourceKind.Body, name: '', bodyPath: (tv.bodyPath ?? '').split('.'), script: null, trustUntrustedPeers: trust, label: 'body' };
    case 'CONTEXT':
      return tv.contextValue === 'REMOTE_ADDR'
        ? { kind: IpSourceKind.RemoteAddr, name: '', bodyPath: [], script: null, trustUntrustedPeers: false, label: 'context' }
        : DEFAULT_SOURCE;
    case 'SCRIPT':
      return {
        kind: IpSourceKind.Script,
        name: '',
        bodyPath: [],
        script: compileScriptSource(tv.script ?? '', opts.scriptTimeoutMs),
        scriptSource: tv.script ?? '',
        trustUntrustedPeers: trust,
        label: 'script',
      };
    default:
      throw new TypeError(`type: unknown client IP source ${JSON.stringify((tv as { type?: unknown }).type)}`);
  }
}

// What the compiler branches on. The admin API and the config loader validate every field, but a
// state can also come from a store another writer filled: a value outside these sets must fail the
// compile (the last good snapshot stays), never quietly mean something looser.
const POLICY_TYPES: ReadonlySet<unknown> = new Set(['policy-white-ip', 'policy-black-ip']);
const PIPELINES: ReadonlySet<unknown> = new Set(['REQUEST', 'RESPONSE', 'ERROR']);
const SCOPES: ReadonlySet<unknown> = new Set(['ALL', 'ENDPOINT']);

function findGroup(project: ProjectDef, ref: string): IpGroupDef | undefined {
  return project.ipGroups.find((g) => g.id === ref) ?? project.ipGroups.find((g) => g.name.toLowerCase() === ref.toLowerCase());
}

interface PolicyCompileContext {
  readonly project: ProjectDef;
  readonly proxy: ApiProxyDef;
  readonly path: string;
  readonly now: number;
  readonly issues: Issues;
  readonly opts: CompileOptions;
}

function compilePolicy(b: PolicyBinding, c: PolicyCompileContext): CompiledPolicy | null {
  const p = b.policy;
  const m = b.operationMetadata;
  const before = c.issues.list.length;
  if (!POLICY_TYPES.has(p.type)) c.issues.add(`${c.path}.policy.type`, `must be policy-white-ip or policy-black-ip, not ${JSON.stringify(p.type)}`);
  if (!PIPELINES.has(m.targetPipeline)) c.issues.add(`${c.path}.operationMetadata.targetPipeline`, `must be REQUEST, RESPONSE or ERROR, not ${JSON.stringify(m.targetPipeline)}`);
  if (!SCOPES.has(m.targetScope)) c.issues.add(`${c.path}.operationMetadata.targetScope`, `must be ALL or ENDPOINT, not ${JSON.stringify(m.targetScope)}`);
  if (p.ipList !== undefined && !Array.isArray(p.ipList)) c.issues.add(`${c.path}.policy.ipList`, 'must be a list');
  if (p.ipGroupIdList !== undefined && !Array.isArray(p.ipGroupIdList)) c.issues.add(`${c.path}.policy.ipGroupIdList`, 'must be a list');
  if (c.issues.list.length > before) return null;
  const kind = p.type === 'policy-white-ip' ? PolicyKind.Allow : PolicyKind.Block;
  // An entry without an explicit action takes the policy's own: allow in a white list, deny in a block list.
  const ownAction: 0 | 1 = kind === PolicyKind.Allow ? 0 : 1;
  const builder = new IpTrieBuilder();
  const entryText: string[] = [];
  let prefixCount = 0;
  let nextExpiry = Infinity;

  const addEntry = (text: string, action: 0 | 1, label: string, where: string) => {
    // parseIpEntry's syntax and errors; plain addresses and CIDRs go straight into the builder.
    const added = builder.addEntry(text, action, entryText.length);
    if (typeof added === 'string') {
      c.issues.add(where, added);
      return;
    }
    entryText.push(label);
    prefixCount += added;
  };

  const ipList = p.ipList ?? [];
  for (let i = 0; i < ipList.length; i++) {
    const text = ipList[i]!;
    pace();
    addEntry(text, ownAction, text, `${c.path}.policy.ipList[${i}]`);
  }
  const groups = p.ipGroupIdList ?? [];
  for (let g = 0; g < groups.length; g++) {
    const ref = groups[g]!;
    const group = findGroup(c.project, ref);
    if (group === undefined) {
      c.issues.add(`${c.path}.policy.ipGroupIdList[${g}]`, `no IP group ${JSON.stringify(ref)} in project ${c.project.name}`);
      continue;
    }
    for (let e = 0; e < group.entries.length; e++) {
      const entry = group.entries[e]!;
      pace();
      if (entry.expiresAt !== undefined) {
        const at = Date.parse(entry.expiresAt);
        if (at <= c.now) continue;
        if (at < nextExpiry) nextExpiry = at;
      }
      const action: 0 | 1 = entry.action === undefined ? ownAction : entry.action === 'allow' ? 0 : 1;
      addEntry(entry.ip, action, `${entry.ip} (group ${group.name})`, `ipGroups[${group.name}].entries[${e}].ip`);
    }
  }
  if (ipList.length === 0 && groups.length === 0) {
    c.issues.add(`${c.path}.policy.ipList`, 'must contain at least one entry (or reference an IP group in ipGroupIdList)');
  }

  let endpoint = null;
  let methods = ALL_METHODS;
  if (m.targetScope === 'ENDPOINT') {
    try {
      endpoint = compileEndpointPattern(m.targetEndpoint ?? '');
    } catch (err) {
      c.issues.add(`${c.path}.operationMetadata.targetEndpoint`, (err as Error).message);
    }
    const method = m.targetEndpointHTTPMethod;
    if (method === undefined) c.issues.add(`${c.path}.operationMetadata.targetEndpointHTTPMethod`, 'required when targetScope is ENDPOINT');
    else if (method !== 'ALL' && METHOD_BITS[method] === undefined) c.issues.add(`${c.path}.operationMetadata.targetEndpointHTTPMethod`, `unknown method ${JSON.stringify(method)}`);
    else if (method !== 'ALL') methods = method === 'GET' ? METHOD_BITS.GET! | METHOD_BITS.HEAD! : METHOD_BITS[method]!;
  }

  let source: CompiledIpSource;
  try {
    source = compileSource(p.targetVariableForIP, c.opts);
  } catch (err) {
    c.issues.add(`${c.path}.policy.targetVariableForIP`, (err as Error).message);
    return null;
  }
  if (c.issues.list.length > before) return null;

  // With the kind, a large list also gets the decision index the hot path asks first.
  const trie = builder.build(kind === PolicyKind.Allow ? 0 : 1);
  return {
    projectName: c.project.name,
    proxyName: c.proxy.name,
    name: p.name,
    kind,
    enforce: p.enforce !== false,
    trie,
    entryText,
    source,
    endpoint,
    methods,
    rejectStatus: p.rejectStatusCode ?? 403,
    rejectMessage: p.rejectMessage ?? null,
    prefixCount,
    nextExpiry,
  };
}

function orderKey(b: PolicyBinding): number {
  const o = b.operationMetadata.order;
  return o === null || o === undefined ? Infinity : o;
}

/** The upstream, or a string saying why its URL is unusable. */
function compileUpstream(proxy: ApiProxyDef, opts: CompileOptions): CompiledUpstream | string {
  let u: URL;
  try {
    u = new URL(proxy.upstream.url);
  } catch {
    return `not a URL: ${JSON.stringify(proxy.upstream.url)}`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `must be an http or https URL, not ${JSON.stringify(proxy.upstream.url)}`;
  const path = u.pathname.endsWith('/') ? u.pathname.slice(0, -1) : u.pathname;
  return {
    origin: u.origin,
    pathPrefix: path,
    connectTimeoutMs: proxy.upstream.connectTimeoutMs ?? opts.upstreamDefaults.connectTimeoutMs,
    headersTimeoutMs: proxy.upstream.headersTimeoutMs ?? opts.upstreamDefaults.headersTimeoutMs,
    bodyTimeoutMs: proxy.upstream.bodyTimeoutMs ?? opts.upstreamDefaults.bodyTimeoutMs,
  };
}

function pipelineOf(list: { b: PolicyBinding; c: CompiledPolicy }[], pipeline: TargetPipeline): CompiledPipeline | null {
  const mine = list.filter((x) => x.b.operationMetadata.targetPipeline === pipeline && x.b.policy.active !== false);
  if (mine.length === 0) return null;
  // Array.prototype.sort is stable, so equal orders keep declaration order.
  const sorted = mine.slice().sort((x, y) => orderKey(x.b) - orderKey(y.b));
  return {
    proxyWide: sorted.filter((x) => x.c.endpoint === null).map((x) => x.c),
    endpoint: sorted.filter((x) => x.c.endpoint !== null).map((x) => x.c),
  };
}

/** Compile a whole policy state for one environment. */
export function compileSnapshot(state: PolicyState, opts: CompileOptions): CompileResult {
  const started = performance.now();
  const now = opts.now ?? Date.now();
  const issues = new Issues();
  const proxies: CompiledProxy[] = [];
  let policyCount = 0;
  let entryCount = 0;
  let prefixes = 0;
  let trieNodes = 0;
  let trieBytes = 0;
  let nextExpiry = Infinity;

  const projectNames = new Set<string>();
  // A shape no validator would have let through (a store another writer filled) must fail the
  // compile, and so keep the last good snapshot, not throw through whoever asked for it.
  try {
    state.projects.forEach((project, pi) => {
      const ppath = `projects[${pi}]`;
      if (projectNames.has(project.name.toLowerCase())) issues.add(`${ppath}.name`, `duplicate project name ${project.name}`);
      projectNames.add(project.name.toLowerCase());
      const groupKeys = new Set<string>();
      project.ipGroups.forEach((g, gi) => {
        for (const key of new Set([g.id, g.name.toLowerCase()])) {
          if (groupKeys.has(key)) issues.add(`${ppath}.ipGroups[${gi}]`, `duplicate IP group ${JSON.stringify(key)}`);
          groupKeys.add(key);
        }
      });
      const proxyNames = new Set<string>();
      project.apiProxies.forEach((proxy, ai) => {
        const apath = `${ppath}.apiProxies[${ai}]`;
        if (proxyNames.has(proxy.name.toLowerCase())) issues.add(`${apath}.name`, `duplicate API proxy name ${proxy.name}`);
        proxyNames.add(proxy.name.toLowerCase());
        const policyNames = new Set<string>();
        const compiled: { b: PolicyBinding; c: CompiledPolicy }[] = [];
        proxy.policies.forEach((b, i) => {
          const path = `${apath}.policies[${i}]`;
          const lname = b.policy.name.toLowerCase();
          if (policyNames.has(lname)) issues.add(`${path}.policy.name`, `duplicate policy name ${b.policy.name} (names are case-insensitive)`);
          policyNames.add(lname);
          const c = compilePolicy(b, { project, proxy, path, now, issues, opts });
          if (c === null) return;
          compiled.push({ b, c });
          if (b.policy.active !== false) {
            policyCount++;
            entryCount += c.entryText.length;
            prefixes += c.prefixCount;
            trieNodes += c.trie.stats.nodes;
            trieBytes += c.trie.stats.bytes;
            if (c.nextExpiry < nextExpiry) nextExpiry = c.nextExpiry;
          }
        });
        if (!proxy.environments.includes(opts.environment)) return;
        const upstream = compileUpstream(proxy, opts);
        if (typeof upstream === 'string') {
          issues.add(`${apath}.upstream.url`, upstream);
          return;
        }
        const request = pipelineOf(compiled, 'REQUEST');
        const response = pipelineOf(compiled, 'RESPONSE');
        const error = pipelineOf(compiled, 'ERROR');
        const needsBody = compiled.some((x) => x.b.policy.active !== false && x.c.source.kind === IpSourceKind.Body);
        proxies.push({
          projectName: project.name,
          name: proxy.name,
          basePath: proxy.basePath,
          hosts: proxy.hosts ?? [],
          upstream,
          request,
          response,
          error,
          needsBody,
          index: proxies.length,
        });
      });
    });
  } catch (err) {
    issues.add('projects', `cannot be compiled: ${err instanceof Error ? err.message : String(err)}`);
  }

  let routes: RouteTable<CompiledProxy> | null = null;
  try {
    routes = new RouteTable(proxies.map((p) => ({ basePath: p.basePath, hosts: p.hosts, value: p })));
  } catch (err) {
    issues.add('projects', (err as Error).message);
  }
  if (issues.list.length > 0 || routes === null) return { ok: false, issues: issues.list };

  return {
    ok: true,
    snapshot: {
      revision: state.revision,
      environment: opts.environment,
      routes,
      proxies,
      nextExpiry,
      stats: {
        proxies: proxies.length,
        policies: policyCount,
        entries: entryCount,
        prefixes,
        trieNodes,
        trieBytes,
        compileMs: performance.now() - started,
      },
    },
  };
}
