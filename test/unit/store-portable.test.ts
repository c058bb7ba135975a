/**
 * Seeding a store from config and importing an export (store/to-state.ts seedStore, store/portable.ts):
 * what IP group entries are stored as, and what becomes of the deploy history on an import.
 */
import { describe, expect, it } from 'vitest';
import { exportState, importState } from '../../src/controlplane/store/portable.js';
import type { StoreData } from '../../src/controlplane/store/state.js';
import { seedStore } from '../../src/controlplane/store/to-state.js';
import type { PolicyState } from '../../src/policy/model.js';
import { proxyDef } from '../helpers/store-seed.js';

function state(entries: string[]): PolicyState {
  return {
    revision: 1,
    projects: [{ name: 'p', description: undefined, ipGroups: [{ id: 'g', name: 'g', entries: entries.map((ip) => ({ ip })) }], apiProxies: [proxyDef('a', ['10.0.0.0/8'])] }],
  };
}

describe('seedStore and importState', () => {
  it('store IP group entries in canonical form: a single address as a /32 or /128; an export imports unchanged', () => {
    const seeded = seedStore(state(['192.0.2.1', '2001:DB8:0::1', ' 10.0.0.0/8', '::ffff:192.0.2.9', '10.3.10.4-18']), 'production');
    const stored = ['192.0.2.1/32', '2001:db8::1/128', '10.0.0.0/8', '192.0.2.9/32', '10.3.10.4-18'];
    expect(seeded.projects[0]!.ipGroups[0]!.entries.map((e) => e.ip)).toEqual(stored);
    const doc = exportState(seeded);
    expect(doc.projects[0]!.ipGroups[0]!.entries.map((e) => e.ip)).toEqual(stored);
    expect(importState(seeded, doc, 'production').projects[0]!.ipGroups[0]!.entries).toEqual(seeded.projects[0]!.ipGroups[0]!.entries);
  });

  it('records the seeded deployments in the history, so that they can be rolled back to', () => {
    const r = seedStore(state([]), 'production').projects[0]!.proxies[0]!;
    expect(r.history).toEqual([{ ...r.deployments.production, environment: 'production', kind: 'deploy' }]);
    expect(r.history![0]).toMatchObject({ revision: 1, deployedBy: 'config' });
  });

  it('keeps the history of a proxy an import keeps, and adds the import, at the revision it commits', () => {
    const current: StoreData = { ...seedStore(state([]), 'production'), revision: 7 };
    const r0 = current.projects[0]!.proxies[0]!;
    const past = [{ ...r0.deployments.production!, revision: 3, environment: 'production', kind: 'deploy' }];
    r0.history = past;
    const r = importState(current, exportState(current), 'production').projects[0]!.proxies[0]!;
    expect(r.history).toEqual([...past, { ...r.deployments.production, environment: 'production', kind: 'deploy' }]);
    expect(r.deployments.production!.revision).toBe(8);
  });
});
