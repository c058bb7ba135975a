/**
 * The cluster store keeps bounded history: `revisions` and `change_log` hold only the newest
 * store.postgres.historyRevisions revisions (pg-store.ts #trimHistory). A node holding a revision
 * whose row was trimmed reloads everything, on a sync and on a write of its own, and ends with
 * the database's state.
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import type { Logger } from '../../src/observability/logger.js';
import { pgSettings } from '../../src/controlplane/store/pg/open-store.js';
import { DEFAULT_HISTORY_REVISIONS, TRIM_BATCH_ROWS, type PgStore } from '../../src/controlplane/store/pg/pg-store.js';
import type { StoreData } from '../../src/controlplane/store/state.js';
import { PG_URL, pgStores, postgresGate } from '../helpers/pg.js';
import { seededStore } from '../helpers/store-seed.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const hasPostgres = await postgresGate('cluster-retention.test.ts');

const PG = 'store: { postgres: { url: "postgres://h/db"';

describe('store.postgres.historyRevisions', () => {
  it('defaults to 10,000, and reaches the store options as configured', () => {
    const c = parseConfigText(`${PG} } }`, 't.yaml');
    expect(c.store.postgres!.historyRevisions).toBe(10_000);
    expect(DEFAULT_HISTORY_REVISIONS).toBe(10_000);
    expect(pgSettings(parseConfigText(`${PG}, historyRevisions: 250 } }`, 't.yaml'))!.historyRevisions).toBe(250);
    expect(parseConfigText(`${PG}, historyRevisions: 100 } }`, 't.yaml').store.postgres!.historyRevisions).toBe(100);
  });

  it('names the key of a value out of bounds or not an integer', () => {
    for (const bad of ['5', '99', '100000001', '150.5', '"many"']) {
      expect(() => parseConfigText(`${PG}, historyRevisions: ${bad} } }`, 't.yaml'), bad).toThrow(/store\.postgres\.historyRevisions: /);
    }
  });
});

describe.runIf(hasPostgres)('bounded history in PostgreSQL', () => {
  const seed = (revision = 1): StoreData => ({ ...seededStore(), revision });
  const { sql, fresh, open } = pgStores('ipgate_keep', { writeTimeoutMs: 3000, historyRevisions: 100, seed: () => seed() });

  /** One small write: the proxy's description, so each revision changes one row. */
  const describeAs = (s: PgStore, text: string) =>
    s.update((d) => {
      d.projects[0]!.proxies[0]!.draft.description = text;
    });
  const revisionsOf = async (schema: string) =>
    (await sql.unsafe(`select revision, write_id::text as write_id from "${schema}".revisions order by revision`)).map((r) => ({ revision: Number(r.revision), writeId: String(r.write_id) }));
  const changeLogOf = async (schema: string) =>
    (await sql.unsafe(`select revision, seq, kind, key, op, version from "${schema}".change_log order by revision, seq`)).map((r) => ({
      revision: Number(r.revision),
      seq: Number(r.seq),
      kind: String(r.kind),
      key: String(r.key),
      op: String(r.op),
      version: r.version === null ? null : Number(r.version),
    }));
  const range = (lo: number, hi: number): number[] => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

  it('keeps only the newest historyRevisions revisions in revisions and change_log, the kept rows intact', async () => {
    const schema = fresh();
    const s = await open(schema);
    // Revision 1 is the seed; writes 2..101 trim nothing yet except revision 1 at 101.
    for (let i = 2; i <= 101; i++) await describeAs(s, `v${i}`);
    expect(s.data.revision).toBe(101);
    const revBefore = await revisionsOf(schema);
    const logBefore = await changeLogOf(schema);
    expect(revBefore.map((r) => r.revision)).toEqual(range(2, 101));
    // 30 more writes: head 131, so only revisions 32..131 (> 131 - 100) stay.
    for (let i = 102; i <= 131; i++) await describeAs(s, `v${i}`);
    const head = s.data.revision;
    expect(head).toBe(131);
    const rev = await revisionsOf(schema);
    const log = await changeLogOf(schema);
    expect(rev.map((r) => r.revision)).toEqual(range(32, 131));
    expect([...new Set(log.map((r) => r.revision))]).toEqual(range(32, 131));
    // What was written before the trim and is still in the window is untouched, row for row.
    expect(rev.filter((r) => r.revision <= 101)).toEqual(revBefore.filter((r) => r.revision >= 32));
    expect(log.filter((r) => r.revision <= 101)).toEqual(logBefore.filter((r) => r.revision >= 32));
    // The newest revisions: one change-log row each (the proxy), and the head's write id.
    for (const r of range(102, 131)) expect(log.filter((l) => l.revision === r).map((l) => [l.seq, l.kind, l.op])).toEqual([[0, 'proxy', 'update']]);
    const [h] = await sql.unsafe(`select revision, write_id::text as write_id from "${schema}".head`);
    expect(rev.at(-1)).toEqual({ revision: Number(h!.revision), writeId: String(h!.write_id) });
    // The store reads back the same state (a fresh node: a full read).
    const other = await open(schema);
    expect(JSON.stringify(other.data)).toBe(JSON.stringify(s.data));
    expect(other.data.projects[0]!.proxies[0]!.draft.description).toBe('v131');
  });

  it('a node whose revision was trimmed does one full read, on a sync and on its own write, and ends with the writer state', async () => {
    const schema = fresh();
    const writer = await open(schema);
    const u = new URL(PG_URL);
    const p = await TcpProxy.start(u.hostname, Number(u.port || 5432));
    try {
      u.hostname = '127.0.0.1';
      u.port = String(p.port);
      const logs: Record<string, unknown>[] = [];
      const push = (o: unknown): void => void logs.push(o as Record<string, unknown>);
      const log = { info: push, warn: push, error: push, debug: () => undefined } as unknown as Logger;
      // A gateway node (LISTEN, syncs) behind a proxy, and a CLI-like store: both hold revision 1.
      const node = await open(schema, { url: u.toString(), role: 'node', log });
      const tool = await open(schema);
      await node.settled();
      expect(node.data.revision).toBe(1);
      const heldWriteId = (await revisionsOf(schema))[0]!;
      expect(heldWriteId.revision).toBe(1);
      // The node is cut off (paused) while the writer makes 110 revisions.
      p.pause();
      for (let i = 2; i <= 111; i++) await describeAs(writer, `v${i}`);
      expect(writer.data.revision).toBe(111);
      // Revision 1's row is gone: neither can trust an incremental read any more.
      expect((await revisionsOf(schema))[0]!.revision).toBe(12);
      p.resume();
      const until = Date.now() + 10_000;
      while (node.data.revision !== 111 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      await node.settled();
      expect(node.data.revision).toBe(111);
      expect(JSON.stringify(node.data)).toBe(JSON.stringify(writer.data));
      expect(logs).toContainEqual(
        expect.objectContaining({ event: 'store_full_reload', reason: 'behind the kept history (store.postgres.historyRevisions)', from: expect.objectContaining({ revision: 1 }) }),
      );
      expect(logs.filter((l) => l.event === 'store_synced' && l.full === true && l.from === 1)).toHaveLength(1);
      // The other store writes on top of the newest state (read in full under the lock), losing nothing.
      const out = await tool.update((d) => {
        d.environments.push({ name: 'staging', createdAt: 'now' });
      });
      expect(out.data.revision).toBe(112);
      expect(out.data.projects[0]!.proxies[0]!.draft.description).toBe('v111');
      const truth = await open(schema);
      expect(JSON.stringify(truth.data)).toBe(JSON.stringify(tool.data));
      expect(truth.data.environments.map((e) => e.name)).toEqual(['production', 'staging']);
    } finally {
      await p.close();
    }
  });

  it(`a backlog of old history (a store from before trimming) drains oldest first, at most ${TRIM_BATCH_ROWS} rows of each table per write`, async () => {
    const schema = fresh();
    // A store at revision 30,000 whose tables still hold revisions 1..29,999, as an older ipgate
    // left them, with three change-log rows per revision (as an import writes many).
    const head = 30_000;
    const s = await open(schema, { seed: () => seed(head) });
    await sql.unsafe(`insert into "${schema}".revisions (revision, write_id) select g, gen_random_uuid() from generate_series(1, ${head - 1}) g`);
    await sql.unsafe(
      `insert into "${schema}".change_log (revision, seq, kind, key, op, version) select g, k, 'environment', 'production', 'update', 1 from generate_series(1, ${head - 1}) g, generate_series(0, 2) k`,
    );
    const tables = [
      { name: 'revisions', key: 'revision' },
      { name: 'change_log', key: '(revision, seq)' },
    ];
    for (let w = 1; w <= 6; w++) {
      const cutoff = head + w - 100; // the write's revision minus historyRevisions
      const before = [];
      for (const t of tables) {
        const [c] = await sql.unsafe(`select count(*)::int as n, count(*) filter (where revision <= $1)::int as old from "${schema}".${t.name}`, [cutoff]);
        const due = Math.min(TRIM_BATCH_ROWS, c!.old);
        // The newest row the write must delete (rows are deleted oldest first).
        const cols = t.name === 'revisions' ? 'revision, 0 as seq' : 'revision, seq';
        const [last] = due === 0 ? [] : await sql.unsafe(`select ${cols} from "${schema}".${t.name} where revision <= $1 order by ${t.key} limit 1 offset ${due - 1}`, [cutoff]);
        before.push({ n: c!.n, due, last });
      }
      await describeAs(s, `w${w}`);
      for (const [i, t] of tables.entries()) {
        const b = before[i]!;
        const [c] = await sql.unsafe(`select count(*)::int as n from "${schema}".${t.name}`);
        // Each write adds one row to each table (its revision, and one changed resource).
        expect(c!.n, `${t.name} after write ${w}`).toBe(b.n - b.due + 1);
        if (b.last !== undefined) {
          const cond = t.name === 'revisions' ? 'revision <= $1' : '(revision, seq) <= ($1, $2)';
          const [left] = await sql.unsafe(`select count(*)::int as n from "${schema}".${t.name} where ${cond}`, t.name === 'revisions' ? [b.last.revision] : [b.last.revision, b.last.seq]);
          expect(left!.n, `${t.name}: nothing older than the newest deleted row is left`).toBe(0);
        }
      }
    }
    expect(s.data.revision).toBe(head + 6);
    // Drained by now: exactly the newest 100 revisions are left in both tables.
    const [n] = await sql.unsafe(`select (select count(*) from "${schema}".revisions)::int as r, (select count(distinct revision) from "${schema}".change_log)::int as c, (select min(revision) from "${schema}".revisions)::int as lo`);
    expect([n!.r, n!.c, n!.lo]).toEqual([100, 100, head + 6 - 99]);
  });

  it('refuses a historyRevisions below 2 (a write would delete the row the next write reads)', async () => {
    await expect(open(fresh(), { historyRevisions: 1 })).rejects.toThrow(/historyRevisions must be an integer of at least 2/);
  });
});
