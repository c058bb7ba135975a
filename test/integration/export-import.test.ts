import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { oneProxy, policy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

const ADMIN = 'export-admin-token-0123456789';

// The CLI half runs the built dist/cli.js (npm test builds it first), as a user would.
describe('export and import', () => {
  let up: Upstream;
  let gw: TestGateway;
  const dir = mkdtempSync(join(tmpdir(), 'ipgate-export-'));
  const storeFile = join(dir, 'store.json');
  const cfgFile = join(dir, 'gateway.yaml');
  const cli = (...args: string[]) => spawnSync(process.execPath, ['dist/cli.js', ...args, '--config', cfgFile], { encoding: 'utf8' });
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const r = await send(gw.gateway.adminAddress.port, path, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: r.json(), etag: r.headers.etag as string | undefined };
  };
  const config = () => oneProxy(up.url, [policy('policy-black-ip', 'block-four', ['127.0.0.4'])], { gateway: { store: { file: storeFile } } });

  beforeAll(async () => {
    up = await startUpstream();
    writeFileSync(cfgFile, stringify({ ...config(), listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' } }));
    gw = await startGateway(config(), { env: { IPGATE_ADMIN_TOKEN: ADMIN } });
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('exports the live state in the config shape while the gateway runs, and refuses an offline import then', async () => {
    await call('POST', '/apiops/projects/p/apiProxies/api/policies/block-five/', {
      operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' },
      policy: { type: 'policy-black-ip', ipList: ['127.0.0.5'] },
    });
    const out = cli('export');
    expect(out.status).toBe(0);
    const doc = parse(out.stdout) as { projects: { apiProxies: { environments: string[]; policies: { policy: { name: string } }[] }[] }[] };
    const proxy = doc.projects[0]!.apiProxies[0]!;
    expect(proxy.environments).toEqual(['production']);
    expect(proxy.policies.map((b) => b.policy.name)).toEqual(['block-four', 'block-five']);
    const exportFile = join(dir, 'export.yaml');
    writeFileSync(exportFile, out.stdout);
    const refused = cli('import', '--file', exportFile);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/a gateway \(pid \d+\) is using/);
  });

  it('imports offline: validated whole, revisions continue, and the gateway enforces it after restart', async () => {
    const before = (await call('GET', '/apiops/export/')).body.revision as number;
    await gw.close();
    const exportFile = join(dir, 'export.yaml');
    const doc = parse(readFileSync(exportFile, 'utf8')) as { projects: { apiProxies: { policies: { policy: { ipList: string[] } }[] }[] }[] };
    // A bad entry refuses the whole import and writes nothing.
    doc.projects[0]!.apiProxies[0]!.policies[0]!.policy.ipList = ['10.0.0.1/8'];
    const badFile = join(dir, 'bad.yaml');
    writeFileSync(badFile, stringify(doc));
    const storeBefore = readFileSync(storeFile, 'utf8');
    const bad = cli('import', '--file', badFile);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('projects[0].apiProxies[0].policies[0].policy.ipList[0]: 10.0.0.1/8: host bits set');
    expect(readFileSync(storeFile, 'utf8')).toBe(storeBefore);
    // Drop block-five, keep block-four.
    doc.projects[0]!.apiProxies[0]!.policies[0]!.policy.ipList = ['127.0.0.4'];
    doc.projects[0]!.apiProxies[0]!.policies.splice(1, 1);
    const goodFile = join(dir, 'good.yaml');
    writeFileSync(goodFile, stringify(doc));
    const good = cli('import', '--file', goodFile);
    expect(good.status, good.stderr).toBe(0);
    gw = await startGateway(config(), { env: { IPGATE_ADMIN_TOKEN: ADMIN } });
    expect((await call('GET', '/apiops/export/')).body.revision).toBe(before + 1);
    expect((await send(gw.port, '/api/x', { from: '127.0.0.5' })).status).toBe(200);
    expect((await send(gw.port, '/api/x', { from: '127.0.0.4' })).status).toBe(403);
  });

  it('imports through the admin API, refusing a bad document whole', async () => {
    const doc = (await call('GET', '/apiops/export/')).body;
    delete doc.success;
    delete doc.revision;
    doc.projects[0].apiProxies[0].policies[0].policy.ipList = ['127.0.0.6'];
    const bad = structuredClone(doc);
    bad.projects[0].apiProxies[0].basePath = 'no-slash';
    const refused = await call('PUT', '/apiops/import/', bad);
    expect(refused.status).toBe(400);
    expect(refused.body.details[0].path).toBe('projects[0].apiProxies[0].basePath');
    const ok = await call('PUT', '/apiops/import/', doc);
    expect(ok.status).toBe(200);
    expect(ok.body.deploymentResult.deploymentResults).toEqual([{ environmentName: 'production', success: true, message: expect.any(String) }]);
    expect((await send(gw.port, '/api/x', { from: '127.0.0.6' })).status).toBe(403);
    expect((await send(gw.port, '/api/x', { from: '127.0.0.4' })).status).toBe(200);
  });

  it('imports an export exactly as GET /apiops/export/ gives it: the envelope (success, revision) is ignored', async () => {
    const doc = (await call('GET', '/apiops/export/')).body;
    expect(doc).toMatchObject({ success: true, revision: expect.any(Number) });
    const ok = await call('PUT', '/apiops/import/', doc);
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect((await call('GET', '/apiops/export/')).body).toEqual({ ...doc, revision: doc.revision + 1 });
    // Only those two: any other key is still refused.
    const extra = await call('PUT', '/apiops/import/', { ...doc, deploymentResult: {} });
    expect(extra.status).toBe(400);
    expect(extra.body.details).toEqual([{ path: '', message: 'Unrecognized key: "deploymentResult"' }]);
  });

  it('gives every imported resource a new ETag, so one read before an import is stale (412)', async () => {
    const POLICY = '/apiops/projects/p/apiProxies/api/policies/block-four/';
    const body = (ipList: string[]) => ({ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-black-ip', ipList } });
    const doc = (await call('GET', '/apiops/export/')).body;
    // Admin A reads the policy as an import left it (a counter per resource restarted there)...
    expect((await call('PUT', '/apiops/import/', doc)).status).toBe(200);
    const read = await call('GET', POLICY);
    expect(read.status).toBe(200);
    // ...then another admin imports the same policy holding another list.
    doc.projects[0].apiProxies[0].policies[0].policy.ipList = ['127.0.0.7'];
    expect((await call('PUT', '/apiops/import/', doc)).status).toBe(200);
    const now = await call('GET', POLICY);
    expect(now.etag).not.toBe(read.etag);
    const stale = await call('PUT', POLICY, body(['127.0.0.8']), { 'if-match': read.etag! });
    expect(stale.status).toBe(412);
    expect((await call('GET', POLICY)).body.policy.ipList).toEqual(['127.0.0.7']);
    expect((await call('PUT', POLICY, body(['127.0.0.4']), { 'if-match': now.etag! })).status).toBe(200);
  });

  it('refuses an import naming an invalid environment, or one twice in any case (400 naming it), writing nothing', async () => {
    const doc = (await call('GET', '/apiops/export/')).body;
    const envs = (await call('GET', '/apiops/environments/')).body;
    for (const [environments, path, message] of [
      [['production', 'a/b'], 'environments[1]', 'must be 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit'],
      [['production', ''], 'environments[1]', 'must be 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit'],
      [['production', 'x'.repeat(129)], 'environments[1]', 'must be 1-128 characters of letters, digits, ".", "_" or "-", starting with a letter or digit'],
      [['production', 'staging', 'PRODUCTION'], 'environments[2]', 'PRODUCTION: the same environment as [0] (names are case-insensitive)'],
    ] as const) {
      const r = await call('PUT', '/apiops/import/', { ...doc, environments });
      expect(r.status, JSON.stringify(environments)).toBe(400);
      expect(r.body.details).toEqual([{ path, message }]);
    }
    expect((await call('GET', '/apiops/environments/')).body).toEqual(envs);
  });

  it('keeps the deploy history across an import, and adds the import to it', async () => {
    const HIST = '/apiops/projects/p/apiProxies/api/deploy-histories/';
    const before = (await call('GET', HIST)).body.resultList;
    // The config seed's deployment, revision 1, is the oldest; the imports since did not drop it.
    expect(before[before.length - 1]).toMatchObject({ revision: 1, environmentName: 'production', kind: 'deploy', deployedBy: 'config' });
    const doc = (await call('GET', '/apiops/export/')).body;
    expect((await call('PUT', '/apiops/import/', doc)).status).toBe(200);
    const after = (await call('GET', HIST)).body.resultList;
    expect(after.slice(1)).toEqual(before);
    expect(after[0]).toMatchObject({ revision: doc.revision + 1, environmentName: 'production', kind: 'deploy' });
    const rollback = await call('POST', `${HIST}${before[before.length - 1].revision}/rollback/`);
    expect(rollback.status).toBe(200);
  });
});
