/**
 * Conversions between the persisted store and the compiler's input.
 */
import { randomUUID } from 'node:crypto';
import type { ApiProxyDef, PolicyState, ProjectDef } from '../../policy/model.js';
import { STORE_FORMAT, type ProxyDraft, type StoreData } from './state.js';

/** What a node of environment `env` enforces: the deployed copy of each proxy deployed there. */
export function stateForEnvironment(d: Readonly<StoreData>, env: string): PolicyState {
  const projects: ProjectDef[] = d.projects.map((p) => ({
    name: p.name,
    description: p.description,
    ipGroups: p.ipGroups,
    apiProxies: p.proxies.flatMap((r): ApiProxyDef[] => {
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
      ipGroups: p.ipGroups.map((g) => ({ ...g, version: 1 })),
      proxies: p.apiProxies.map((a) => {
        const draft = draftOf(a);
        return {
          draft,
          version: 1,
          deployments: Object.fromEntries(a.environments.map((e) => [e, { revision: 1, deployedAt: at, deployedBy: 'config', proxy: structuredClone(draft) }])),
        };
      }),
    })),
    audit: [],
  };
}
