/**
 * The PostgreSQL cluster store in-process, against the real database: migrations raced by several
 * nodes, the row-version guard, blobs and the change log, and bounded failures when the database
 * is away. (The node-process scenarios are in cluster-propagation/outage/failures.)
 */
import { MIGRATIONS } from '../../src/controlplane/store/pg/migrations.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import type { PgStore } from '../../src/controlplane/store/pg/pg-store.js';
import type { StoreData } from '../../src/controlplane/store/state.js';
import { StoreConflictError, StoreUnavailableError } from '../../src/controlplane/store/store.js';
import { PG_URL, pgStores, postgresGate } from '../helpers/pg.js';
import { proxyDef, seededStore } from '../helpers/store-seed.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const hasPostgres = await postgresGate('cluster-store.test.ts');

describe('cluster store configuration', () => {
  it('IPGATE_STORE=postgres://... selects the cluster store, with its defaults', () => {
    const c = parseConfigText('{}', 't.yaml', { IPGATE_STORE: 'postgresql://u:secret@db.internal:5433/gw' });
    expect(c.store.file).toBeNull();
    expect(c.store.postgres).toMatchObject({ url: 'postgresql://u:secret@db.internal:5433/gw', schema: 'ipgate', statusWaitMs: 5000, pollIntervalMs: 15000, snapshotCache: null });
    const f = parseConfigText('store: { postgres: { url: "postgres://x/y" } }', 't.yaml', { IPGATE_STORE: '/var/lib/ipgate/store.json' });
    expect(f.store).toEqual({ file: '/var/lib/ipgate/store.json', postgres: null });
  });

  it('names the key of a bad setting, and refuses two stores at once', () => {
    expect(() => parseConfigText('store: { file: a.json, postgres: { url: "postgres://h/db" } }', 't.yaml')).toThrow(/store\.postgres: store\.file and store\.postgres are mutually exclusive/);
    expect(() => parseConfigText('store: { postgres: { url: "mysql://h/db" } }', 't.yaml')).toThrow(/store\.postgres\.url: must be a postgres:\/\/ or postgresql:\/\/ URL/);
    expect(() => parseConfigText('store: { postgres: { url: "postgres://h/db", schema: "Bad-Name" } }', 't.yaml')).toThrow(/store\.postgres\.schema:/);
    expect(() => parseConfigText('{}', 't.yaml', { IPGATE_STORE: 'postgres://db:99999/gw' })).toThrow(/store\.postgres\.url: .*\[set by IPGATE_STORE\]/);
  });
});

