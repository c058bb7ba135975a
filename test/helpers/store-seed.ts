/**
 * Store states for store tests: one project "p" whose proxies are deployed to "production".
 */
import type { ApiProxyDef } from '../../src/policy/model.js';
import type { StoreData } from '../../src/controlplane/store/state.js';
import { seedStore } from '../../src/controlplane/store/to-state.js';

/** An API proxy at /<name> with one proxy-wide allow list, deployed to production. */
export function proxyDef(name: string, ipList: string[]): ApiProxyDef {
  return {
    name,
    basePath: `/${name}`,
    upstream: { url: 'http://127.0.0.1:1' },
    environments: ['production'],
    policies: [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'allow', ipList } }],
  };
}

/** A new store (seedStore) holding project "p" with the given proxies (default: "a" allowing 10.0.0.0/8). */
export function seededStore(proxies: ApiProxyDef[] = [proxyDef('a', ['10.0.0.0/8'])]): StoreData {
  return seedStore({ revision: 1, projects: [{ name: 'p', description: undefined, ipGroups: [], apiProxies: proxies }] }, 'production');
}
