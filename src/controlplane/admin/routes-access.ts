/**
 * GET/PUT /apiops/admin-access/ — the admin listener's own IP allowlist (DigiCert's account IP
 * restrictions). A change that would exclude the caller's own address is refused with 409 unless
 * ?force=true, because the next request would be locked out with no way back in.
 */
import { z } from 'zod';
import { ipEntrySchema } from '../../config/schema.js';
import { AccessList } from './access.js';
import { AdminError } from './errors.js';
import type { Route } from './router.js';
import { checkIfMatch, etagOf, nextVersion, type AdminService } from './service.js';

/** PUT /apiops/admin-access/ body (also described in the OpenAPI document). */
export const adminAccessBodySchema = z.strictObject({ ipList: z.array(ipEntrySchema).max(10_000) });

export function accessRoutes(svc: AdminService, bodyLimit: number): Route[] {
  return [
    {
      method: 'GET',
      path: '/apiops/admin-access/',
      handler: async () => {
        const a = svc.data().adminAccess ?? { ipList: [], version: 0 };
        return { body: { success: true, ipList: a.ipList, restricted: a.ipList.length > 0 }, etag: etagOf(a.version) };
      },
    },
    {
      method: 'PUT',
      path: '/apiops/admin-access/',
      handler: async (c) => {
        const body = await c.json(adminAccessBodySchema, bodyLimit);
        const next = new AccessList(body.ipList);
        if (!next.allows(c.callerIp) && !c.force) {
          throw new AdminError(
            'CONFLICT',
            `this list would lock you out: your address ${c.callerIp ?? '(undeterminable)'} is not in it. Add it, or repeat with ?force=true if that is intended.`,
            [{ path: 'ipList', message: `does not contain ${c.callerIp ?? 'the caller'}` }],
          );
        }
        const out = await svc.write({
          actor: c.actor,
          caller: c,
          action: 'adminAccess.replace',
          target: 'admin-access',
          project: null,
          proxy: null,
          mutate: (d) => {
            const before = d.adminAccess ?? { ipList: [], version: 0 };
            checkIfMatch(c.ifMatch, before.version);
            d.adminAccess = { ipList: body.ipList, version: nextVersion(d) };
            return { result: d.adminAccess.version, deployed: [], before: before.ipList, after: body.ipList };
          },
        });
        return { body: { success: true, ipList: body.ipList, restricted: body.ipList.length > 0 }, etag: etagOf(out.result) };
      },
    },
  ];
}
