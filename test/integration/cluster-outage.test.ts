/**
 * Cluster store, issue 6 scenarios 3, 8 and 4: a node cut off from PostgreSQL while writes go on,
 * the database paused and then down for the whole cluster, and a node killed with SIGKILL. Every
 * node reaches PostgreSQL through its own pausable TCP proxy, so nothing here disturbs the
 * database itself or other test files.
 */
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../helpers/cluster.js';
import { send } from '../helpers/harness.js';
import { admin, eventually } from '../helpers/node-process.js';
import { postgresGate } from '../helpers/pg.js';

const hasPostgres = await postgresGate('cluster-outage.test.ts');

const NAMES = ['node-a', 'node-b', 'node-c'] as const;
const cacheFile = join(mkdtempSync(join(tmpdir(), 'ipgate-cache-')), 'node-c.snapshot');

describe.runIf(hasPostgres)('cluster store: outages', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({
      schemaPrefix: 'ipgate_outage',
      nodes: [
        { name: 'node-a', environment: 'production', proxied: true },
        { name: 'node-b', environment: 'production', proxied: true },
        { name: 'node-c', environment: 'staging', proxied: true, store: { snapshotCache: cacheFile } },
      ],
      store: { statusWaitMs: 1_000, writeTimeoutMs: 2_000 },
    });
  }, 60_000);
  afterAll(async () => {
    await cluster?.close();
  });

  const ready = async (name: string): Promise<number> => (await send(cluster.node(name).adminPort, '/readyz')).status;
  const metric = async (name: string, metricName: string): Promise<number> => {
    const text = (await send(cluster.node(name).adminPort, '/metrics')).text;
    const m = new RegExp(`^${metricName} (\\S+)$`, 'm').exec(text);
    if (m === null) throw new Error(`${metricName} not in /metrics of ${name}`);
    return Number(m[1]);
  };
  const hashOf = async (name: string): Promise<string> => (await cluster.nodeList('node-a')).find((n) => n.nodeId === name)!.snapshotHash;

  it('3. writes while node-b is cut off: it keeps enforcing, then converges to the same snapshot hash', async () => {
    cluster.proxy('node-b').pause();
    const ips = Array.from({ length: 5 }, (_, i) => `127.5.0.${i + 1}`);
    for (const ip of ips) {
      const r = await cluster.addClient('node-a', ip);
      expect(r.status).toBe(200);
      const prod = r.body.deploymentResult.deploymentResults.find((x: { environmentName: string }) => x.environmentName === 'production');
      // node-b cannot report, and the result says so: PENDING while it is still live, or, once it
      // missed three heartbeats, unreachable (success then means every live node applied it).
      if (prod.success) expect(prod.message).toMatch(/enforced on node-a; unreachable .*node-b/);
      else expect(prod.message).toMatch(/PENDING on node-b/);
    }
    // Cut off, node-b still enforces what it had: the new addresses are rejected, old ones pass.
    for (const ip of ips) expect(await cluster.status('node-b', ip)).toBe(403);
    expect(await cluster.status('node-b', '127.0.0.1')).toBe(200);
    expect(await ready('node-b')).toBe(200);
    // A write through node-b itself cannot reach PostgreSQL: 503, bounded by writeTimeoutMs.
    const w = await cluster.addClient('node-b', '127.5.0.99');
    expect(w.status).toBe(503);
    expect(w.body.error).toBe('SERVICE_UNAVAILABLE');

    cluster.proxy('node-b').resume();
    const { revision } = await cluster.headRevision();
    await cluster.converged(revision);
    // Both enforce the same policies: their reported hashes agree (read in one listing).
    const list = await cluster.nodeList('node-a');
    const hashes = Object.fromEntries(list.filter((n) => n.nodeId === 'node-a' || n.nodeId === 'node-b').map((n) => [n.nodeId, `${n.revision}:${n.snapshotHash}`]));
    expect(hashes['node-b'], JSON.stringify(list)).toBe(hashes['node-a']);
    for (const ip of ips) expect(await cluster.status('node-b', ip)).toBe(200);
    expect(await cluster.status('node-b', '127.5.0.99')).toBe(403);
  }, 90_000);

  it('a LISTEN connection that silently stops delivering is found by its own heartbeat and rebuilt', async () => {
    const app = `ipgate listen node-b ${cluster.schema}`;
    const [before] = await cluster.sql`select pid, client_port from pg_stat_activity where application_name = ${app}`;
    expect(before).toBeDefined();
    const rebuilds = await metric('node-b', 'ipgate_store_listener_rebuilds');
    expect(cluster.proxy('node-b').stall(before!.client_port as number)).toBe(true);
    await cluster.node('node-b').waitForLog((l) => l.event === 'store_listener_dead', 20_000);
    await eventually('a new listener connection', async () => {
      const rows = await cluster.sql`select pid from pg_stat_activity where application_name = ${app} and pid <> ${before!.pid as number}`;
      return rows.length === 1 ? true : undefined;
    });
    expect(await metric('node-b', 'ipgate_store_listener_rebuilds')).toBe(rebuilds + 1);
    const ip = '127.5.1.1';
    expect((await cluster.addClient('node-a', ip)).status).toBe(200);
    await cluster.until('node-b', ip);
    await eventually('listener_up 1', async () => ((await metric('node-b', 'ipgate_store_listener_up')) === 1 ? true : undefined));
    // The stalled connection is gone from the server once node-b dropped it.
    await cluster.sql`select pg_terminate_backend(${before!.pid as number})`;
  }, 60_000);

  it('8. database paused, then down: nodes keep serving and stay ready, writes get 503, all converge after', async () => {
    for (const mode of ['pause', 'cut'] as const) {
      for (const n of NAMES) (mode === 'pause' ? cluster.proxy(n).pause() : cluster.proxy(n).cut());
      const ip = mode === 'pause' ? '127.8.0.1' : '127.8.0.2';
      const w = await cluster.addClient('node-a', ip);
      expect(w.status).toBe(503);
      expect(w.body.error).toBe('SERVICE_UNAVAILABLE');
      for (const n of NAMES) {
        // Last good snapshot: allowed stays allowed, unknown stays rejected (never allow-all, never deny-all).
        expect(await cluster.status(n, '127.0.0.1')).toBe(200);
        expect(await cluster.status(n, ip)).toBe(403);
        expect(await ready(n)).toBe(200);
      }
      // /metrics says the database is away and how stale the snapshot is getting.
      await eventually('database_up 0 in /metrics', async () => ((await metric('node-a', 'ipgate_store_database_up')) === 0 ? true : undefined));
      await eventually('a stale snapshot in /metrics', async () => ((await metric('node-a', 'ipgate_store_snapshot_staleness_seconds')) > 1 ? true : undefined));
      // The admin API still reads from memory; node status needs the database: 503.
      expect((await admin(cluster.node('node-a'), 'GET', '/apiops/projects/p/ipGroups/clients/')).status).toBe(200);
      expect((await admin(cluster.node('node-a'), 'GET', '/apiops/nodes/')).status).toBe(503);

      for (const n of NAMES) (mode === 'pause' ? cluster.proxy(n).resume() : cluster.proxy(n).restore());
      await eventually('node-a writable again', async () => {
        const r = await cluster.addClient('node-a', ip);
        return r.status === 200 ? r : undefined;
      }, 30_000, 200);
      const { revision } = await cluster.headRevision();
      await cluster.converged(revision);
      for (const n of NAMES) await cluster.until(n, ip);
      // The gauge is the outcome of the last call: a pooled connection broken by the outage may
      // still fail once after the database is back, so it is polled, as the 0 above is.
      await eventually('database_up 1 in /metrics', async () => ((await metric('node-a', 'ipgate_store_database_up')) === 1 ? true : undefined));
    }
    expect(await hashOf('node-b')).toBe(await hashOf('node-a'));
  }, 120_000);

  it('4. node-b killed with SIGKILL: named unreachable; restarted, it catches up before it is ready', async () => {
    const b = cluster.node('node-b');
    b.child.kill('SIGKILL');
    await b.exited;
    await eventually('node-b unreachable', async () => ((await cluster.nodeList('node-a')).find((n) => n.nodeId === 'node-b')?.state === 'unreachable' ? true : undefined), 20_000, 100);
    const ip = '127.4.4.4';
    const r = await cluster.addClient('node-a', ip);
    expect(r.status).toBe(200);
    const prod = r.body.deploymentResult.deploymentResults.find((x: { environmentName: string }) => x.environmentName === 'production');
    // Every live production node (node-a) applied it; node-b is named as unreachable.
    expect(prod.success).toBe(true);
    expect(prod.message).toMatch(/enforced on node-a/);
    expect(prod.message).toMatch(/unreachable .*node-b/);

    const restarted = await cluster.startNode('node-b');
    // The first request it serves already sees the write made while it was dead.
    expect(await cluster.status('node-b', ip)).toBe(200);
    expect(await ready('node-b')).toBe(200);
    const installed = restarted.events('snapshot_installed');
    const { revision } = await cluster.headRevision();
    expect(installed[0]!.revision).toBe(revision);
    const list = await cluster.converged(revision);
    expect(list.find((n) => n.nodeId === 'node-b')!.state).toBe('live');
  }, 90_000);

  it('snapshot cache: restarted during an outage, a node with the cache starts from it; one without refuses', async () => {
    const ip = '127.6.0.1';
    expect((await cluster.addClient('node-a', ip)).status).toBe(200);
    await cluster.until('node-c', ip);
    await cluster.node('node-c').stop();
    expect(statSync(cacheFile).mode & 0o777).toBe(0o600);
    cluster.proxy('node-c').cut();
    const c = await cluster.startNode('node-c');
    expect(c.events('store_started_from_cache')).toHaveLength(1);
    // The last good policies, from the cache: what was allowed is, what was not is not.
    expect(await cluster.status('node-c', ip)).toBe(200);
    expect(await cluster.status('node-c', '127.6.0.2')).toBe(403);
    expect(await ready('node-c')).toBe(200);
    expect((await cluster.addClient('node-c', '127.6.0.2')).status).toBe(503);

    // node-b has no cache: with PostgreSQL out of reach it refuses to start rather than start empty.
    await cluster.node('node-b').stop();
    cluster.proxy('node-b').cut();
    await expect(cluster.startNode('node-b')).rejects.toThrow(/cannot reach PostgreSQL/);

    // Back online: node-c catches up with what happened meanwhile; node-b starts again.
    expect((await cluster.addClient('node-a', '127.6.0.3')).status).toBe(200);
    cluster.proxy('node-c').restore();
    cluster.proxy('node-b').restore();
    await cluster.until('node-c', '127.6.0.3');
    await cluster.startNode('node-b');
    const { revision } = await cluster.headRevision();
    await cluster.converged(revision);
    expect(await cluster.status('node-b', '127.6.0.3')).toBe(200);
  }, 90_000);
});
