/**
 * A three-node ipgate cluster for the cluster tests: node-a and node-b in production, node-c in
 * staging, real processes sharing one PostgreSQL schema (created by the nodes' own migrations,
 * dropped by close()). Any node can be put behind its own pausable TCP proxy to PostgreSQL.
 *
 * The seeded policy: API proxy p/api (deployed to production and staging) allows only the
 * addresses of IP group "clients". Tests add an address to the group through one node's admin API
 * and watch, with real traffic from that address (a client socket bound to it), when each node
 * lets it through.
 */
import type { Sql } from 'postgres';
import { send, startUpstream, type Upstream } from './harness.js';
import { admin, eventually, startNode, type AdminReply, type NodeProcess } from './node-process.js';
import { adminSql, dropSchema, PG_URL, uniqueSchema } from './pg.js';
import { TcpProxy } from './tcp-proxy.js';

export const GROUP_IPS = '/apiops/projects/p/ipGroups/clients/ips/';

export interface NodeSpec {
  readonly name: 'node-a' | 'node-b' | 'node-c';
  readonly environment: 'production' | 'staging';
  /** Reach PostgreSQL through a TcpProxy the test controls. */
  readonly proxied?: boolean;
  /** store.postgres settings of this node only. */
  readonly store?: Record<string, unknown>;
}

export const THREE_NODES: readonly NodeSpec[] = [
  { name: 'node-a', environment: 'production' },
  { name: 'node-b', environment: 'production' },
  { name: 'node-c', environment: 'staging' },
];

export interface ClusterOptions {
  readonly schemaPrefix: string;
  readonly nodes?: readonly NodeSpec[];
  /** store.postgres settings for every node. */
  readonly store?: Record<string, unknown>;
}

export class Cluster {
  readonly nodes = new Map<string, NodeProcess>();
  readonly proxies = new Map<string, TcpProxy>();
  readonly specs = new Map<string, NodeSpec>();

  private constructor(
    readonly schema: string,
    readonly sql: Sql,
    readonly upstream: Upstream,
    private readonly storeSettings: Record<string, unknown>,
  ) {}

  static async start(opts: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(uniqueSchema(opts.schemaPrefix), adminSql(), await startUpstream(), {
      // A node is unreachable after three missed heartbeats: 3 s, long enough for a busy CI machine.
      heartbeatMs: 1_000,
      pollIntervalMs: 15_000,
      statusWaitMs: 5_000,
      writeTimeoutMs: 10_000,
      connectTimeoutMs: 1_000,
      ...opts.store,
    });
    try {
      for (const spec of opts.nodes ?? THREE_NODES) {
        c.specs.set(spec.name, spec);
        if (spec.proxied === true) {
          const u = new URL(PG_URL);
          c.proxies.set(spec.name, await TcpProxy.start(u.hostname, Number(u.port || 5432)));
        }
        // One at a time: the first seeds the store, the others find it.
        await c.startNode(spec.name);
      }
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  /** The node's config: its own id and environment, the shared store and the seed projects. */
  config(name: string, store: Record<string, unknown> = {}): Record<string, unknown> {
    const spec = this.specs.get(name)!;
    const u = new URL(PG_URL);
    const proxy = this.proxies.get(name);
    if (proxy !== undefined) {
      u.hostname = '127.0.0.1';
      u.port = String(proxy.port);
    }
    return {
      nodeId: spec.name,
      environment: spec.environment,
      store: { postgres: { url: u.toString(), schema: this.schema, ...this.storeSettings, ...spec.store, ...store } },
      projects: [
        {
          name: 'p',
          ipGroups: [{ name: 'clients', entries: [{ ip: '127.0.0.1' }] }],
          apiProxies: [
            {
              name: 'api',
              basePath: '/api',
              upstream: { url: this.upstream.url },
              environments: ['production', 'staging'],
              policies: [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'allow-clients', ipGroupIdList: ['clients'] } }],
            },
          ],
        },
      ],
    };
  }

  async startNode(name: string, store: Record<string, unknown> = {}): Promise<NodeProcess> {
    const n = await startNode(name, this.config(name, store));
    this.nodes.set(name, n);
    return n;
  }

  node(name: string): NodeProcess {
    const n = this.nodes.get(name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  proxy(name: string): TcpProxy {
    const p = this.proxies.get(name);
    if (p === undefined) throw new Error(`${name} is not behind a proxy`);
    return p;
  }

  /** The status of one request from `ip` through `node`: 200 allowed, 403 denied. */
  async status(name: string, ip: string): Promise<number> {
    return (await send(this.node(name).trafficPort, '/api/ping', { from: ip })).status;
  }

  /** Adds `ip` to the "clients" group through `name`'s admin API. */
  addClient(name: string, ip: string, headers: Record<string, string> = {}): Promise<AdminReply> {
    return admin(this.node(name), 'POST', GROUP_IPS, { entries: [{ ip }] }, headers);
  }

  /** Waits until `name` lets `ip` through (or, with `allowed` false, rejects it). */
  async until(name: string, ip: string, allowed = true, timeoutMs = 15_000): Promise<void> {
    await eventually(`${name} to ${allowed ? 'allow' : 'deny'} ${ip}`, async () => ((await this.status(name, ip)) === (allowed ? 200 : 403) ? true : undefined), timeoutMs);
  }

  /** GET /apiops/nodes/ through `via`. */
  async nodeList(via: string): Promise<{ nodeId: string; environment: string; revision: number; snapshotHash: string; state: string; failedRevision: number | null; failedError: string | null }[]> {
    const r = await admin(this.node(via), 'GET', '/apiops/nodes/');
    if (r.status !== 200) throw new Error(`GET /apiops/nodes/ answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body.resultList;
  }

  async headRevision(): Promise<{ revision: number; epoch: string }> {
    const [h] = await this.sql.unsafe(`select revision, epoch::text as epoch from "${this.schema}".head`);
    return { revision: Number(h!.revision), epoch: String(h!.epoch) };
  }

  /** Waits until every running node reports `revision` in /apiops/nodes/, and returns that list. */
  async converged(revision: number, via = 'node-a', timeoutMs = 20_000): Promise<Awaited<ReturnType<Cluster['nodeList']>>> {
    return eventually(
      `every node to report revision ${revision}`,
      async () => {
        const list = await this.nodeList(via);
        const running = [...this.nodes.keys()].filter((n) => this.node(n).child.exitCode === null && this.node(n).child.signalCode === null);
        return running.every((n) => list.some((x) => x.nodeId === n && x.revision === revision && x.state === 'live')) ? list : undefined;
      },
      timeoutMs,
      50,
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.nodes.values()].map((n) => n.stop('SIGTERM').catch(() => undefined)));
    for (const p of this.proxies.values()) await p.close().catch(() => undefined);
    await dropSchema(this.sql, this.schema).catch(() => undefined);
    await this.sql.end({ timeout: 2 }).catch(() => undefined);
    await this.upstream.close();
  }
}
