/**
 * IP groups through the apiops admin API: create, list, entries (add / replace / remove, paginated
 * listing), and their live effect on traffic: an entry write is enforced at once, with no deploy
 * call, wherever a deployed policy references the group, and an entry stops matching when it expires.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneProxy, send, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

const ADMIN = 'admin-token-ipgroups-0123456789';

interface AdminReply {
  status: number;
  etag: string | undefined;
  body: any;
}

function api(gw: TestGateway) {
  const port = gw.gateway.adminAddress.port;
  return async (method: string, path: string, opts: { body?: unknown; headers?: Record<string, string> } = {}): Promise<AdminReply> => {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN}`, ...opts.headers };
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const r = await send(port, path, { method, headers, body: payload });
    return { status: r.status, etag: r.headers.etag as string | undefined, body: r.text === '' ? null : r.json() };
  };
}

const GROUPS = '/apiops/projects/p/ipGroups/';
const POL = '/apiops/projects/p/apiProxies/api/policies/';

const deployedHere = { success: true, deploymentResults: [{ environmentName: 'production', success: true, message: expect.stringMatching(/^Deployment successful/) }] };

describe('apiops IP groups', () => {
  let up: Upstream;
  let gw: TestGateway;
  let call: ReturnType<typeof api>;
  let officeId = '';
  let createdVersion = 0;
  const dir = mkdtempSync(join(tmpdir(), 'ipgate-ipgroups-'));
  const storeFile = join(dir, 'store.json');

  const status = async (from: string) => (await send(gw.port, '/api/x', { from })).status;

  beforeAll(async () => {
    up = await startUpstream();
    // No policy yet: everything is allowed until a policy references a group.
    gw = await startGateway(oneProxy(up.url, [], { gateway: { store: { file: storeFile } } }), { env: { IPGATE_ADMIN_TOKEN: ADMIN } });
    call = api(gw);
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('creates an empty group with a generated id, and refuses a second one of the same name (409)', async () => {
    const r = await call('POST', `${GROUPS}office/`, { body: { description: 'office clients' } });
    expect(r.status).toBe(201);
    expect(r.body).toEqual({ success: true, id: expect.stringMatching(/^ipg_[0-9a-f]+$/) });
    officeId = r.body.id;
    // The version is the store revision that created the group; the ETag is that number.
    expect(r.etag).toMatch(/^"\d+"$/);
    createdVersion = Number(r.etag!.slice(1, -1));

    const byId = await call('GET', `${GROUPS}${officeId}/`);
    expect(byId.status).toBe(200);
    expect(byId.body).toEqual({ success: true, ipGroup: { id: officeId, name: 'office', description: 'office clients', entryCount: 0, version: createdVersion } });
    expect(byId.etag).toBe(r.etag);
    const byName = await call('GET', `${GROUPS}OFFICE/`);
    expect(byName.body.ipGroup.id).toBe(officeId);

    const dup = await call('POST', `${GROUPS}Office/`, { body: {} });
    expect(dup.status).toBe(409);
    expect(dup.body.error).toBe('CONFLICT');
  });

  it('answers 404 for an unknown group, on the group and on its entries', async () => {
    for (const [method, path, body] of [
      ['GET', `${GROUPS}nope/`, undefined],
      ['GET', `${GROUPS}nope/ips/`, undefined],
      ['POST', `${GROUPS}nope/ips/`, { entries: [{ ip: '10.0.0.1' }] }],
      ['DELETE', `${GROUPS}nope/`, undefined],
    ] as const) {
      const r = await call(method, path, { body });
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.body.error).toBe('NOT_FOUND');
    }
  });

  it('enforces a white-ip policy on the group, and an added entry takes effect at once without a deploy call', async () => {
    expect(await status('127.0.0.2')).toBe(200);
    const pol = await call('POST', `${POL}office-only/`, {
      body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true }, policy: { type: 'policy-white-ip', ipGroupIdList: [officeId] } },
    });
    expect(pol.status).toBe(200);
    expect(pol.body.deploymentResult).toEqual(deployedHere);
    // The group is empty: nobody is allowed yet.
    expect(await status('127.0.0.2')).toBe(403);

    const add = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '127.0.0.0/29', description: 'desk range' }] } });
    expect(add.status).toBe(200);
    expect(add.body).toEqual({ success: true, added: 1, ignored: 0, deploymentResult: deployedHere });
    // The group's new version: the add's revision, after the policy write's.
    const addVersion = Number(add.etag!.slice(1, -1));
    expect(addVersion).toBeGreaterThan(createdVersion + 1);
    // No deploy call, no sleep.
    expect(await status('127.0.0.2')).toBe(200);
    expect(await status('127.0.0.9')).toBe(403);

    const list = await call('GET', GROUPS);
    expect(list.body).toEqual({
      success: true,
      resultList: [{ id: officeId, name: 'office', description: 'office clients', entryCount: 1, version: addVersion, referencedBy: [{ apiProxy: 'api', policy: 'office-only' }] }],
      resultCount: 1,
    });
    const entries = await call('GET', `${GROUPS}office/ips/`);
    expect(entries.body).toEqual({
      success: true,
      entries: [{ ip: '127.0.0.0/29', description: 'desk range', createdBy: expect.any(String), createdAt: expect.any(String) }],
      next_page_uri: null,
    });
    expect(Date.parse(entries.body.entries[0].createdAt)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('lets a deny entry inside an allowed range win', async () => {
    expect(await status('127.0.0.3')).toBe(200);
    const r = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '127.0.0.3', action: 'deny' }] } });
    expect(r.body).toMatchObject({ success: true, added: 1, ignored: 0 });
    expect(await status('127.0.0.3')).toBe(403);
    expect(await status('127.0.0.2')).toBe(200);
  });

  it('ignores duplicates: same normalised IP and action, in the group or earlier in the body', async () => {
    const r = await call('POST', `${GROUPS}office/ips/`, {
      body: {
        entries: [
          { ip: '127.0.0.0/29' }, // already there
          { ip: '127.0.0.3/32', action: 'deny' }, // already there, written differently
          { ip: '127.0.0.3', action: 'allow' }, // another action: kept
          { ip: '10.1.2.3' },
          { ip: ' 10.1.2.3/32 ' }, // the same as the previous one
        ],
      },
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ success: true, added: 2, ignored: 3 });
    const g = await call('GET', `${GROUPS}office/`);
    expect(g.body.ipGroup.entryCount).toBe(4);
    // In a white-ip policy deny wins over allow.
    expect(await status('127.0.0.3')).toBe(403);
  });

  it('removes entries by IP text (normalised), ignores unknown ones, and traffic is denied again', async () => {
    const r = await call('DELETE', `${GROUPS}office/ips/`, { body: { entries: ['127.0.0.0/29', '10.1.2.3/32', '192.0.2.1'] } });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ success: true, removed: 2, ignored: 1, deploymentResult: deployedHere });
    expect(await status('127.0.0.2')).toBe(403);
    const left = await call('GET', `${GROUPS}office/ips/`);
    expect(left.body.entries.map((e: { ip: string; action?: string }) => `${e.ip} ${e.action}`)).toEqual(['127.0.0.3/32 deny', '127.0.0.3/32 allow']);
  });

  it('replaces the whole list with PUT', async () => {
    const r = await call('PUT', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '127.0.0.5' }, { ip: '127.0.0.4' }, { ip: '127.0.0.5/32' }] } });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ success: true, entryCount: 2, ignored: 1, deploymentResult: deployedHere });
    const list = await call('GET', `${GROUPS}office/ips/`);
    expect(list.body.entries.map((e: { ip: string }) => e.ip)).toEqual(['127.0.0.5/32', '127.0.0.4/32']);
    expect(await status('127.0.0.5')).toBe(200);
    expect(await status('127.0.0.4')).toBe(200);
    expect(await status('127.0.0.3')).toBe(403); // was allowed (and denied) before; now not listed at all
    expect(await status('127.0.0.2')).toBe(403);
  });

  it('refuses a stale If-Match with 412 and accepts the current one', async () => {
    const g = await call('GET', `${GROUPS}office/`);
    const etag = g.etag!;
    expect(etag).toBe(`"${g.body.ipGroup.version}"`);
    const ok = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '127.0.0.12' }] }, headers: { 'if-match': etag } });
    expect(ok.status).toBe(200);
    expect(ok.etag).toBe(`"${g.body.ipGroup.version + 1}"`);
    for (const [method, body] of [
      ['POST', { entries: [{ ip: '127.0.0.13' }] }],
      ['PUT', { entries: [] }],
      ['DELETE', { entries: ['127.0.0.12'] }],
    ] as const) {
      const stale = await call(method, `${GROUPS}office/ips/`, { body, headers: { 'if-match': etag } });
      expect(stale.status, method).toBe(412);
      expect(stale.body.error).toBe('PRECONDITION_FAILED');
    }
    expect(await status('127.0.0.12')).toBe(200);
    expect(await status('127.0.0.13')).toBe(403);
  });

  it('names the field of a bad entry (400) and changes nothing', async () => {
    const before = await call('GET', `${GROUPS}office/`);
    const long = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '127.0.0.20', description: 'é'.repeat(128) }] } }); // 128 characters, 256 bytes
    expect(long.status).toBe(400);
    expect(long.body.error).toBe('BAD_REQUEST');
    expect(long.body.details.map((d: { path: string }) => d.path)).toEqual(['entries[0].description']);
    const okLen = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '127.0.0.21', description: 'é'.repeat(127) + 'e' }] }, headers: { 'if-match': '"0"' } });
    expect(okLen.status).toBe(412); // 255 bytes pass validation; the If-Match then refuses it
    const ip = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '10.0.0.1' }, { ip: '10.0.0.2' }, { ip: '10.0.0.1/8' }] } });
    expect(ip.status).toBe(400);
    expect(ip.body.details).toEqual([{ path: 'entries[2].ip', message: expect.stringContaining('host bits set') }]);
    const meta = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '10.0.0.1', metadata: 'x'.repeat(4097) }] } });
    expect(meta.body.details.map((d: { path: string }) => d.path)).toEqual(['entries[0].metadata']);
    const server = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '10.0.0.1', createdBy: 'me', createdAt: new Date().toISOString() }] } });
    expect(server.status).toBe(400);
    expect(server.body.details.map((d: { path: string }) => d.path).sort()).toEqual(['entries[0].createdAt', 'entries[0].createdBy']);
    const action = await call('PUT', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '10.0.0.1', action: 'block' }] } });
    expect(action.body.details.map((d: { path: string }) => d.path)).toEqual(['entries[0].action']);
    // Impossible dates that Date.parse rolls over (February 30 to March 2, 24:00 to the next day).
    for (const expiresAt of ['2026-02-30T00:00:00Z', '2026-04-31T00:00:00Z', '2025-02-29T00:00:00Z', '2026-01-01T24:00:00Z']) {
      const r = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '10.0.0.1', expiresAt }] } });
      expect(r.status, expiresAt).toBe(400);
      expect(r.body.details, expiresAt).toEqual([{ path: 'entries[0].expiresAt', message: 'must be an RFC 3339 timestamp of a real date and time' }]);
    }
    const leapDay = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '10.0.0.1', expiresAt: '2028-02-29T23:59:59+14:00' }] }, headers: { 'if-match': '"0"' } });
    expect(leapDay.status).toBe(412); // a real date passes validation; the If-Match then refuses it
    const del = await call('DELETE', `${GROUPS}office/ips/`, { body: { entries: ['127.0.0.12', 'not-an-ip'] } });
    expect(del.status).toBe(400);
    expect(del.body.details.map((d: { path: string }) => d.path)).toEqual(['entries[1]']);
    const after = await call('GET', `${GROUPS}office/`);
    expect(after.body.ipGroup).toEqual(before.body.ipGroup);
  });

  it('paginates 2500 entries with limit 1000: 3 pages, each entry exactly once, in insertion order', async () => {
    expect((await call('POST', `${GROUPS}big/`)).status).toBe(201);
    const ips = Array.from({ length: 2500 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
    const add = await call('POST', `${GROUPS}big/ips/`, { body: { entries: ips.map((ip) => ({ ip })) } });
    expect(add.body).toMatchObject({ success: true, added: 2500, ignored: 0 });
    // Referenced by no deployed policy: the write is enforced nowhere, so no deployment results.
    expect(add.body.deploymentResult).toEqual({ success: true, deploymentResults: [] });

    const seen: string[] = [];
    const sizes: number[] = [];
    let next: string | null = `${GROUPS}big/ips/?limit=1000`;
    while (next !== null) {
      const page: AdminReply = await call('GET', next);
      expect(page.status).toBe(200);
      sizes.push(page.body.entries.length);
      seen.push(...page.body.entries.map((e: { ip: string }) => e.ip));
      next = page.body.next_page_uri;
      if (next !== null) expect(next).toMatch(/^\/apiops\/projects\/p\/ipGroups\/big\/ips\/\?.*limit=1000/);
      expect(sizes.length).toBeLessThanOrEqual(3);
    }
    expect(sizes).toEqual([1000, 1000, 500]);
    expect(seen).toEqual(ips.map((ip) => `${ip}/32`));
    // Default limit is 100.
    expect((await call('GET', `${GROUPS}big/ips/`)).body.entries).toHaveLength(100);
  });

  it('resumes a listing just after the last entry returned, though entries before it were removed in between', async () => {
    expect((await call('POST', `${GROUPS}walk/`)).status).toBe(201);
    const ips = [1, 2, 3, 4, 5, 6].map((i) => `10.0.1.${i}`);
    expect((await call('POST', `${GROUPS}walk/ips/`, { body: { entries: ips.map((ip) => ({ ip })) } })).status).toBe(200);
    const page1 = await call('GET', `${GROUPS}walk/ips/?limit=2`);
    expect(page1.body.entries.map((e: { ip: string }) => e.ip)).toEqual(['10.0.1.1/32', '10.0.1.2/32']);
    // 10.0.1.3 now stands where page 1 ended: a position for a cursor would skip it.
    expect((await call('DELETE', `${GROUPS}walk/ips/`, { body: { entries: ['10.0.1.1'] } })).body).toMatchObject({ removed: 1 });
    const rest: string[] = [];
    let next: string | null = page1.body.next_page_uri;
    for (let pages = 0; next !== null && pages < 5; pages++) {
      const page: AdminReply = await call('GET', next);
      expect(page.status).toBe(200);
      rest.push(...page.body.entries.map((e: { ip: string }) => e.ip));
      next = page.body.next_page_uri;
    }
    expect(rest).toEqual(['10.0.1.3/32', '10.0.1.4/32', '10.0.1.5/32', '10.0.1.6/32']);
    // A cursor naming an entry removed since is refused, not guessed at.
    const page2 = await call('GET', `${GROUPS}walk/ips/?limit=2`);
    expect(page2.body.entries.map((e: { ip: string }) => e.ip)).toEqual(['10.0.1.2/32', '10.0.1.3/32']);
    expect((await call('DELETE', `${GROUPS}walk/ips/`, { body: { entries: ['10.0.1.3'] } })).body).toMatchObject({ removed: 1 });
    const gone = await call('GET', page2.body.next_page_uri);
    expect(gone.status).toBe(400);
    expect(gone.body.details).toEqual([{ path: 'cursor', message: 'names an entry that is no longer in the group' }]);
    expect((await call('DELETE', `${GROUPS}walk/`)).status).toBe(200);
  });

  it('stores and returns a single address as a /32 or /128, and addresses and CIDRs in canonical form', async () => {
    expect((await call('POST', `${GROUPS}canon/`)).status).toBe(201);
    const written = ['203.0.113.100', ' 2001:DB8:0:0:0:0:0:1 ', '::ffff:192.0.2.77', '2001:DB8::/32', '10.3.10.4-18', '10.4.*.*'];
    const stored = ['203.0.113.100/32', '2001:db8::1/128', '192.0.2.77/32', '2001:db8::/32', '10.3.10.4-18', '10.4.*.*'];
    expect((await call('POST', `${GROUPS}canon/ips/`, { body: { entries: written.map((ip) => ({ ip })) } })).body).toMatchObject({ added: 6, ignored: 0 });
    expect((await call('GET', `${GROUPS}canon/ips/`)).body.entries.map((e: { ip: string }) => e.ip)).toEqual(stored);
    const exported = (await call('GET', '/apiops/export/')).body.projects[0].ipGroups.find((g: { name: string }) => g.name === 'canon');
    expect(exported.entries.map((e: { ip: string }) => e.ip)).toEqual(stored);
    expect((await call('DELETE', `${GROUPS}canon/`)).status).toBe(200);
  });

  it('answers 400 naming limit or cursor for a bad one', async () => {
    for (const limit of ['0', '1001', 'abc', '-5', '1.5']) {
      const r = await call('GET', `${GROUPS}big/ips/?limit=${limit}`);
      expect(r.status, limit).toBe(400);
      expect(r.body.details[0].path).toBe('limit');
    }
    for (const cursor of ['zzz', '!!', Buffer.from('-1').toString('base64url'), Buffer.from('abc').toString('base64url')]) {
      const r = await call('GET', `${GROUPS}big/ips/?cursor=${encodeURIComponent(cursor)}`);
      expect(r.status, cursor).toBe(400);
      expect(r.body.details[0].path).toBe('cursor');
    }
  });

  it('refuses to delete a group a policy references, in the working copy or a deployment (409), and deletes an unreferenced one', async () => {
    const r = await call('DELETE', `${GROUPS}office/`);
    expect(r.status).toBe(409);
    expect(r.body.error).toBe('CONFLICT');
    expect(r.body.error_description).toContain('office-only');
    expect(r.body.error_description).toContain('api');

    // A second policy, saved but not deployed, referencing "big" by name.
    const saved = await call('POST', `${POL}big-ref/`, {
      body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: false }, policy: { type: 'policy-black-ip', ipGroupIdList: ['BIG'] } },
    });
    expect(saved.status).toBe(200);
    const list = await call('GET', GROUPS);
    const big = list.body.resultList.find((g: { name: string }) => g.name === 'big');
    expect(big).toMatchObject({ entryCount: 2500, referencedBy: [{ apiProxy: 'api', policy: 'big-ref' }] });
    const draftOnly = await call('DELETE', `${GROUPS}big/`);
    expect(draftOnly.status).toBe(409);
    expect(draftOnly.body.error_description).toContain('big-ref');
    expect((await call('DELETE', `${POL}big-ref/`, { body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' } } })).status).toBe(200);

    const spare = await call('POST', `${GROUPS}spare/`);
    expect(spare.status).toBe(201);
    const stale = await call('DELETE', `${GROUPS}spare/`, { headers: { 'if-match': '"7"' } });
    expect(stale.status).toBe(412);
    // Deleted and created again, the group has a new ETag: one read before refuses entry writes.
    expect((await call('DELETE', `${GROUPS}spare/`, { headers: { 'if-match': spare.etag! } })).status).toBe(200);
    const again = await call('POST', `${GROUPS}spare/`);
    expect(again.etag).not.toBe(spare.etag);
    const staleAdd = await call('POST', `${GROUPS}spare/ips/`, { body: { entries: [{ ip: '10.0.0.1' }] }, headers: { 'if-match': spare.etag! } });
    expect(staleAdd.status).toBe(412);
    expect((await call('GET', `${GROUPS}spare/`)).body.ipGroup.entryCount).toBe(0);
    const del = await call('DELETE', `${GROUPS}spare/`);
    expect(del.status).toBe(200);
    expect(del.body).toEqual({ success: true });
    expect((await call('GET', `${GROUPS}spare/`)).status).toBe(404);
    expect((await call('DELETE', `${GROUPS}big/`)).status).toBe(200);
    expect((await call('GET', GROUPS)).body.resultList.map((g: { name: string }) => g.name)).toEqual(['office']);
  });

  it('stops allowing an entry when it expires, with no admin call', async () => {
    expect(await status('127.0.0.6')).toBe(403);
    // Far enough ahead that the write is deployed and answered once before it passes, even on a
    // loaded machine.
    const expiresAt = new Date(Date.now() + 6000).toISOString();
    const r = await call('POST', `${GROUPS}office/ips/`, { body: { entries: [{ ip: '127.0.0.6', expiresAt }] } });
    expect(r.body).toMatchObject({ success: true, added: 1 });
    expect(await status('127.0.0.6')).toBe(200);
    const deadline = Date.now() + 20_000;
    let last = 200;
    while (Date.now() < deadline) {
      last = await status('127.0.0.6');
      if (last === 403) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(last).toBe(403);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(expiresAt));
    // The other entries still match.
    expect(await status('127.0.0.5')).toBe(200);
  });
  it('keeps refusing to delete a group only a deployment still references, until the proxy is redeployed', async () => {
    const saved = await call('DELETE', `${POL}office-only/`, { body: { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: false } } });
    expect(saved.status).toBe(200);
    expect((await call('GET', GROUPS)).body.resultList[0].referencedBy).toEqual([{ apiProxy: 'api', policy: 'office-only' }]);
    const r = await call('DELETE', `${GROUPS}office/`);
    expect(r.status).toBe(409);
    expect(r.body.error_description).toContain('office-only');
    // Still enforced: the deployed copy uses the group.
    expect(await status('127.0.0.2')).toBe(403);
    const dep = await call('POST', '/apiops/projects/p/apiProxies/api/environments/production/');
    expect(dep.body.deploymentResult.success).toBe(true);
    expect(await status('127.0.0.2')).toBe(200);
    expect((await call('GET', GROUPS)).body.resultList[0].referencedBy).toEqual([]);
    expect((await call('DELETE', `${GROUPS}${officeId}/`)).status).toBe(200);
    expect((await call('GET', GROUPS)).body).toEqual({ success: true, resultList: [], resultCount: 0 });
  });
});
