/**
 * One API proxy's per-request metric cells, bound when a snapshot is installed so that a request
 * only adds to numbers (no label objects, no label hashing).
 */
import { CounterCell, HistogramCell } from './bound-metrics.js';
import type { Metrics } from './metrics.js';

const DECISIONS = ['allowed', 'denied', 'dry_run_denied', 'error'] as const;
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;

function decisionIndex(d: string): number {
  switch (d) {
    case 'allowed':
      return 0;
    case 'denied':
      return 1;
    case 'dry_run_denied':
      return 2;
    default:
      return 3;
  }
}

export class ProxyMetrics {
  readonly duration: HistogramCell;
  readonly upstream: HistogramCell;
  /** requests_total cells by decision × status class, created on first use so unused pairs stay absent. */
  private readonly requests: (CounterCell | null)[] = new Array<CounterCell | null>(DECISIONS.length * STATUS_CLASSES.length).fill(null);

  constructor(
    private readonly metrics: Metrics,
    private readonly proxy: string,
  ) {
    this.duration = metrics.requestDuration.cell({ proxy });
    this.upstream = metrics.upstreamDuration.cell({ proxy });
  }

  /** HOT PATH. One finished request. */
  request(decision: string, status: number, seconds: number): void {
    let cls = ((status / 100) | 0) - 1;
    if (cls < 0 || cls > 4) cls = 4;
    const i = decisionIndex(decision) * STATUS_CLASSES.length + cls;
    let c = this.requests[i];
    if (c === null || c === undefined) {
      c = this.metrics.requests.cell({ proxy: this.proxy, decision: DECISIONS[(i / STATUS_CLASSES.length) | 0]!, status_class: STATUS_CLASSES[cls]! });
      this.requests[i] = c;
    }
    c.inc();
    this.duration.observe(seconds);
  }
}
