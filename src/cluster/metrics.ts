/**
 * /metrics of a node with workers: one exposition for the whole node, summed across its processes.
 *
 * Each worker counts only the traffic it served, in its own registry. A scrape asks every live
 * worker for its registry (pool.collect) and merges them with prom-client's
 * AggregatorRegistry.aggregate, together with the primary's own process metrics and its worker
 * gauges. prom-client's clusterMetrics() is not used: it fails the whole scrape when one worker
 * does not answer within 5 s (one busy compiling a large policy, or one just killed), and it
 * cannot merge the primary's own registry.
 *
 * The primary serves no traffic, so its `ipgate_*` data-plane series (always zero) are left out.
 * A worker's counters go with it when it dies: the node's sums then drop, which Prometheus's
 * rate() and increase() read as a counter reset.
 */
import { AggregatorRegistry, Registry, type Aggregator } from 'prom-client';

type MetricJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];

/**
 * Series for which a sum across workers means nothing. The revision in force on the node is the
 * lowest among its workers (the one every worker enforces); entries per policy are the same on
 * every worker that enforces the same revision, so the largest is taken rather than a multiple.
 */
const AGGREGATORS: Readonly<Record<string, Aggregator>> = {
  ipgate_snapshot_revision: 'min',
  ipgate_policy_entries: 'max',
};

/**
 * The primary's own series: Node's default process metrics, its worker gauges, the store's gauges,
 * and (with the control plane in a thread) that thread's heap.
 */
function isPrimaryOwn(name: string): boolean {
  return (
    name.startsWith('process_') ||
    name.startsWith('nodejs_') ||
    name.startsWith('ipgate_worker') ||
    name.startsWith('ipgate_store_') ||
    name.startsWith('ipgate_control_plane_')
  );
}

/**
 * A histogram's values may carry their own labels apart, in `sharedLabels` (prom-client's
 * exposition format does; ipgate's BoundHistogram.get() returns them that way). The aggregator
 * groups by `labels` only, so without this two proxies' buckets would be summed into one series.
 */
function splay(m: MetricJson): MetricJson {
  const values = m.values.map((v) => {
    const shared = (v as { sharedLabels?: Record<string, string> }).sharedLabels;
    if (shared === undefined || Object.keys(shared).length === 0) return v;
    const { sharedLabels: _omit, ...rest } = v as typeof v & { sharedLabels?: unknown };
    return { ...rest, labels: { ...v.labels, ...shared } };
  });
  const aggregator = AGGREGATORS[m.name] ?? m.aggregator;
  return { ...m, aggregator, values };
}

/**
 * The node-wide registry served at /metrics: metrics() and getMetricsAsJSON() answer for every
 * process. (Registry's other members see nothing: this registry holds no metrics of its own.)
 */
export class ClusterRegistry extends Registry {
  constructor(
    /** The primary's registries; only their process metrics and worker gauges are merged in. */
    private readonly own: readonly Registry[],
    /** Every live worker's getMetricsAsJSON(). */
    private readonly workers: () => Promise<unknown[][]>,
  ) {
    super();
  }

  private async aggregated(): Promise<Registry> {
    const [workers, own] = await Promise.all([this.workers(), Promise.all(this.own.map((r) => r.getMetricsAsJSON()))]);
    const sets: MetricJson[][] = [];
    for (const list of own) sets.push(list.filter((m) => isPrimaryOwn(m.name)).map(splay));
    for (const list of workers) sets.push((list as MetricJson[]).map(splay));
    return AggregatorRegistry.aggregate(sets);
  }

  override async metrics(): Promise<string> {
    return (await this.aggregated()).metrics();
  }

  override async getMetricsAsJSON(): Promise<MetricJson[]> {
    return (await this.aggregated()).getMetricsAsJSON();
  }
}
