/**
 * Cluster store, issue 6 scenarios 7 and 9: a revision that one node cannot compile, and a store
 * restored from an older backup (a new epoch from `ipgate import` into an emptied schema, and a
 * lower revision from a pg_dump restore).
 *
 * The compile failure is injected from outside the product: node-b reads PostgreSQL through a
 * TCP proxy that corrupts one IP entry on the wire ("127.0.0.8/29" becomes "127.0.0.9/29", which
 * has host bits set), as a faulty network path or replica would. node-a writes and compiles the
 * good entry; node-b receives the bad one, fails to compile it, keeps its last good snapshot and
 * reports the failure.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.js';
import { eventually } from '../helpers/node-process.js';
import { PG_URL, postgresGate } from '../helpers/pg.js';

const hasPostgres = await postgresGate('cluster-failures.test.ts');

const NAMES = ['node-a', 'node-b', 'node-c'] as const;
const dir = mkdtempSync(join(tmpdir(), 'ipgate-restore-'));

describe.runIf(hasPostgres)('cluster store: failures and restores', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({
      schemaPrefix: 'ipgate_fail',
      nodes: [
        { name: 'node-a', environment: 'production' },
        { name: 'node-b', environment: 'production', proxied: true },
        { name: 'node-c', environment: 'staging' },
      ],
      store: { statusWaitMs: 3_000, pollIntervalMs: 1_000 },
    });
  }, 60_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('7. a compile failure on one node: FAILED with its message, the previous revision still enforced there', async () => {
    cluster.proxy('node-b').rewrite('127.0.0.8/29', '127.0.0.9/29');
    const r = await cluster.addClient('node-a', '127.0.0.8/29');
    expect(r.status).toBe(200);
    const { revision } = await cluster.headRevision();
    const results = r.body.deploymentResult.deploymentResults as { environmentName: string; success: boolean; message: string }[];
    expect(r.body.deploymentResult.success).toBe(false);
    const prod = results.find((x) => x.environmentName === 'production')!;
    expect(prod.success).toBe(false);
    expect(prod.message).toContain(`revision ${revision} FAILED on node-b: compile failed`);
    expect(prod.message).toContain('127.0.0.9/29: host bits set');
    expect(prod.message).toContain('enforced on node-a');
    expect(results.find((x) => x.environmentName === 'staging')!.success).toBe(true);

    // node-b keeps enforcing the previous revision: 127.0.0.9 (inside 127.0.0.8/29) is still rejected there.
    expect(await cluster.status('node-a', '127.0.0.9')).toBe(200);
    expect(await cluster.status('node-c', '127.0.0.9')).toBe(200);
    expect(await cluster.status('node-b', '127.0.0.9')).toBe(403);
    expect(await cluster.status('node-b', '127.0.0.1')).toBe(200);
    const b = (await cluster.nodeList('node-a')).find((n) => n.nodeId === 'node-b')!;
    expect(b).toMatchObject({ revision: revision - 1, failedRevision: revision, state: 'live' });
    expect(b.failedError).toContain('host bits set');

    // With the path healed, the next revision reaches node-b whole (it rereads everything after a failure).
    cluster.proxy('node-b').clearRewrite();
    const next = await cluster.addClient('node-a', '127.0.0.20');
    expect(next.status).toBe(200);
    expect(next.body.deploymentResult.success).toBe(true);
    await cluster.until('node-b', '127.0.0.9');
    await cluster.until('node-b', '127.0.0.20');
    await cluster.node('node-b').waitForLog((l) => l.event === 'store_full_reload' && l.reason === 'after a failed apply' && l.msg === 'reloaded everything after a failed apply');
    const healed = (await cluster.nodeList('node-a')).find((n) => n.nodeId === 'node-b')!;
    expect(healed.failedRevision).toBeNull();
  }, 60_000);

  const cli = (args: string[], config: string) => spawnSync(process.execPath, ['dist/cli.js', ...args, '--config', config], { encoding: 'utf8' });

  it('9a. store restored from an older export into an emptied schema: a new epoch, every node reloads everything', async () => {
    const exportFile = join(dir, 'old.yaml');
    const ex = cli(['export', '--out', exportFile], cluster.node('node-a').configFile);
    expect(ex.status, ex.stderr).toBe(0);
    expect(readFileSync(exportFile, 'utf8')).toContain('127.0.0.20');
    const old = await cluster.headRevision();

    expect((await cluster.addClient('node-a', '127.9.0.1')).status).toBe(200);
    for (const n of NAMES) await cluster.until(n, '127.9.0.1');

    await cluster.sql.unsafe(`drop schema "${cluster.schema}" cascade`);
    const im = cli(['import', '--file', exportFile], cluster.node('node-a').configFile);
    expect(im.status, im.stderr).toBe(0);
    const restored = await cluster.headRevision();
    expect(restored.epoch).not.toBe(old.epoch);

    for (const n of NAMES) {
      await cluster.node(n).waitForLog((l) => l.event === 'store_full_reload' && (l.reason as string) === 'epoch changed');
      await cluster.until(n, '127.9.0.1', false);
      expect(await cluster.status(n, '127.0.0.20')).toBe(200);
    }
    await cluster.converged(restored.revision);
  }, 60_000);

  it('9b. store restored from a pg_dump taken earlier: the revision goes back, every node reloads everything', async () => {
    const dumpFile = join(dir, 'dump.sql');
    const u = new URL(PG_URL);
    const conn = ['-h', u.hostname, '-p', u.port || '5432', '-U', decodeURIComponent(u.username || 'postgres'), '-d', u.pathname.slice(1)];
    const dump = spawnSync('pg_dump', [...conn, '-n', cluster.schema, '-f', dumpFile], { encoding: 'utf8' });
    expect(dump.status, dump.stderr).toBe(0);
    const before = await cluster.headRevision();

    expect((await cluster.addClient('node-a', '127.9.0.2')).status).toBe(200);
    for (const n of NAMES) await cluster.until(n, '127.9.0.2');

    await cluster.sql.unsafe(`drop schema "${cluster.schema}" cascade`);
    // In one transaction, as a restore must be: nodes must never read a half-restored store.
    const restore = spawnSync('psql', [...conn, '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-q', '-f', dumpFile], { encoding: 'utf8' });
    expect(restore.status, restore.stderr).toBe(0);
    expect(await cluster.headRevision()).toEqual(before);

    // No notification announces a restore: the heartbeat's head check (or the poll) finds it.
    for (const n of NAMES) {
      await cluster.node(n).waitForLog((l) => l.event === 'store_full_reload' && (l.reason as string) === 'revision went back');
      await cluster.until(n, '127.9.0.2', false);
    }
    await eventually('every node back on the restored revision', async () => ((await cluster.converged(before.revision)) ? true : undefined));
  }, 60_000);
});
