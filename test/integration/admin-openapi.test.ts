import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApi, OPERATIONS } from '../../src/controlplane/admin/openapi.js';
import type { Route } from '../../src/controlplane/admin/router.js';
import { oneProxy, policy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

const ADMIN = 'admin-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

/** Names that exist in the gateway below, so GETs reach their handlers and answer 200. */
const PARAMS: Record<string, string> = { project: 'p', proxy: 'api', env: 'production', policy: 'block-bad', group: 'office', revision: '1' };

interface Reply {
  status: number;
  etag: string | undefined;
  body: any;
}

async function call(gw: TestGateway, method: string, path: string, token: string | null = ADMIN): Promise<Reply> {
  const r = await send(gw.gateway.adminAddress.port, path, { method, headers: token === null ? {} : { authorization: `Bearer ${token}` } });
  return { status: r.status, etag: r.headers.etag as string | undefined, body: r.text === '' ? null : r.json() };
}

/** Every operation of the document as [path, method, operation]. */
function operations(doc: any): [string, string, any][] {
  return Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([m]) => METHODS.includes(m))
      .map(([m, op]): [string, string, any] => [path, m, op]),
  );
}

/** Resolve a local JSON pointer ("#/components/schemas/Error"). */
function resolve(doc: any, ref: string): unknown {
  expect(ref.startsWith('#/')).toBe(true);
  let at: any = doc;
  for (const seg of ref.slice(2).split('/')) at = at?.[seg.replace(/~1/g, '/').replace(/~0/g, '~')];
  return at;
}

function refsIn(v: unknown, out: string[] = []): string[] {
  if (Array.isArray(v)) for (const x of v) refsIn(x, out);
  else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === '$ref' && typeof x === 'string') out.push(x);
      else refsIn(x, out);
    }
  }
  return out;
}

