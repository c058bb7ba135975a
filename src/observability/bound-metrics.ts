/**
 * Hot-path metrics whose values live in plain fields, one cell per label set.
 *
 * Why not prom-client's own children: in prom-client 15 a child from `counter.labels(...)` still
 * validates and hashes its label set on every inc() and observe() (lib/counter.js binds inc to the
 * labels object; lib/histogram.js observe() calls hashObject on each call). Here a label set is
 * resolved to its cell once, when the data plane binds a snapshot, and a request only adds to a
 * number. prom-client still does the exposition: these classes implement the part of its metric
 * interface that Registry reads (name, help, type, aggregator, get, reset), and produce the same
 * value objects its Counter and Histogram produce (test/unit/bound-metrics.test.ts compares the
 * text output with prom-client's own).
 */
import type { Metric, Registry } from 'prom-client';

type LabelSet = Readonly<Record<string, string>>;

interface ValuePair {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly sharedLabels?: LabelSet;
  readonly value: number;
  readonly metricName?: string;
}

interface MetricJson {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  readonly values: ValuePair[];
}

/** Cells by label values, shared by both metric kinds. */
abstract class CellMetric<L extends string, C> {
  readonly aggregator = 'sum';
  private readonly cells = new Map<string, C>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
    registry: Registry,
  ) {
    // Registry's TypeScript type lists prom-client's own classes only; at run time it reads the
    // members implemented here (registry.js getMetricsAsString, getMetricsAsJSON, resetMetrics).
    registry.registerMetric(this as unknown as Metric);
  }

  /** The cell for one label set, created on first use. Cold path: it builds a key. */
  cell(labels: Readonly<Record<L, string>>): C {
    let key = '';
    for (const n of this.labelNames) key += labels[n] + '\u0000';
    let c = this.cells.get(key);
    if (c === undefined) {
      const own: Record<string, string> = {};
      for (const n of this.labelNames) own[n] = labels[n];
      c = this.create(own);
      this.cells.set(key, c);
    }
    return c;
  }

  protected allCells(): IterableIterator<C> {
    return this.cells.values();
  }

  /** Forget every label set (Registry.resetMetrics). */
  reset(): void {
    this.cells.clear();
  }

  protected abstract create(labels: LabelSet): C;
}

export class CounterCell {
  value = 0;
  constructor(readonly labels: LabelSet) {}

  /** HOT PATH. */
  inc(): void {
    this.value++;
  }
}

/** A counter; `cell()` binds a label set once, `inc()` is for cold paths. */
export class BoundCounter<L extends string> extends CellMetric<L, CounterCell> {
  readonly type = 'counter';

  inc(labels: Readonly<Record<L, string>>, value = 1): void {
    this.cell(labels).value += value;
  }

  get(): Promise<MetricJson> {
    const values: ValuePair[] = [];
    for (const c of this.allCells()) values.push({ labels: c.labels, value: c.value });
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  protected create(labels: LabelSet): CounterCell {
    return new CounterCell(labels);
  }
}

export class HistogramCell {
  /** Observations per bucket, not cumulative; values past the last bound are only in `count`. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly labels: LabelSet,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  /** HOT PATH. Prometheus buckets are upper-inclusive: `le` counts values <= the bound. */
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/** A histogram with fixed buckets; `cell()` binds a label set once. */
export class BoundHistogram<L extends string> extends CellMetric<L, HistogramCell> {
  readonly type = 'histogram';

  constructor(name: string, help: string, labelNames: readonly L[], private readonly buckets: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry);
  }

  observe(labels: Readonly<Record<L, string>>, v: number): void {
    this.cell(labels).observe(v);
  }

  /**
   * Like prom-client's Histogram.get(): every value carries all of its labels (the cell's and
   * `le`), so consumers such as a cluster aggregator keep the series of different cells apart.
   */
  async get(): Promise<MetricJson> {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map((v) => {
        const { sharedLabels, ...rest } = v;
        return { ...rest, labels: { ...sharedLabels, ...v.labels } };
      }),
    };
  }

  /** The exposition form (prom-client's registry prefers it): cell labels apart, in sharedLabels. */
  getForPromString(): Promise<MetricJson> {
    const values: ValuePair[] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.allCells()) {
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += c.counts[i]!;
        values.push({ labels: { le: this.buckets[i]! }, sharedLabels: c.labels, value: acc, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf' }, sharedLabels: c.labels, value: c.count, metricName: bucket });
      values.push({ labels: {}, sharedLabels: c.labels, value: c.sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: c.labels, value: c.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  protected create(labels: LabelSet): HistogramCell {
    return new HistogramCell(labels, this.buckets);
  }
}
