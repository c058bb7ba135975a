import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneProxy, policy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

const ADMIN = 'admin-token-0123456789';
const VIEWER = 'viewer-token-0123456789';
const sha = (t: string) => createHash('sha256').update(t).digest('hex');

interface AdminReply {
  status: number;
  etag: string | undefined;
  body: any;
}

function api(gw: TestGateway) {
  const port = gw.gateway.adminAddress.port;
  return async (method: string, path: string, opts: { body?: unknown; token?: string | null; headers?: Record<string, string>; raw?: string } = {}): Promise<AdminReply> => {
    const headers: Record<string, string> = { ...opts.headers };
    const token = opts.token === undefined ? ADMIN : opts.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (opts.raw !== undefined) payload = opts.raw;
    else if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const r = await send(port, path, { method, headers, body: payload });
    return { status: r.status, etag: r.headers.etag as string | undefined, body: r.text === '' ? null : r.json() };
  };
}

const POL = '/apiops/projects/p/apiProxies/api/policies/';

describe('apiops admin API', () => {
  let up: Upstream;
  let gw: TestGateway;
  let call: ReturnType<typeof api>;
  const dir = mkdtempSync(join(tmpdir(), 'ipgate-admin-'));
  const storeFile = join(dir, 'store.json');
  const config = (upstreamUrl: string) =>
    oneProxy(upstreamUrl, [policy('policy-black-ip', 'block-bad', ['203.0.113.0/24'])], {
      gateway: { store: { file: storeFile }, admin: { listen: '127.0.0.1:0', tokens: [{ name: 'ci-viewer', sha256: sha(VIEWER), role: 'viewer' }] } },
    });

  beforeAll(async () => {
    up = await startUpstream();
    gw = await startGateway(config(up.url), { env: { IPGATE_ADMIN_TOKEN: ADMIN } });
    call = api(gw);
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  describe('authentication and roles', () => {
    it('answers 401 without a token, with a wrong token, or another scheme', async () => {
      for (const token of [null, 'nope']) {
        const r = await call('GET', '/apiops/projects/', { token });
        expect(r.status).toBe(401);
        expect(r.body).toMatchObject({ success: false, error: 'UNAUTHORIZED' });
      }
      const basic = await call('GET', '/apiops/projects/', { token: null, headers: { authorization: `Basic ${ADMIN}` } });
      expect(basic.status).toBe(401);
    });

    it('accepts the scheme name in any case', async () => {
      const r = await call('GET', '/apiops/projects/', { token: null, headers: { authorization: `bEaReR ${ADMIN}` } });
      expect(r.status).toBe(200);
    });

    it('lets a viewer read but not write (403)', async () => {
      expect((await call('GET', POL, { token: VIEWER })).status).toBe(200);
      const w = await call('POST', '/apiops/projects/x/', { token: VIEWER, body: {} });
      expect(w.status).toBe(403);
      expect(w.body.error).toBe('FORBIDDEN');
    });
  });

  describe('policies (Apinizer shapes)', () => {
    it('lists policies in the seed response shape', async () => {
      const r = await call('GET', POL);
      expect(r.status).toBe(200);
      expect(r.body.success).toBe(true);
      expect(r.body.resultCount).toBe(1);
      const proxy = r.body.resultList[0].apiProxy;
      expect(proxy.name).toBe('api');
      expect(proxy.requestPolicyList).toHaveLength(1);
      expect(proxy.requestPolicyList[0]).toMatchObject({ type: 'policy-black-ip', name: 'block-bad', targetVariableForIP: null, ipList: ['203.0.113.0/24'] });
      expect(proxy.responsePolicyList).toEqual([]);
      expect(proxy.errorPolicyList).toEqual([]);
    });

    it('adds a policy with deploy: true and enforces it before answering', async () => {
      expect((await send(gw.port, '/api/x', { from: '127.0.0.7' })).status).toBe(200);
      const r = await call('POST', `${POL}block-seven/`, {
        body: {
          operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true, deployTargetEnvironmentNameList: ['production'], order: 1 },
          policy: { type: 'policy-black-ip', description: 'block .7', active: true, targetVariableForIP: null, ipList: ['127.0.0.7'] },
        },
      });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({
        success: true,
        deploymentResult: { success: true, deploymentResults: [{ environmentName: 'production', success: true, message: expect.stringMatching(/^Deployment successful/) }] },
      });
      // No sleep: the response is only sent once this node enforces the new revision.
      const denied = await send(gw.port, '/api/x', { from: '127.0.0.7' });
      expect(denied.status).toBe(403);
      expect(denied.json().fault.faultCode).toBe('IP_BLOCKED');
      const list = await call('GET', POL);
      expect(list.body.resultList[0].apiProxy.requestPolicyList.map((p: { name: string }) => p.name)).toEqual(['block-seven', 'block-bad']);
    });

    it('saves but does not enforce with deploy: false, until the proxy is deployed', async () => {
      const r = await call('POST', `${POL}block-eight/`, {
        body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: false }, policy: { type: 'policy-black-ip', ipList: ['127.0.0.8'] } },
      });
      expect(r.body.deploymentResult).toEqual({ success: true, deploymentResults: [] });
      expect((await send(gw.port, '/api/x', { from: '127.0.0.8' })).status).toBe(200);
      const status = await call('GET', '/apiops/projects/p/apiProxies/api/deploy-status/');
      expect(status.body.redeployRequired).toBe(true);
      const dep = await call('POST', '/apiops/projects/p/apiProxies/api/environments/production/');
      expect(dep.body.deploymentResult.deploymentResults[0]).toMatchObject({ environmentName: 'production', success: true });
      expect((await send(gw.port, '/api/x', { from: '127.0.0.8' })).status).toBe(403);
      expect((await call('GET', '/apiops/projects/p/apiProxies/api/deploy-status/')).body.redeployRequired).toBe(false);
    });

    it('refuses a deploy: false change whose working copy does not compile (400 naming the field), writing nothing', async () => {
      const before = readFileSync(storeFile, 'utf8');
      const r = await call('POST', `${POL}ghost-group/`, {
        body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: false }, policy: { type: 'policy-white-ip', ipGroupIdList: ['no-such-group'] } },
      });
      expect(r.status).toBe(400);
      expect(r.body.details).toEqual([{ path: expect.stringMatching(/\.policies\[\d+\]\.policy\.ipGroupIdList\[0\]$/), message: 'no IP group "no-such-group" in project p' }]);
      // Stored, it would make every later deploying write on the proxy fail.
      expect(readFileSync(storeFile, 'utf8')).toBe(before);
    });

    it('reports "no live gateway node" for an environment no node serves', async () => {
      expect((await call('POST', '/apiops/environments/staging/', { body: { description: 'no node here' } })).status).toBe(201);
      const r = await call('POST', `${POL}staging-only/`, {
        body: {
          operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true, deployTargetEnvironmentNameList: ['staging'] },
          policy: { type: 'policy-white-ip', ipList: ['10.0.0.0/8'] },
        },
      });
      expect(r.body.deploymentResult).toEqual({ success: false, deploymentResults: [{ environmentName: 'staging', success: false, message: 'no live gateway node' }] });
      // Not deployed to production, so production traffic is unaffected.
      expect((await send(gw.port, '/api/x', { from: '127.0.0.1' })).status).toBe(200);
      // Deployments are of whole proxies: remove it from the working copy before the next production deploy.
      const del = await call('DELETE', `${POL}staging-only/`, { body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: false } } });
      expect(del.body.deploymentResult.deploymentResults).toEqual([]);
    });

    it('returns a single policy with its ETag, and refuses a stale If-Match with 412', async () => {
      const g = await call('GET', `${POL}BLOCK-SEVEN/`);
      expect(g.status).toBe(200);
      expect(g.body.policy.name).toBe('block-seven');
      expect(g.etag).toMatch(/^"\d+"$/);
      const body = { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-black-ip', ipList: ['127.0.0.7', '127.0.0.9'] } };
      const ok = await call('PUT', `${POL}block-seven/`, { body, headers: { 'if-match': g.etag! } });
      expect(ok.status).toBe(200);
      expect((await send(gw.port, '/api/x', { from: '127.0.0.9' })).status).toBe(403);
      const stale = await call('PUT', `${POL}block-seven/`, { body, headers: { 'if-match': g.etag! } });
      expect(stale.status).toBe(412);
      expect(stale.body.error).toBe('PRECONDITION_FAILED');
    });

    it('compares If-Match strongly: a weak tag never matches, even of the current version (412)', async () => {
      const g = await call('GET', `${POL}block-seven/`);
      const body = { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-black-ip', ipList: ['127.0.0.7', '127.0.0.9'] } };
      const weak = await call('PUT', `${POL}block-seven/`, { body, headers: { 'if-match': `W/${g.etag}` } });
      expect(weak.status).toBe(412);
      expect((await call('GET', `${POL}block-seven/`)).etag).toBe(g.etag);
      expect((await call('PUT', `${POL}block-seven/`, { body, headers: { 'if-match': `W/${g.etag}, ${g.etag}` } })).status).toBe(200);
    });

    it('never gives a proxy an ETag it had before: a tag read before a delete and re-create is stale (412)', async () => {
      const X = '/apiops/projects/p/apiProxies/etag-x/';
      expect((await call('POST', X, { body: { basePath: '/etag-x', upstream: { url: up.url } } })).status).toBe(201);
      const a = await call('GET', X);
      expect((await call('DELETE', X)).status).toBe(200);
      const again = await call('POST', X, { body: { basePath: '/etag-x2', upstream: { url: up.url } } });
      expect(again.status).toBe(201);
      expect(again.etag).not.toBe(a.etag);
      const stale = await call('PUT', X, { body: { basePath: '/etag-x3', upstream: { url: up.url } }, headers: { 'if-match': a.etag! } });
      expect(stale.status).toBe(412);
      expect((await call('GET', X)).body.apiProxy.basePath).toBe('/etag-x2');
      expect((await call('DELETE', X, { headers: { 'if-match': again.etag! } })).status).toBe(200);
    });

    it('refuses duplicate names case-insensitively (409) and type changes on update (400)', async () => {
      const dup = await call('POST', `${POL}Block-Bad/`, { body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-black-ip', ipList: ['10.0.0.1'] } } });
      expect(dup.status).toBe(409);
      const change = await call('PUT', `${POL}block-bad/`, { body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', ipList: ['10.0.0.1'] } } });
      expect(change.status).toBe(400);
      expect(change.body.details).toEqual([{ path: 'policy.type', message: 'must stay policy-black-ip' }]);
    });

    it('refuses a body naming another policy (400, on add and update) and writes to unknown policies (404), writing nothing', async () => {
      const before = readFileSync(storeFile, 'utf8');
      const meta = { targetScope: 'ALL', targetPipeline: 'REQUEST' };
      const renamed = { operationMetadata: meta, policy: { type: 'policy-black-ip', name: 'other', ipList: ['10.0.0.1'] } };
      for (const [method, name] of [['POST', 'fresh'], ['PUT', 'block-bad']] as const) {
        const r = await call(method, `${POL}${name}/`, { body: renamed });
        expect(r.status).toBe(400);
        expect(r.body.details).toEqual([{ path: 'policy.name', message: `must be ${name} or absent` }]);
      }
      const put = await call('PUT', `${POL}nope/`, { body: { operationMetadata: meta, policy: { type: 'policy-black-ip', ipList: ['10.0.0.1'] } } });
      expect(put.status).toBe(404);
      expect(put.body.error_description).toBe('no policy "nope" on API proxy api');
      const del = await call('DELETE', `${POL}nope/`, { body: { operationMetadata: { ...meta, deploy: false } } });
      expect(del.status).toBe(404);
      expect(del.body.error_description).toBe('no policy "nope" on API proxy api');
      expect(readFileSync(storeFile, 'utf8')).toBe(before);
    });

    it('refuses an environment named twice in deployTargetEnvironmentNameList (400 naming the repeat), in any case', async () => {
      const before = readFileSync(storeFile, 'utf8');
      const meta = { targetScope: 'ALL', targetPipeline: 'REQUEST' };
      // Each copy would be one more deployment and history entry, pushing rollback targets out.
      const add = await call('POST', `${POL}twice/`, {
        body: { operationMetadata: { ...meta, deployTargetEnvironmentNameList: ['production', 'staging', 'PRODUCTION'] }, policy: { type: 'policy-black-ip', ipList: ['10.9.9.9'] } },
      });
      expect(add.status).toBe(400);
      expect(add.body.details).toEqual([{ path: 'operationMetadata.deployTargetEnvironmentNameList[2]', message: 'PRODUCTION: the same environment as [0] (names are case-insensitive)' }]);
      const del = await call('DELETE', `${POL}block-bad/`, { body: { operationMetadata: { ...meta, deploy: true, deployTargetEnvironmentNameList: Array(20).fill('production') } } });
      expect(del.status).toBe(400);
      expect(del.body.details).toHaveLength(19);
      expect(del.body.details[0]).toEqual({ path: 'operationMetadata.deployTargetEnvironmentNameList[1]', message: 'production: the same environment as [0] (names are case-insensitive)' });
      expect(readFileSync(storeFile, 'utf8')).toBe(before);
    });

    it('refuses a delete that does not name the policy\'s own targetScope and targetPipeline (400 naming the field), deleting nothing', async () => {
      const before = readFileSync(storeFile, 'utf8');
      const none = await call('DELETE', `${POL}block-bad/`);
      expect(none.status).toBe(400);
      expect(none.body.details).toEqual([{ path: 'operationMetadata', message: 'required' }]);
      const half = await call('DELETE', `${POL}block-bad/`, { body: { operationMetadata: { targetScope: 'ALL' } } });
      expect(half.status).toBe(400);
      expect(half.body.details).toEqual([{ path: 'operationMetadata.targetPipeline', message: 'required' }]);
      // block-bad is an ALL / REQUEST policy.
      const other = await call('DELETE', `${POL}block-bad/`, { body: { operationMetadata: { targetScope: 'ENDPOINT', targetPipeline: 'ERROR' } } });
      expect(other.status).toBe(400);
      expect(other.body.details).toEqual([
        { path: 'operationMetadata.targetScope', message: "the policy's scope is ALL, not ENDPOINT" },
        { path: 'operationMetadata.targetPipeline', message: "the policy's pipeline is REQUEST, not ERROR" },
      ]);
      const pipeline = await call('DELETE', `${POL}block-bad/`, { body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'RESPONSE' } } });
      expect(pipeline.body.details).toEqual([{ path: 'operationMetadata.targetPipeline', message: "the policy's pipeline is REQUEST, not RESPONSE" }]);
      expect(readFileSync(storeFile, 'utf8')).toBe(before);
      expect((await call('GET', `${POL}block-bad/`)).status).toBe(200);
    });

    it('deploys a delete only when asked: without deploy, the deployed copy stays as it was', async () => {
      const meta = { targetScope: 'ALL', targetPipeline: 'REQUEST' };
      const added = await call('POST', `${POL}quiet/`, { body: { operationMetadata: { ...meta, deploy: false }, policy: { type: 'policy-black-ip', ipList: ['10.9.9.9'] } } });
      expect(added.body.deploymentResult.deploymentResults).toEqual([]);
      const histories = (await call('GET', '/apiops/projects/p/apiProxies/api/deploy-histories/')).body.resultCount;
      const del = await call('DELETE', `${POL}quiet/`, { body: { operationMetadata: meta } });
      expect(del.status).toBe(200);
      expect(del.body.deploymentResult.deploymentResults).toEqual([]);
      expect((await call('GET', '/apiops/projects/p/apiProxies/api/deploy-histories/')).body.resultCount).toBe(histories);
    });

    it('names the field of a bad entry and writes nothing', async () => {
      const before = readFileSync(storeFile, 'utf8');
      const r = await call('POST', `${POL}bad/`, {
        body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', ipList: ['10.0.0.0/8', '10.0.0.1/8'] } },
      });
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('BAD_REQUEST');
      expect(r.body.details).toContainEqual({ path: 'policy.ipList[1]', message: '10.0.0.1/8: host bits set, did you mean 10.0.0.0/8?' });
      expect(readFileSync(storeFile, 'utf8')).toBe(before);
    });

    it('answers 415, 400 for malformed JSON, a __proto__ key and order below 1, and 404 for unknown resources', async () => {
      expect((await call('POST', `${POL}x/`, { raw: '{}', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
      expect((await call('POST', `${POL}x/`, { raw: '{"operationMetadata":', headers: { 'content-type': 'application/json' } })).status).toBe(400);
      const proto = await call('POST', `${POL}x/`, {
        raw: '{"operationMetadata":{"targetScope":"ALL","targetPipeline":"REQUEST"},"policy":{"type":"policy-white-ip","ipList":["1.2.3.4"],"__proto__":{"x":1}}}',
        headers: { 'content-type': 'application/json' },
      });
      expect(proto.status).toBe(400);
      expect(proto.body.details[0].path).toBe('policy.__proto__');
      const order = await call('POST', `${POL}x/`, { body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', order: 0 }, policy: { type: 'policy-white-ip', ipList: ['1.2.3.4'] } } });
      expect(order.status).toBe(400);
      expect(order.body.details[0].path).toBe('operationMetadata.order');
      expect((await call('GET', '/apiops/projects/nope/apiProxies/api/policies/')).status).toBe(404);
      expect((await call('GET', `${POL}nope/`)).status).toBe(404);
      expect((await call('GET', '/apiops/projects/p/apiProxies/api/environments/nowhere/')).status).toBe(405);
    });

    it('answers 405 with an Allow header listing the methods of the path (RFC 9110 §15.5.6)', async () => {
      const port = gw.gateway.adminAddress.port;
      const headers = { authorization: `Bearer ${ADMIN}` };
      for (const [method, path, allow] of [
        ['PATCH', `${POL}block-bad/`, 'GET, HEAD, POST, PUT, DELETE'],
        ['GET', '/apiops/projects/p/apiProxies/api/environments/production/', 'POST, DELETE'],
        ['DELETE', '/apiops/export/', 'GET, HEAD'],
        ['POST', '/apiops/admin-access/', 'GET, HEAD, PUT'],
      ] as const) {
        const r = await send(port, path, { method, headers });
        expect(r.status, `${method} ${path}`).toBe(405);
        expect(r.headers.allow, `${method} ${path}`).toBe(allow);
      }
    });

    it('refuses a key written with an escape sequence (400 naming it), and accepts escapes in values', async () => {
      const before = readFileSync(storeFile, 'utf8');
      // "\u0070olicy" is "policy": JSON.parse in Node 24.21.0 can decode such a key as another one.
      const escaped = await call('POST', `${POL}esc/`, {
        raw: '{"operationMetadata":{"targetScope":"ALL","targetPipeline":"REQUEST"},"\\u0070olicy":{"type":"policy-white-ip","ipList":["1.2.3.4"]}}',
        headers: { 'content-type': 'application/json' },
      });
      expect(escaped.status).toBe(400);
      expect(escaped.body.details).toEqual([{ path: 'policy', message: 'escaped key' }]);
      const nested = await call('POST', `${POL}esc/`, {
        raw: '{"operationMetadata":{"targetScope":"ALL","targetPipeline":"REQUEST"},"policy":{"type":"policy-white-ip","ipList":["1.2.3.4"],"a\\r":1}}',
        headers: { 'content-type': 'application/json' },
      });
      expect(nested.status).toBe(400);
      expect(nested.body.details).toEqual([{ path: 'policy.a\r', message: 'escaped key' }]);
      expect(readFileSync(storeFile, 'utf8')).toBe(before);
      // Escapes in values are fine: the description holds a quote and an e-acute.
      const ok = await call('POST', `${POL}esc/`, {
        raw: '{"operationMetadata":{"targetScope":"ALL","targetPipeline":"REQUEST","deploy":false},"policy":{"type":"policy-white-ip","description":"caf\\u00e9 \\"x\\"","ipList":["1.2.3.4"]}}',
        headers: { 'content-type': 'application/json' },
      });
      expect(ok.status).toBe(200);
      expect((await call('GET', `${POL}esc/`)).body.policy.description).toBe('café "x"');
      // Leave the shared gateway's policies as they were for the tests after this one.
      expect((await call('DELETE', `${POL}esc/`, { body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: false } } })).status).toBe(200);
    });

    it('refuses a key given twice in one object (400 naming it), which JSON.parse would resolve to the last', async () => {
      const before = readFileSync(storeFile, 'utf8');
      const meta = '"operationMetadata":{"targetScope":"ALL","targetPipeline":"REQUEST"}';
      // Last wins would store 0.0.0.0/0 in an allowlist that was meant to be 10.0.0.0/8.
      for (const second of ['"ipList"', '"ip\\u004cist"']) {
        const r = await call('POST', `${POL}dup/`, {
          raw: `{${meta},"policy":{"type":"policy-white-ip","ipList":["10.0.0.0/8"],${second}:["0.0.0.0/0"]}}`,
          headers: { 'content-type': 'application/json' },
        });
        expect(r.status, second).toBe(400);
        expect(r.body.details, second).toEqual([{ path: 'policy.ipList', message: 'duplicate key' }]);
        expect(r.body.error_description).toBe('invalid body: policy.ipList: duplicate key (each key may appear once per object)');
      }
      const top = await call('POST', `${POL}dup/`, { raw: `{${meta},${meta},"policy":{"type":"policy-white-ip","ipList":["10.0.0.0/8"]}}`, headers: { 'content-type': 'application/json' } });
      expect(top.body.details).toEqual([{ path: 'operationMetadata', message: 'duplicate key' }]);
      expect(readFileSync(storeFile, 'utf8')).toBe(before);
      expect((await call('GET', `${POL}dup/`)).status).toBe(404);
    });

    it('deletes a policy (seed default deploy: false) and enforces the deletion once deployed', async () => {
      const r = await call('DELETE', `${POL}block-seven/`, { body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true } } });
      expect(r.status).toBe(200);
      // Without a target list, every environment the proxy is deployed to.
      expect(r.body.deploymentResult).toEqual({
        success: false,
        deploymentResults: [
          { environmentName: 'production', success: true, message: expect.stringMatching(/^Deployment successful/) },
          { environmentName: 'staging', success: false, message: 'no live gateway node' },
        ],
      });
      expect((await send(gw.port, '/api/x', { from: '127.0.0.7' })).status).toBe(200);
      expect((await call('GET', `${POL}block-seven/`)).status).toBe(404);
    });
  });

  describe('projects, proxies, persistence', () => {
    it('creates projects and API proxies, and refuses to delete a project that still has proxies (409)', async () => {
      expect((await call('POST', '/apiops/projects/q/', { body: { description: 'second' } })).status).toBe(201);
      expect((await call('POST', '/apiops/projects/q/', { body: {} })).status).toBe(409);
      const created = await call('POST', '/apiops/projects/q/apiProxies/svc/', { body: { basePath: '/svc', upstream: { url: up.url } } });
      expect(created.status).toBe(201);
      // Created, not deployed: not routed yet.
      expect((await send(gw.port, '/svc/a')).status).toBe(404);
      await call('POST', '/apiops/projects/q/apiProxies/svc/environments/production/');
      expect((await send(gw.port, '/svc/a')).status).toBe(200);
      expect((await call('DELETE', '/apiops/projects/q/')).status).toBe(409);
      const dup = await call('POST', '/apiops/projects/q/apiProxies/svc2/environments/production/');
      expect(dup.status).toBe(404);
      // Two proxies on one basePath do not compile: refused when created, not first when deployed.
      const before = readFileSync(storeFile, 'utf8');
      const clash = await call('POST', '/apiops/projects/q/apiProxies/svc2/', { body: { basePath: '/svc', upstream: { url: up.url } } });
      expect(clash.status).toBe(400);
      expect(clash.body.details).toEqual([{ path: 'basePath', message: 'Duplicate route for basePath "/svc": two routes without hosts' }]);
      expect(readFileSync(storeFile, 'utf8')).toBe(before);
      expect((await call('GET', '/apiops/projects/q/apiProxies/svc2/')).status).toBe(404);
      expect((await send(gw.port, '/svc/a')).status).toBe(200);
    });

    it('keeps every change across a restart, and does not re-apply the YAML seed', async () => {
      expect((await send(gw.port, '/api/x', { from: '127.0.0.8' })).status).toBe(403);
      await gw.close();
      gw = await startGateway(config(up.url), { env: { IPGATE_ADMIN_TOKEN: ADMIN } });
      call = api(gw);
      expect((await send(gw.port, '/api/x', { from: '127.0.0.8' })).status).toBe(403);
      expect((await send(gw.port, '/svc/a')).status).toBe(200);
      const list = await call('GET', POL);
      expect(list.body.resultList[0].apiProxy.requestPolicyList.map((p: { name: string }) => p.name)).not.toContain('block-seven');
    });

    it('refuses to start on a corrupt store, naming the file', async () => {
      const bad = join(dir, 'corrupt.json');
      writeFileSync(bad, '{"ipgate":"store","format":1,"sha256":"00","data":{');
      await expect(startGateway(oneProxy(up.url, [], { gateway: { store: { file: bad } } }))).rejects.toThrow(bad);
    });
  });
});
