/**
 * Export and import: the whole state in the config file's `projects:` shape, so an export is
 * both a backup and a valid GitOps config. Each API proxy is exported as its working copy, with
 * `environments` listing where it is deployed. Importing deploys each proxy to the environments it
 * lists. (A proxy whose working copy differs from what is deployed is exported as the working copy:
 * the difference, redeployRequired, does not survive an export.)
 */
import { z } from 'zod';
import { environmentNamesSchema, projectSchema } from '../../config/schema.js';
import type { PolicyState } from '../../policy/model.js';
import { MAX_HISTORY, type StoreData } from './state.js';
import { seedStore } from './to-state.js';

export const exportSchema = z.strictObject({
  /**
   * Environments known to the store, including ones no proxy is deployed to: valid names, each
   * once in any case, as POST /apiops/environments/{name}/ requires of a new one.
   */
  environments: environmentNamesSchema.default([]),
  projects: z.array(projectSchema).default([]),
});

/**
 * The body of PUT /apiops/import/: an export document, also as GET /apiops/export/ answers it,
 * with the reply's `success` and `revision`, so that an export can be imported as it is. Those
 * two are checked for their type and ignored (the import commits the next revision); any other
 * key is refused as in exportSchema.
 */
export const importBodySchema = exportSchema.extend({
  success: z.literal(true).optional(),
  revision: z.number().int().min(0).optional(),
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
    // Every resource is new content at the revision the import commits (the store's + 1): a version
    // restarted at 1 would let an If-Match read before the import match again (admin/service.ts nextVersion).
    for (const p of next.projects) for (const r of [...p.proxies, ...p.ipGroups]) r.version = current.revision + 1;
    for (const p of next.projects) {
      const was = current.projects.find((x) => x.name.toLowerCase() === p.name.toLowerCase());
      for (const r of p.proxies) {
        // The import deploys at the revision it commits, and is recorded as a deploy is. A proxy's
        // past deployments stay in its history, to roll back to, as after any deploy.
        // (seedStore recorded the import's deployments in r.history.)
        for (const dep of [...Object.values(r.deployments), ...(r.history ?? [])]) dep.revision = current.revision + 1;
        const old = was?.proxies.find((x) => x.draft.name.toLowerCase() === r.draft.name.toLowerCase())?.history ?? [];
        r.history = [...old, ...(r.history ?? [])].slice(-MAX_HISTORY);
      }
    }
    next.audit = [...current.audit];
    if (current.adminAccess !== undefined) next.adminAccess = structuredClone(current.adminAccess);
  }
  return next;
}
