/**
 * A cluster store restored to an earlier point and then written again must be detected by every
 * node, in-process against the real database (found in an adversarial review; fixed with
 * per-revision write ids).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { PgStore, type PgStoreOptions } from '../../src/controlplane/store/pg/pg-store.js';
import { seedStore } from '../../src/controlplane/store/to-state.js';
import { adminSql, dropSchema, PG_URL, postgresGate, uniqueSchema } from '../helpers/pg.js';

const hasPostgres = await postgresGate('cluster-restore.test.ts');

const proxy = (name: string, ipList: string[]) => ({
  name,
  basePath: `/${name}`,
  upstream: { url: 'http://127.0.0.1:1' },
  environments: ['production'],
  policies: [{ operationMetadata: { targetScope: 'ALL' as const, targetPipeline: 'REQUEST' as const }, policy: { type: 'policy-white-ip' as const, name: 'allow', ipList } }],
});

const TABLES = ['head', 'revisions', 'resources', 'blobs', 'audit', 'change_log'];

describe.runIf(hasPostgres)('cluster store restored to an earlier point', () => {
  const sql = adminSql();
  const schemas: string[] = [];
  const stores: PgStore[] = [];

  afterAll(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    for (const s of schemas) await dropSchema(sql, s).catch(() => undefined);
    await sql.end({ timeout: 2 });
  });

  const open = async (schema: string, over: Partial<PgStoreOptions> = {}): Promise<PgStore> => {
    const s = await PgStore.open({
      url: PG_URL,
      schema,
      connectTimeoutMs: 1000,
      writeTimeoutMs: 3000,
      statusWaitMs: 200,
      pollIntervalMs: 60_000,
      heartbeatMs: 60_000,
      snapshotCache: null,
      poolSize: 2,
      nodeId: `n-${stores.length}`,
      environment: 'production',
      role: 'tool',
      seed: () => seedStore({ revision: 1, projects: [{ name: 'p', description: undefined, ipGroups: [], apiProxies: [proxy('a', ['10.0.0.0/8'])] }] }, 'production'),
      ...over,
    });
    stores.push(s);
    return s;
  };
  const fresh = (): string => {
    const s = uniqueSchema('ipgate_review');
    schemas.push(s);
    schemas.push(`${s}_bk`);
    return s;
  };

  const setList = (ipList: string[]) => (d: Parameters<Parameters<PgStore['update']>[0]>[0]) => {
    const r = d.projects[0]!.proxies[0]!;
    r.draft.policies[0]!.policy.ipList = ipList;
    r.version++;
    r.deployments.production = { revision: d.revision + 1, deployedAt: 'now', deployedBy: 'test', proxy: structuredClone(r.draft) };
  };
  const listOf = (s: PgStore): readonly string[] => s.data.projects[0]!.proxies[0]!.deployments.production!.proxy.policies[0]!.policy.ipList ?? [];

  // Found in review (fixed with per-revision write ids, migration 2). README "Export, import and migration": "A database restored with
  // pg_dump/psql to an earlier point is detected by its lower revision." Only while the head is
  // still lower than what the node holds. The incremental read (read-state.ts readState) keeps a
  // cached row when (rev, row_version, pos) are unchanged, and after a restore new writes reuse the
  // same revision numbers and row versions for different content. A node that did not look at the
  // head between the restore and the moment new writes passed its revision (cut off, or just
  // between heartbeats) then keeps an old row forever, with the same epoch and revision as
  // everyone: it enforces (and writes on top of) a policy that no longer exists in the database.
  it('after a restore to an earlier point and new writes past the node revision, a node reads the database truth', async () => {
    const schema = fresh();
    const bk = `${schema}_bk`;
    const a = await open(schema);
    const b = await open(schema);
    // A backup at revision 1 (what pg_dump would hold), in a side schema.
    await sql.unsafe(`create schema "${bk}"`);
    for (const t of TABLES) await sql.unsafe(`create table "${bk}".${t} as select * from "${schema}".${t}`);
    // B writes revision 2: the proxy allows 192.0.2.0/24 (B now holds it).
    await b.update(setList(['192.0.2.0/24']));
    expect(b.data.revision).toBe(2);
    // The database is restored to revision 1, in one transaction, as the README says.
    await sql.begin(async (tx) => {
      for (const t of TABLES) {
        await tx.unsafe(`delete from "${schema}".${t}`);
        await tx.unsafe(`insert into "${schema}".${t} select * from "${bk}".${t}`);
      }
    });
    // Two admin writes through A before B looks: revision 2 (another list) and 3 (unrelated).
    await a.update(setList(['198.51.100.0/24']));
    await a.update((d) => {
      d.environments.push({ name: 'staging', createdAt: 'now' });
    });
    expect(a.data.revision).toBe(3);
    // B's next contact with the database (here a write of its own, which reads under the head lock;
    // a node's sync reads the same way) must leave it with the database's state.
    await b.update((d) => {
      d.environments.push({ name: 'qa', createdAt: 'now' });
    });
    const truth = await open(schema);
    expect(listOf(truth)).toEqual(['198.51.100.0/24']);
    expect(listOf(b)).toEqual(['198.51.100.0/24']);
  });
});