describe('admin OpenAPI document', () => {
  let up: Upstream;
  let gw: TestGateway;
  let doc: any;
  const dir = mkdtempSync(join(tmpdir(), 'ipgate-openapi-'));

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(
      oneProxy(up.url, [policy('policy-black-ip', 'block-bad', ['203.0.113.0/24'])], {
        ipGroups: [{ name: 'office', entries: [{ ip: '10.0.0.0/8' }] }],
        // inline: the test reads the admin router, private to the gateway that runs the control plane.
        gateway: { controlPlane: 'inline', store: { file: join(dir, 'store.json') }, admin: { listen: '127.0.0.1:0', tokens: [{ name: 'ci-viewer', sha256: sha(VIEWER), role: 'viewer' }] } },
      }),
      { env: { IPGATE_ADMIN_TOKEN: ADMIN } },
    );
    const r = await call(gw, 'GET', '/apiops/openapi.json');
    expect(r.status).toBe(200);
    doc = r.body;
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('serves an OpenAPI 3.1 document to any authenticated role, and only to them', async () => {
    expect(String(doc.openapi).startsWith('3.1')).toBe(true);
    expect(doc.info).toMatchObject({ title: 'ipgate apiops admin API', version: '0.1.0' });
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(doc.components.schemas.Error.required).toEqual(['success', 'error', 'error_description', 'details']);

    const viewer = await call(gw, 'GET', '/apiops/openapi.json', VIEWER);
    expect(viewer.status).toBe(200);
    expect(viewer.body).toEqual(doc);
    const anonymous = await call(gw, 'GET', '/apiops/openapi.json', null);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error).toBe('UNAUTHORIZED');
  });

  it('is well formed: /apiops/ paths, declared path parameters, responses, unique operationIds, resolvable $refs', () => {
    const ids = new Set<string>();
    const ops = operations(doc);
    expect(ops.length).toBeGreaterThan(30);
    for (const [path, method, op] of ops) {
      const where = `${method.toUpperCase()} ${path}`;
      expect(path.startsWith('/apiops/'), where).toBe(true);
      expect(path, where).not.toContain(':');
      expect(typeof op.operationId, where).toBe('string');
      expect(ids.has(op.operationId), `${where}: duplicate operationId ${op.operationId}`).toBe(false);
      ids.add(op.operationId);
      expect(op.summary, where).toBeTruthy();
      expect(op.tags?.length, where).toBeGreaterThan(0);
      const codes = Object.keys(op.responses ?? {});
      expect(codes.some((c) => /^2\d\d$/.test(c)), `${where} has no success response`).toBe(true);
      expect(codes, where).toContain('401');
      // Every {param} of the path is declared as a required path parameter, and nothing else is.
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      const declared = (op.parameters ?? []).filter((p: any) => p.in === 'path');
      expect(declared.map((p: any) => p.name), where).toEqual(inPath);
      for (const p of declared) expect(p.required, where).toBe(true);
      if (op.requestBody !== undefined) {
        expect(op.requestBody.content['application/json'].schema, where).toBeDefined();
        expect(codes, where).toEqual(expect.arrayContaining(['400', '413', '415']));
      }
    }
    for (const ref of refsIn(doc)) expect(resolve(doc, ref), `unresolvable ${ref}`).toBeDefined();
  });

  it('generates request bodies from the zod schemas the handlers validate with', () => {
    const binding = doc.components.schemas.PolicyBinding;
    expect(binding).toMatchObject({ type: 'object', required: ['operationMetadata', 'policy'], additionalProperties: false });
    expect(binding.$schema).toBeUndefined();
    expect(binding.properties.policy.properties.type.enum).toEqual(['policy-white-ip', 'policy-black-ip']);
    expect(binding.properties.operationMetadata.properties.targetPipeline.enum).toEqual(['REQUEST', 'RESPONSE', 'ERROR']);
    // Input side: fields with defaults are optional.
    expect(doc.components.schemas.ExportDocument.required ?? []).not.toContain('projects');
    const add = doc.paths['/apiops/projects/{project}/apiProxies/{proxy}/policies/{policy}/'].post;
    expect(add.requestBody).toMatchObject({ required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/PolicyBinding' } } } });
    expect(add.responses['412']).toEqual({ $ref: '#/components/responses/PRECONDITION_FAILED' });
    expect(add.responses['200'].headers.ETag).toEqual({ $ref: '#/components/headers/ETag' });
  });

  it('documents exactly the routes the running gateway serves', () => {
    // The router is private to the gateway; reach it for the comparison only.
    const routes = (gw.gateway as unknown as { admin: { router: { all: readonly Route[] } } }).admin.router.all;
    const served = routes.map((r) => `${r.method} ${r.path.replace(/:([^/]+)/g, '{$1}')}`).sort();
    const documented = operations(doc)
      .map(([path, method]) => `${method.toUpperCase()} ${path}`)
      .sort();
    expect(documented).toEqual(served);
    // And the table has no stale entries.
    expect(Object.keys(OPERATIONS).sort()).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());
  });

  it('every documented operation is routed, with the documented role and ETag', async () => {
    for (const [path, method, op] of operations(doc)) {
      const where = `${method.toUpperCase()} ${path}`;
      const url = path.replace(/\{([^}]+)\}/g, (_m, name: string) => PARAMS[name] ?? 'dummy');
      // As a viewer: a write is refused by the role check, which runs only after the route matched,
      // so nothing changes; a read runs its handler.
      const r = await call(gw, method.toUpperCase(), url, VIEWER);
      expect(r.status, where).not.toBe(405);
      expect(r.status === 404 && String(r.body?.error_description).startsWith('no admin route'), `${where}: ${JSON.stringify(r.body)}`).toBe(false);
      if (op['x-ipgate-role'] === 'admin') {
        expect(r.status, where).toBe(403);
        expect(r.body.error, where).toBe('FORBIDDEN');
        expect(op.responses['403'], where).toBeDefined();
      } else {
        expect(op['x-ipgate-role'], where).toBe('viewer');
        expect([401, 403], `${where}: ${JSON.stringify(r.body)}`).not.toContain(r.status);
        if (method === 'get') {
          expect(r.status, `${where}: ${JSON.stringify(r.body)}`).toBe(200);
          const documentsEtag = op.responses['200']?.headers?.ETag !== undefined;
          expect(r.etag !== undefined, `${where}: ETag ${r.etag}`).toBe(documentsEtag);
        }
      }
    }
  });

  it('refuses to build a document with an undocumented or duplicated route', () => {
    const handler = async () => ({ body: null });
    expect(() => buildOpenApi([{ method: 'GET', path: '/apiops/undocumented/', handler }])).toThrow(/GET \/apiops\/undocumented\/ is not documented/);
    expect(() => buildOpenApi([{ method: 'DELETE', path: '/apiops/audit/', handler }])).toThrow(/not documented/);
    expect(() => buildOpenApi([{ method: 'GET', path: '/apiops/audit/', handler }, { method: 'GET', path: '/apiops/audit/', handler }])).toThrow(/registered twice/);
    const one = buildOpenApi([{ method: 'GET', path: '/apiops/audit/', handler }]) as any;
    expect(Object.keys(one.paths)).toEqual(['/apiops/audit/']);
  });
});
