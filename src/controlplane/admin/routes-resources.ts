/**
 * Projects, environments, API proxies and deployments.
 */
import { z } from 'zod';
import { basePathSchema, hostSchema, upstreamSchema } from '../../config/schema.js';
import type { ProxyRecord } from '../store/state.js';
import { AdminError } from './errors.js';
import { deployTo } from './routes-policies.js';
import type { Route } from './router.js';
import { checkIfMatch, deploymentReply, etagOf, findProject, findProxy, nextVersion, redeployRequired, requireEnvironment, type AdminService } from './service.js';

export const describedSchema = z.strictObject({ description: z.string().max(1024).optional() });

export const proxyBodySchema = z.strictObject({
  description: z.string().max(1024).optional(),
  basePath: basePathSchema,
  hosts: z.array(hostSchema).optional(),
  upstream: upstreamSchema,
});

function proxyView(r: ProxyRecord): Record<string, unknown> {
  const { policies, ...rest } = r.draft;
  return {
    ...rest,
    policyCount: policies.length,
    deployedEnvironments: Object.keys(r.deployments).sort(),
    redeployRequired: redeployRequired(r),
  };
}

export function resourceRoutes(svc: AdminService, bodyLimit: number): Route[] {
  const P = '/apiops/projects/:project/';
  const A = `${P}apiProxies/:proxy/`;
  return [
    // ---- projects ----
    {
      method: 'GET',
      path: '/apiops/projects/',
      handler: async () => {
        const list = svc.data().projects.map((p) => ({ name: p.name, description: p.description, createdAt: p.createdAt, apiProxyCount: p.proxies.length, ipGroupCount: p.ipGroups.length }));
        return { body: { success: true, resultList: list, resultCount: list.length } };
      },
    },
    {
      method: 'GET',
      path: P,
      handler: async (c) => {
        const p = findProject(svc.data(), c.params.project!);
        return { body: { success: true, project: { name: p.name, description: p.description, createdAt: p.createdAt, apiProxies: p.proxies.map((r) => r.draft.name) } } };
      },
    },
    {
      method: 'POST',
      path: P,
      write: true,
      handler: async (c) => {
        const body = await c.json(describedSchema, bodyLimit, true);
        const name = c.params.project!;
        await svc.write({
          actor: c.actor,
          caller: c,
          action: 'project.create',
          target: name,
          project: name,
          proxy: null,
          mutate: (d) => {
            if (d.projects.some((p) => p.name.toLowerCase() === name.toLowerCase())) throw new AdminError('CONFLICT', `project ${JSON.stringify(name)} already exists`);
            const rec = { name, description: body.description, createdAt: new Date().toISOString(), proxies: [], ipGroups: [] };
            d.projects.push(rec);
            return { result: null, deployed: [], before: null, after: rec };
          },
        });
        return { status: 201, body: { success: true } };
      },
    },
    {
      method: 'DELETE',
      path: P,
      write: true,
      handler: async (c) => {
        await svc.writeProject(c, 'project.delete', c.params.project!, (d) => {
          const p = findProject(d, c.params.project!);
          if (p.proxies.length > 0) throw new AdminError('CONFLICT', `project ${p.name} still has API proxies: ${p.proxies.map((r) => r.draft.name).join(', ')}`);
          d.projects.splice(d.projects.indexOf(p), 1);
          return { result: null, deployed: [], before: { name: p.name, description: p.description }, after: null };
        });
        return { body: { success: true } };
      },
    },
    // ---- environments ----
    {
      method: 'GET',
      path: '/apiops/environments/',
      handler: async () => {
        const list = svc.data().environments.map((e) => ({ ...e, thisNode: e.name === svc.environment }));
        return { body: { success: true, resultList: list, resultCount: list.length } };
      },
    },
    {
      method: 'POST',
      path: '/apiops/environments/:env/',
      write: true,
      handler: async (c) => {
        const body = await c.json(describedSchema, bodyLimit, true);
        const name = c.params.env!;
        await svc.write({
          actor: c.actor,
          caller: c,
          action: 'environment.create',
          target: name,
          project: null,
          proxy: null,
          mutate: (d) => {
            if (d.environments.some((e) => e.name.toLowerCase() === name.toLowerCase())) throw new AdminError('CONFLICT', `environment ${JSON.stringify(name)} already exists`);
            const rec = { name, description: body.description, createdAt: new Date().toISOString() };
            d.environments.push(rec);
            return { result: null, deployed: [], before: null, after: rec };
          },
        });
        return { status: 201, body: { success: true } };
      },
    },
    // ---- API proxies ----
    {
      method: 'GET',
      path: `${P}apiProxies/`,
      handler: async (c) => {
        const p = findProject(svc.data(), c.params.project!);
        const list = p.proxies.map(proxyView);
        return { body: { success: true, resultList: list, resultCount: list.length } };
      },
    },
    {
      method: 'GET',
      path: A,
      handler: async (c) => {
        const r = findProxy(findProject(svc.data(), c.params.project!), c.params.proxy!);
        return { body: { success: true, apiProxy: proxyView(r) }, etag: etagOf(r.version) };
      },
    },
    {
      method: 'POST',
      path: A,
      write: true,
      handler: async (c) => {
        const body = await c.json(proxyBodySchema, bodyLimit);
        const name = c.params.proxy!;
        const out = await svc.write({
          actor: c.actor,
          caller: c,
          action: 'apiProxy.create',
          target: `${c.params.project}/${name}`,
          project: c.params.project!,
          proxy: name,
          mutate: (d) => {
            const p = findProject(d, c.params.project!);
            if (p.proxies.some((r) => r.draft.name.toLowerCase() === name.toLowerCase())) throw new AdminError('CONFLICT', `API proxy ${JSON.stringify(name)} already exists in project ${p.name}`);
            const rec: ProxyRecord = { draft: { name, ...body, policies: [] }, version: nextVersion(d), deployments: {} };
            p.proxies.push(rec);
            return { result: rec.version, deployed: [], before: null, after: rec.draft, working: rec };
          },
        });
        return { status: 201, body: { success: true }, etag: etagOf(out.result) };
      },
    },
    {
      method: 'PUT',
      path: A,
      write: true,
      handler: async (c) => {
        const body = await c.json(proxyBodySchema, bodyLimit);
        const out = await svc.writeProxy(c, 'apiProxy.replace', `${c.params.project}/${c.params.proxy}`, (d) => {
          const r = findProxy(findProject(d, c.params.project!), c.params.proxy!);
          checkIfMatch(c.ifMatch, r.version);
          const before = { ...r.draft, policies: undefined };
          // Replacing a proxy's routing keeps its policies; it is enforced at the next deploy.
          r.draft = { name: r.draft.name, ...body, policies: r.draft.policies };
          r.version = nextVersion(d);
          return { result: r.version, deployed: [], before, after: { ...r.draft, policies: undefined }, working: r };
        });
        return { body: { success: true }, etag: etagOf(out.result) };
      },
    },
    {
      method: 'DELETE',
      path: A,
      write: true,
      handler: async (c) => {
        const out = await svc.writeProxy(c, 'apiProxy.delete', `${c.params.project}/${c.params.proxy}`, (d) => {
          const p = findProject(d, c.params.project!);
          const r = findProxy(p, c.params.proxy!);
          checkIfMatch(c.ifMatch, r.version);
          p.proxies.splice(p.proxies.indexOf(r), 1);
          // Deleting a proxy removes it from every environment it was deployed to.
          return { result: null, deployed: Object.keys(r.deployments), before: r.draft, after: null };
        });
        return { body: deploymentReply(out.deploymentResults) };
      },
    },
    // ---- deployments ----
    {
      method: 'POST',
      path: `${A}environments/:env/`,
      write: true,
      handler: async (c) => {
        const out = await svc.writeProxy(c, 'apiProxy.deploy', `${c.params.project}/${c.params.proxy}@${c.params.env}`, (d) => {
          const env = requireEnvironment(d, c.params.env!);
          const r = findProxy(findProject(d, c.params.project!), c.params.proxy!);
          const before = r.deployments[env]?.revision ?? null;
          deployTo(d, r, [env], c.actor);
          return { result: null, deployed: [env], before: { deployedRevision: before }, after: { deployedRevision: d.revision + 1 } };
        });
        return { body: deploymentReply(out.deploymentResults) };
      },
    },
    {
      method: 'DELETE',
      path: `${A}environments/:env/`,
      write: true,
      handler: async (c) => {
        const out = await svc.writeProxy(c, 'apiProxy.undeploy', `${c.params.project}/${c.params.proxy}@${c.params.env}`, (d) => {
          const env = requireEnvironment(d, c.params.env!);
          const r = findProxy(findProject(d, c.params.project!), c.params.proxy!);
          const dep = r.deployments[env];
          if (dep === undefined) throw new AdminError('NOT_FOUND', `API proxy ${r.draft.name} is not deployed to ${env}`);
          delete r.deployments[env];
          return { result: null, deployed: [env], before: { deployedRevision: dep.revision }, after: null };
        });
        return { body: deploymentReply(out.deploymentResults) };
      },
    },
    {
      method: 'GET',
      path: `${A}deploy-histories/`,
      handler: async (c) => {
        const r = findProxy(findProject(svc.data(), c.params.project!), c.params.proxy!);
        const list = (r.history ?? [])
          .map((h) => ({ revision: h.revision, environmentName: h.environment, kind: h.kind, deployedAt: h.deployedAt, deployedBy: h.deployedBy, policyCount: h.proxy.policies.length }))
          .reverse();
        return { body: { success: true, resultList: list, resultCount: list.length } };
      },
    },
    {
      method: 'POST',
      path: `${A}deploy-histories/:revision/rollback/`,
      write: true,
      handler: async (c) => {
        const rev = Number(c.params.revision);
        if (!Number.isSafeInteger(rev) || rev < 1) throw new AdminError('BAD_REQUEST', 'revision must be a positive integer', [{ path: 'revision', message: 'not a positive integer' }]);
        const out = await svc.writeProxy(c, 'apiProxy.rollback', `${c.params.project}/${c.params.proxy}@${rev}`, (d) => {
          const r = findProxy(findProject(d, c.params.project!), c.params.proxy!);
          checkIfMatch(c.ifMatch, r.version);
          const entries = (r.history ?? []).filter((h) => h.revision === rev);
          const first = entries[0];
          if (first === undefined) throw new AdminError('NOT_FOUND', `API proxy ${r.draft.name} has no deployment at revision ${rev}`);
          const before = r.draft;
          // The working copy becomes the deployed copy of that revision, and is redeployed where it went then.
          r.draft = structuredClone(first.proxy);
          r.version = nextVersion(d);
          const envs = [...new Set(entries.map((h) => h.environment))].filter((e) => d.environments.some((x) => x.name === e));
          deployTo(d, r, envs, c.actor, 'rollback');
          return { result: r.version, deployed: envs, before, after: r.draft, working: r };
        });
        return { body: deploymentReply(out.deploymentResults), etag: etagOf(out.result) };
      },
    },
    {
      method: 'GET',
      path: `${A}deploy-status/`,
      handler: async (c) => {
        const d = svc.data();
        const r = findProxy(findProject(d, c.params.project!), c.params.proxy!);
        const draft = JSON.stringify(r.draft);
        const deployed = Object.entries(r.deployments)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([environmentName, dep]) => ({ environmentName, revision: dep.revision, deployedAt: dep.deployedAt, deployedBy: dep.deployedBy, redeployRequired: JSON.stringify(dep.proxy) !== draft }));
        return { body: { success: true, revision: d.revision, deployedEnvironments: deployed, redeployRequired: redeployRequired(r) } };
      },
    },
  ];
}
