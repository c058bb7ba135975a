/**
 * GET /apiops/audit/ — every admin write, newest first, filterable by project and proxy.
 */
import type { Route } from './router.js';
import { cursorOf, nextPageUri, parseCursor, parseLimit } from './pagination.js';
import type { AdminService } from './service.js';

export function auditRoutes(svc: AdminService): Route[] {
  return [
    {
      method: 'GET',
      path: '/apiops/audit/',
      handler: async (c) => {
        const limit = parseLimit(c.query);
        // The cursor is the id below which to continue (records are listed newest first).
        const below = parseCursor(c.query) ?? Number.MAX_SAFE_INTEGER;
        const project = c.query.get('project')?.toLowerCase() ?? null;
        const proxy = c.query.get('proxy')?.toLowerCase() ?? null;
        const audit = svc.data().audit;
        const out = [];
        let i = audit.length - 1;
        for (; i >= 0 && out.length < limit; i--) {
          const r = audit[i]!;
          if (r.id >= below) continue;
          if (project !== null && r.project?.toLowerCase() !== project) continue;
          if (proxy !== null && r.proxy?.toLowerCase() !== proxy) continue;
          out.push(r);
        }
        const last = out[out.length - 1];
        const more = last !== undefined && out.length === limit && audit.some((r) => r.id < last.id && (project === null || r.project?.toLowerCase() === project) && (proxy === null || r.proxy?.toLowerCase() === proxy));
        return { body: { success: true, resultList: out, resultCount: out.length, next_page_uri: more ? nextPageUri('/apiops/audit/', c.query, cursorOf(last.id)) : null } };
      },
    },
  ];
}
