/**
 * Upstream connection pools: one undici Pool per upstream origin (and connect timeout), kept
 * across snapshot swaps so a reload never drops warm keep-alive connections. Pools an installed
 * snapshot no longer uses are closed gracefully: close() lets their in-flight requests finish.
 */
import { Pool } from 'undici';
import type { CompiledUpstream, Snapshot } from '../policy/snapshot.js';

export interface PoolOptions {
  /** Max connections per upstream origin. */
  readonly connections: number;
  readonly keepAliveTimeoutMs: number;
}

function keyOf(u: CompiledUpstream): string {
  return `${u.origin}|${u.connectTimeoutMs}`;
}

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();

  constructor(private readonly opts: PoolOptions) {}

  /** Pools for every proxy of `snapshot`, indexed like snapshot.proxies. Built once per install. */
  bind(snapshot: Snapshot): Pool[] {
    const used = new Set<string>();
    const out: Pool[] = [];
    for (const proxy of snapshot.proxies) {
      const key = keyOf(proxy.upstream);
      used.add(key);
      let pool = this.pools.get(key);
      if (pool === undefined) {
        pool = new Pool(proxy.upstream.origin, {
          connections: this.opts.connections,
          keepAliveTimeout: this.opts.keepAliveTimeoutMs,
          connect: { timeout: proxy.upstream.connectTimeoutMs },
        });
        this.pools.set(key, pool);
      }
      out[proxy.index] = pool;
    }
    for (const [key, pool] of this.pools) {
      if (!used.has(key)) {
        this.pools.delete(key);
        void pool.close().catch(() => undefined);
      }
    }
    return out;
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.close().catch(() => undefined)));
  }
}
