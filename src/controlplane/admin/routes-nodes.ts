/**
 * GET /apiops/nodes/ — every gateway node the store knows: its environment, the revision and
 * snapshot hash it enforces, when it was last seen, and whether it is live or unreachable.
 */
import type { Route } from './router.js';
import type { AdminService } from './service.js';

export function nodeRoutes(svc: AdminService): Route[] {
  return [
    {
      method: 'GET',
      path: '/apiops/nodes/',
      handler: async () => {
        const list = await svc.nodes();
        return { body: { success: true, resultList: list, resultCount: list.length } };
      },
    },
  ];
}
