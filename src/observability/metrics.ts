/**
 * Prometheus metrics. One registry per gateway instance (no module-level singletons), created in
 * the composition root and served at /metrics on the admin listener. Label values are always
 * bounded (names from config, fixed enums); client IPs and paths never become labels.
 *
 * The per-request metrics (requests, policy decisions, request and upstream durations) are bound
 * cells (bound-metrics.ts) so a request never hashes a label set; the rest are prom-client's own.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Snapshot } from '../policy/snapshot.js';
import { BoundCounter, BoundHistogram } from './bound-metrics.js';

/** Seconds; from sub-millisecond forwarding to the 30 s default upstream timeouts. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds; a 1,000,000-entry compile takes seconds. */
const RELOAD_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class Metrics {
  readonly registry = new Registry();
  readonly requests: BoundCounter<'proxy' | 'decision' | 'status_class'>;
  readonly policyDecisions: BoundCounter<'project' | 'proxy' | 'policy' | 'result'>;
  readonly requestDuration: BoundHistogram<'proxy'>;
  readonly upstreamDuration: BoundHistogram<'proxy'>;
  readonly upstreamErrors: Counter<'proxy' | 'kind'>;
  readonly openConnections: Gauge;
  readonly reloads: Counter;
  readonly reloadFailures: Counter;
  readonly reloadDuration: Histogram;
  readonly revision: Gauge;
  readonly policyEntries: Gauge<'project' | 'proxy' | 'policy'>;

  constructor(opts: { processMetrics: boolean }) {
    const registers = [this.registry];
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
    this.requests = new BoundCounter(
      'ipgate_requests_total',
      'Requests by API proxy, decision (allowed, denied, dry_run_denied, error) and status class',
      ['proxy', 'decision', 'status_class'],
      this.registry,
    );
    this.policyDecisions = new BoundCounter(
      'ipgate_policy_decisions_total',
      'Policy evaluations by project, proxy, policy and result (pass, reject, dry_run_reject, unresolved)',
      ['project', 'proxy', 'policy', 'result'],
      this.registry,
    );
    this.requestDuration = new BoundHistogram('ipgate_request_duration_seconds', 'Time from request start to response end', ['proxy'], LATENCY_BUCKETS, this.registry);
    this.upstreamDuration = new BoundHistogram(
      'ipgate_upstream_duration_seconds',
      'Time from sending the upstream request until its response headers arrive, or until it fails',
      ['proxy'],
      LATENCY_BUCKETS,
      this.registry,
    );
    this.upstreamErrors = new Counter({ name: 'ipgate_upstream_errors_total', help: 'Upstream failures by kind (connect, reset, timeout)', labelNames: ['proxy', 'kind'], registers });
    this.openConnections = new Gauge({ name: 'ipgate_open_connections', help: 'Open client connections on the traffic listener', registers });
    this.reloads = new Counter({ name: 'ipgate_reloads_total', help: 'Policy snapshots installed, the first one at startup included', registers });
    this.reloadFailures = new Counter({ name: 'ipgate_reload_failures_total', help: 'Reloads whose compile failed; the last good snapshot stayed in force', registers });
    this.reloadDuration = new Histogram({ name: 'ipgate_reload_duration_seconds', help: 'Compile plus install time of each installed snapshot', buckets: RELOAD_BUCKETS, registers });
    this.revision = new Gauge({ name: 'ipgate_snapshot_revision', help: 'Policy revision of the snapshot in force (0 before the first)', registers });
    this.policyEntries = new Gauge({ name: 'ipgate_policy_entries', help: 'Entries compiled per active policy in the snapshot in force', labelNames: ['project', 'proxy', 'policy'], registers });
  }

  /** A snapshot went into force after `seconds` of compile and install. */
  snapshotInstalled(snapshot: Snapshot, seconds: number): void {
    this.reloads.inc();
    this.reloadDuration.observe(seconds);
    this.revision.set(snapshot.revision);
    // Only the policies in force: a removed policy's series goes away with it.
    this.policyEntries.reset();
    for (const proxy of snapshot.proxies) {
      for (const pipe of [proxy.request, proxy.response, proxy.error]) {
        if (pipe === null) continue;
        for (const p of [...pipe.proxyWide, ...pipe.endpoint]) {
          this.policyEntries.set({ project: p.projectName, proxy: p.proxyName, policy: p.name }, p.entryText.length);
        }
      }
    }
  }

  /** A reload's compile failed; the running snapshot stays. */
  reloadFailed(): void {
    this.reloadFailures.inc();
  }
}
