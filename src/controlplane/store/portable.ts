/**
 * Export and import: the whole state in the config file's `projects:` shape, so an export is
 * both a backup and a valid GitOps config. Each API proxy is exported as its working copy, with
 * `environments` listing where it is deployed. Importing deploys each proxy to the environments it
 * lists. (A proxy whose working copy differs from what is deployed is exported as the working copy:
 * the difference, redeployRequired, does not survive an export.)
 */
import { z } from 'zod';
import { projectSchema } from '../../config/schema.js';
import type { PolicyState } from '../../policy/model.js';
import type { StoreData } from './state.js';
import { seedStore } from './to-state.js';

export const exportSchema = z.strictObject({
  /** Environments known to the store, including ones no proxy is deployed to. */
  environments: z.array(z.string()).default([]),
  projects: z.array(projectSchema).default([]),
});

export type ExportDoc = z.output<typeof exportSchema>;

export function exportState(d: Readonly<StoreData>): ExportDoc {
  return {
    environments: d.environments.map((e) => e.name),
    projects: d.projects.map((p) => ({
      name: p.name,
      description: p.description,
      ipGroups: p.ipGroups.map(({ version: _v, ...g }) => g),
      apiProxies: p.proxies.map((r) => ({ ...r.draft, environments: Object.keys(r.deployments).sort() })),
    })),
  };
}

/** A new store state from an export, keeping the old store's epoch and continuing its revisions. */
export function importState(current: Readonly<StoreData> | null, doc: ExportDoc, nodeEnvironment: string): StoreData {
  const state: PolicyState = {
    revision: 1,
    projects: doc.projects.map((p) => ({
      name: p.name,
      description: p.description,
      ipGroups: p.ipGroups.map((g) => ({ ...g, id: g.id ?? g.name })),
      apiProxies: p.apiProxies.map((a) => ({ ...a, policies: a.policies.map((b) => ({ ...b, policy: { ...b.policy, name: b.policy.name! } })) })),
    })),
  };
  const next = seedStore(state, nodeEnvironment);
  for (const e of doc.environments) if (!next.environments.some((x) => x.name === e)) next.environments.push({ name: e, createdAt: new Date().toISOString() });
  if (current !== null) {
    next.epoch = current.epoch;
    next.revision = current.revision;
    next.audit = [...current.audit];
    if (current.adminAccess !== undefined) next.adminAccess = structuredClone(current.adminAccess);
  }
  return next;
}
