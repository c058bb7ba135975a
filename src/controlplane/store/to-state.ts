/**
 * Conversions between the persisted store and the compiler's input.
 */
import { randomUUID } from 'node:crypto';
import { parseIpEntry } from '../../policy/ip-entry.js';
import type { ApiProxyDef, IpGroupEntry, PolicyState, ProjectDef } from '../../policy/model.js';
import { STORE_FORMAT, type ProxyDraft, type ProxyRecord, type StoreData } from './state.js';

/**
 * What a node of environment `env` enforces: the deployed copy of each proxy deployed there.
 * With `working`, a record of `d`: what it would enforce were that proxy's working copy deployed
 * there too (the admin service checks a write that does not deploy with it).
 */
export function stateForEnvironment(d: Readonly<StoreData>, env: string, working?: Readonly<ProxyRecord>): PolicyState {
  const projects: ProjectDef[] = d.projects.map((p) => ({
    name: p.name,
    description: p.description,
    ipGroups: p.ipGroups,
    apiProxies: p.proxies.flatMap((r): ApiProxyDef[] => {
      if (r === working) return [{ ...r.draft, environments: [env] }];
      const dep = r.deployments[env];
      return dep === undefined ? [] : [{ ...dep.proxy, environments: [env] }];
    }),
  }));
  return { revision: d.revision, projects };
}

export function draftOf(p: ApiProxyDef): ProxyDraft {
  const { environments: _environments, ...draft } = p;
  return draft;
}

/**
 * The text an IP group entry's ip is stored and returned as (Amani's list stores 127.0.0.1 as
 * 127.0.0.1/32): an address or CIDR in canonical form, so a single address is a /32 or /128, IPv6
 * lowercase and compressed, IPv4-mapped as IPv4; a range or wildcard as written, trimmed. The text
 * is valid already (validated); anything else is only trimmed.
 */
export function groupEntryIp(text: string): string {
  const r = parseIpEntry(text);
  return r.ok ? r.canonical : text.trim();
}

function storedGroupEntry(e: IpGroupEntry): IpGroupEntry {
  return { ...e, ip: groupEntryIp(e.ip) };
}

/** A new store seeded from config projects: every proxy deployed to the environments it lists. */
export function seedStore(state: PolicyState, nodeEnvironment: string, now: Date = new Date()): StoreData {
  const at = now.toISOString();
  const envs = new Set<string>([nodeEnvironment]);
  for (const p of state.projects) for (const a of p.apiProxies) for (const e of a.environments) envs.add(e);
  return {
    format: STORE_FORMAT,
    epoch: randomUUID(),
    revision: 1,
    environments: [...envs].sort().map((name) => ({ name, createdAt: at })),
    projects: state.projects.map((p) => ({
      name: p.name,
      description: p.description,
      createdAt: at,
      ipGroups: p.ipGroups.map((g) => ({ ...g, entries: g.entries.map(storedGroupEntry), version: 1 })),
      proxies: p.apiProxies.map((a) => {
        const draft = draftOf(a);
        // One deployed copy for every environment, as deployTo makes it. Each deployment is in the
        // history too, as one made through the API would be, so that it can be rolled back to.
        const proxy = structuredClone(draft);
        const deployed = a.environments.map((environment) => ({ environment, revision: 1, deployedAt: at, deployedBy: 'config', proxy }));
        return {
          draft,
          version: 1,
          deployments: Object.fromEntries(deployed.map(({ environment: e, ...dep }) => [e, dep])),
          history: deployed.map((h) => ({ ...h, kind: 'deploy' })),
        };
      }),
    })),
    audit: [],
  };
}
