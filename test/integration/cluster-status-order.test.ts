/**
 * Node status rows are ordered per process: a status write that a cut-off connection delivers late,
 * after a newer one from the same node process, changes nothing (it used to roll a converged node
 * back to the revision it enforced while cut off). A report from another process always applies.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../../src/controlplane/store/pg/migrations.js';
import { readNodes, writeStatus, type StatusRecord } from '../../src/controlplane/store/pg/node-status.js';
import { adminSql, dropSchema, postgresGate, uniqueSchema } from '../helpers/pg.js';

const hasPostgres = await postgresGate('cluster-status-order.test.ts');

describe.runIf(hasPostgres)('node status reports', () => {
  const sql = adminSql();
  const schema = uniqueSchema('ipgate_status');
  const s = `"${schema}"`;
  afterAll(async () => {
    await dropSchema(sql, schema);
    await sql.end();
  });

  const record = (proc: string, seq: number, revision: number): StatusRecord => ({
    nodeId: 'node-b',
    epoch: '00000000-0000-4000-8000-000000000001',
    heartbeatMs: 2000,
    report: { environment: 'production', revision, snapshotHash: `hash-${revision}` },
    proc,
    seq,
  });
  const row = async () => (await readNodes(sql, s)).find((n) => n.nodeId === 'node-b')!;

  it('keeps the newer report of a process when an older one arrives late, and takes any report of a new process', async () => {
    await migrate(sql, schema);
    const proc = randomUUID();
    await writeStatus(sql, s, record(proc, 1, 1));
    await writeStatus(sql, s, record(proc, 3, 6));
    // Report 2 (revision 1), made before report 3 but delivered after it.
    await writeStatus(sql, s, record(proc, 2, 1));
    expect(await row()).toMatchObject({ revision: 6, snapshotHash: 'hash-6' });
    // The node restarted: its new process numbers from 1 again, and is believed.
    await writeStatus(sql, s, record(randomUUID(), 1, 5));
    expect(await row()).toMatchObject({ revision: 5, snapshotHash: 'hash-5' });
  });
});
