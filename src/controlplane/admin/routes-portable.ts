/**
 * GET /apiops/export/ and PUT /apiops/import/: the whole state in the config's projects shape.
 * An import is one write like any other: validated, compiled for every environment it deploys
 * to, audited, and refused whole if anything in it is wrong.
 */
import { exportState, importBodySchema, importState } from '../store/portable.js';
import type { Route } from './router.js';
import { deploymentReply, type AdminService } from './service.js';

export function portableRoutes(svc: AdminService, bodyLimit: number): Route[] {
  return [
    {
      method: 'GET',
      path: '/apiops/export/',
      handler: async () => ({ body: { success: true, revision: svc.data().revision, ...exportState(svc.data()) } }),
    },
    {
      method: 'PUT',
      path: '/apiops/import/',
      handler: async (c) => {
        // The export reply's envelope is accepted so that an export round-trips, and dropped here.
        const { success: _success, revision: _revision, ...doc } = await c.json(importBodySchema, bodyLimit);
        const out = await svc.write({
          actor: c.actor,
          caller: c,
          action: 'store.import',
          target: 'store',
          project: null,
          proxy: null,
          mutate: (d) => {
            const before = exportState(d);
            const next = importState(d, doc, svc.environment);
            d.environments = next.environments;
            d.projects = next.projects;
            const deployed = [...new Set(d.projects.flatMap((p) => p.proxies.flatMap((r) => Object.keys(r.deployments))))].sort();
            return { result: null, deployed, before, after: doc };
          },
        });
        return { body: deploymentReply(out.deploymentResults) };
      },
    },
  ];
}