describe.runIf(hasPostgres)('cluster store against PostgreSQL', () => {
  const { sql, fresh, open } = pgStores('ipgate_store', { seed: () => seededStore() });

  const TABLES = ['head', 'revisions', 'resources', 'blobs', 'audit', 'change_log'];
  const setList = (ipList: string[]) => (d: Parameters<Parameters<PgStore['update']>[0]>[0]) => {
    const r = d.projects[0]!.proxies[0]!;
    r.draft.policies[0]!.policy.ipList = ipList;
    r.version++;
    r.deployments.production = { revision: d.revision + 1, deployedAt: 'now', deployedBy: 'test', proxy: structuredClone(r.draft) };
  };
  const listOf = (s: PgStore): readonly string[] => s.data.projects[0]!.proxies[0]!.deployments.production!.proxy.policies[0]!.policy.ipList ?? [];

  // Found in review (fixed with per-revision write ids, migration 2): a restore to an earlier point
  // used to be detected by its lower revision only while the head was still lower than what the
  // node held. The incremental read (read-state.ts readState) keeps a
  // cached row when (rev, row_version, pos) are unchanged, and after a restore new writes reuse the
  // same revision numbers and row versions for different content. A node that did not look at the
  // head between the restore and the moment new writes passed its revision (cut off, or just
  // between heartbeats) then keeps an old row forever, with the same epoch and revision as
  // everyone: it enforces (and writes on top of) a policy that no longer exists in the database.
  it('after a restore to an earlier point and new writes past the node revision, a node reads the database truth', async () => {
    const schema = fresh();
    const bk = fresh(); // the backup's side schema
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

  it('several nodes starting at once on a new database: migrated once, seeded once, one epoch', async () => {
    const schema = fresh();
    const opened = await Promise.all([0, 1, 2, 3].map(() => open(schema)));
    expect(new Set(opened.map((s) => s.data.epoch)).size).toBe(1);
    expect(opened.map((s) => s.data.revision)).toEqual([1, 1, 1, 1]);
    const m = await sql.unsafe(`select version from "${schema}".migrations`);
    // Every migration applied exactly once, however many nodes raced.
    expect(m.map((r) => Number(r.version)).sort()).toEqual(MIGRATIONS.map((x) => x.version));
    const head = await sql.unsafe(`select count(*)::int as n from "${schema}".head`);
    expect(head[0]!.n).toBe(1);
  });

  it('refuses a schema migrated by a newer ipgate', async () => {
    const schema = fresh();
    await open(schema);
    await sql.unsafe(`insert into "${schema}".migrations (version, name) values (999, 'from the future')`);
    await expect(open(schema)).rejects.toThrow(/is at migration 999, newer than this ipgate knows/);
  });

  it('a row changed behind the head (a writer that skipped the protocol) fails the guarded UPDATE: nothing written', async () => {
    const schema = fresh();
    const s = await open(schema);
    await sql.unsafe(`update "${schema}".resources set row_version = row_version + 1 where kind = 'proxy'`);
    const err = await s
      .update((d) => {
        d.projects[0]!.proxies[0]!.draft.description = 'changed';
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreConflictError);
    expect((err as Error).message).toMatch(/proxy \["p","a"\] was changed by another writer/);
    const head = await sql.unsafe(`select revision from "${schema}".head`);
    expect(Number(head[0]!.revision)).toBe(1);
    expect(s.data.revision).toBe(1);
  });

  it('writes only what changed: deployed copies are shared blobs, the change log names each changed row', async () => {
    const schema = fresh();
    const s = await open(schema);
    const big = Array.from({ length: 5000 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
    // Deploy a large list, then make an unrelated change.
    await s.update((d) => {
      const r = d.projects[0]!.proxies[0]!;
      r.draft.policies[0]!.policy.ipList = big;
      r.version++;
      r.deployments.production = { revision: d.revision + 1, deployedAt: 'now', deployedBy: 'test', proxy: structuredClone(r.draft) };
    });
    await s.update((d) => {
      d.environments.push({ name: 'staging', createdAt: 'now' });
    });
    const rev = s.data.revision;
    const log = await sql.unsafe(`select kind, key, op from "${schema}".change_log where revision = $1`, [rev]);
    expect(log.map((r) => [r.kind, r.key, r.op])).toEqual([['environment', 'staging', 'insert']]);
    // One blob per deployed copy still referenced: the large one, and the seed's, which its history keeps.
    const blobs = await sql.unsafe(`select hash from "${schema}".blobs`);
    expect(blobs).toHaveLength(2);
    // Another node reads the same state, deployed copy included.
    const other = await open(schema);
    expect(other.data.projects[0]!.proxies[0]!.deployments.production!.proxy.policies[0]!.policy.ipList).toHaveLength(5000);
    expect(JSON.stringify(other.data)).toBe(JSON.stringify(s.data));
    // Undeploying drops the blob nobody references any more (the history still holds the seed's).
    await s.update((d) => {
      delete d.projects[0]!.proxies[0]!.deployments.production;
    });
    expect(await sql.unsafe(`select hash from "${schema}".blobs`)).toHaveLength(1);
  });

  it("a write's draft shares the committed lists and audit records instead of copying them, on the writer and on a node that read them", async () => {
    const schema = fresh();
    const s = await open(schema);
    const record = (id: number) => ({ id, time: 'now', revision: id, actor: 't', action: 'x', project: null, proxy: null, target: 't', before: null, after: { n: id } });
    const addRecord = (d: StoreData): void => void d.audit.push(record(d.audit.length + 1));
    await s.update((d) => {
      setList(Array.from({ length: 300 }, (_, i) => `10.2.${i >> 8}.${i & 255}`))(d);
      addRecord(d);
    });
    const workingList = (d: Readonly<StoreData>): unknown => d.projects[0]!.proxies[0]!.draft.policies[0]!.policy.ipList;
    const other = await open(schema);
    for (const store of [other, s]) {
      // A write brings the node up to date (the newest state is read in its transaction): after it,
      // this node's committed state is the base of its next write.
      await store.update(addRecord);
      const committed = store.data;
      await store.update((d) => {
        expect(d.audit[0]).toBe(committed.audit[0]);
        expect(d.audit.at(-1)).toBe(committed.audit.at(-1));
        expect(d.audit).not.toBe(committed.audit);
        expect(workingList(d)).toBe(workingList(committed));
        expect(d.projects[0]).not.toBe(committed.projects[0]);
        addRecord(d);
      });
      // The committed state the draft shared with is unchanged.
      expect(store.data.audit.length).toBe(committed.audit.length + 1);
    }
    expect((await sql.unsafe(`select id from "${schema}".audit order by id`)).map((r) => Number(r.id))).toEqual([1, 2, 3, 4, 5]);
  });

  it('migration with the CLI: file store → PostgreSQL → file store, the same YAML all the way', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-migrate-'));
    const schema = fresh();
    const project = {
      name: 'shop',
      description: 'migrated',
      ipGroups: [{ name: 'offices', entries: [{ ip: '198.51.100.0/24', description: 'HQ' }, { ip: '203.0.113.9', action: 'deny' }] }],
      apiProxies: [{ ...proxyDef('orders', ['10.0.0.0/8']), environments: ['production', 'staging'] }],
    };
    const write = (name: string, config: Record<string, unknown>): string => {
      const f = join(dir, name);
      writeFileSync(f, stringify(config));
      return f;
    };
    const fileA = write('a.yaml', { store: { file: join(dir, 'a.json') }, projects: [project] });
    const pg = write('pg.yaml', { store: { postgres: { url: PG_URL, schema } } });
    const fileB = write('b.yaml', { store: { file: join(dir, 'b.json') } });
    const cli = (...args: string[]) => {
      const r = spawnSync(process.execPath, ['dist/cli.js', ...args], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    // Seed the file store from its config (as a first start does), then move it.
    cli('import', '--config', fileA, '--file', write('seed.yaml', { environments: ['production', 'staging'], projects: [project] }));
    cli('export', '--config', fileA, '--out', join(dir, 'from-file.yaml'));
    expect(cli('import', '--config', pg, '--file', join(dir, 'from-file.yaml'))).toMatch(/into PostgreSQL schema/);
    cli('export', '--config', pg, '--out', join(dir, 'from-pg.yaml'));
    cli('import', '--config', fileB, '--file', join(dir, 'from-pg.yaml'));
    cli('export', '--config', fileB, '--out', join(dir, 'back.yaml'));
    const doc = (f: string): unknown => parse(readFileSync(join(dir, f), 'utf8'));
    expect(doc('from-pg.yaml')).toEqual(doc('from-file.yaml'));
    expect(doc('back.yaml')).toEqual(doc('from-file.yaml'));
    expect(doc('from-pg.yaml')).toMatchObject({ environments: ['production', 'staging'], projects: [{ name: 'shop', ipGroups: [{ name: 'offices' }] }] });
  });

  it('a write blocked by another write that holds the lock: 503 that says the store is busy, and the database is still up', async () => {
    const schema = fresh();
    const s = await open(schema, { writeTimeoutMs: 800 });
    // Another node's transaction holds the head row's lock for longer than this write may wait.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const lockTaken = new Promise<void>((r) => (locked = r));
    const holder = sql.begin(async (tx) => {
      await tx.unsafe(`select revision from "${schema}".head for update`);
      locked();
      await held;
    });
    try {
      await lockTaken;
      const err = await s.update((d) => d.environments.push({ name: 'blocked', createdAt: 'now' })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toMatch(/^the store is busy: another write held its lock for longer than \d+ ms/);
      expect(s.status().databaseUp).toBe(true);
      expect(s.data.revision).toBe(1);
    } finally {
      release();
      await holder;
    }
    expect((await s.update((d) => d.environments.push({ name: 'after', createdAt: 'now' }))).data.revision).toBe(2);
  });

  it('PostgreSQL out of reach: writes fail with StoreUnavailableError within the write timeout; the state stays', async () => {
    const schema = fresh();
    const u = new URL(PG_URL);
    const p = await TcpProxy.start(u.hostname, Number(u.port || 5432));
    try {
      u.hostname = '127.0.0.1';
      u.port = String(p.port);
      const s = await open(schema, { url: u.toString() });
      for (const mode of ['pause', 'cut'] as const) {
        if (mode === 'pause') p.pause();
        else p.cut();
        const err = await s.update((d) => d.environments.push({ name: `e-${mode}`, createdAt: 'now' })).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StoreUnavailableError);
        expect(s.data.revision).toBe(1);
        if (mode === 'pause') p.resume();
        else p.restore();
      }
      // Nothing written meanwhile, even by the write that was abandoned while paused.
      await new Promise((r) => setTimeout(r, 300));
      const head = await sql.unsafe(`select revision from "${schema}".head`);
      expect(Number(head[0]!.revision)).toBe(1);
      const ok = await s.update((d) => d.environments.push({ name: 'later', createdAt: 'now' }));
      expect(ok.data.revision).toBe(2);
    } finally {
      await p.close();
    }
  });
});
