/**
 * Prometheus metrics. One registry per gateway instance (no module-level singletons), created in
 * the composition root. Label values are always bounded (names from config, fixed enums); client
 * IPs and paths never become labels.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'proxy' | 'decision' | 'status_class'>;
  readonly policyDecisions: Counter<'project' | 'proxy' | 'policy' | 'result'>;
  readonly requestDuration: Histogram<'proxy'>;
  readonly upstreamErrors: Counter<'proxy' | 'kind'>;

  constructor(opts: { processMetrics: boolean }) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'ipgate_requests_total',
      help: 'Requests by API proxy, decision (allowed, denied, dry_run_denied, error) and status class',
      labelNames: ['proxy', 'decision', 'status_class'],
      registers: [this.registry],
    });
    this.policyDecisions = new Counter({
      name: 'ipgate_policy_decisions_total',
      help: 'Policy evaluations by project, proxy, policy and result (pass, reject, dry_run_reject, unresolved)',
      labelNames: ['project', 'proxy', 'policy', 'result'],
      registers: [this.registry],
    });
    this.requestDuration = new Histogram({
      name: 'ipgate_request_duration_seconds',
      help: 'Time from request start to response end',
      labelNames: ['proxy'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    this.upstreamErrors = new Counter({
      name: 'ipgate_upstream_errors_total',
      help: 'Upstream failures by kind (connect, reset, timeout)',
      labelNames: ['proxy', 'kind'],
      registers: [this.registry],
    });
  }
}
