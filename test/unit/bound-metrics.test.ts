/**
 * The bound metrics must expose exactly what prom-client's own Counter and Histogram expose for the
 * same observations: same series, same bucket edges (upper-inclusive), same text.
 */
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BoundCounter, BoundHistogram } from '../../src/observability/bound-metrics.js';
import { mulberry32, testSeed } from '../helpers/seeded.js';

const BUCKETS = [0.001, 0.01, 0.1, 1, 10];
const seed = testSeed('bound-metrics.test.ts');
const lines = (text: string) => text.split('\n').sort();

describe('bound metrics', () => {
  it('a histogram exposes the same text as prom-client for the same observations, bucket edges included', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const bound = new BoundHistogram('h_seconds', 'help text', ['proxy'], BUCKETS, ours);
    const ref = new Histogram({ name: 'h_seconds', help: 'help text', labelNames: ['proxy'], buckets: BUCKETS, registers: [theirs] });
    const rnd = mulberry32(seed);
    const a = bound.cell({ proxy: 'a' });
    // Exact bucket bounds, zero and values past the last bound, then random ones.
    const values = [...BUCKETS, 0, 50, ...Array.from({ length: 500 }, () => rnd() ** 3 * 20)];
    for (const v of values) {
      const proxy = rnd() < 0.5 ? 'a' : 'b "quoted"\\';
      if (proxy === 'a') a.observe(v);
      else bound.observe({ proxy }, v);
      ref.observe({ proxy }, v);
    }
    // Series order follows first use, which differs here: compare the sets of lines.
    expect(lines(await ours.metrics())).toEqual(lines(await theirs.metrics()));
    // get() (what aggregators read) carries every label on every value, as prom-client's does.
    const key = (v: { labels: object; metricName?: string; value: number }) => JSON.stringify([v.metricName, Object.entries(v.labels).sort(), v.value]);
    const ourValues = (await bound.get()).values.map(key).sort();
    const theirValues = (await ref.get()).values.map(key).sort();
    expect(ourValues).toEqual(theirValues);
  });

  it('a counter exposes the same text as prom-client, and a cell is shared by its label set', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const bound = new BoundCounter('c_total', 'help', ['proxy', 'decision'], ours);
    const ref = new Counter({ name: 'c_total', help: 'help', labelNames: ['proxy', 'decision'], registers: [theirs] });
    const cell = bound.cell({ proxy: 'api', decision: 'allowed' });
    expect(bound.cell({ decision: 'allowed', proxy: 'api' })).toBe(cell);
    for (let i = 0; i < 7; i++) {
      cell.inc();
      ref.inc({ proxy: 'api', decision: 'allowed' });
    }
    bound.inc({ proxy: 'api', decision: 'denied' }, 3);
    ref.inc({ proxy: 'api', decision: 'denied' }, 3);
    expect(await ours.metrics()).toBe(await theirs.metrics());
    expect(await ours.getSingleMetricAsString('c_total')).toContain('c_total{proxy="api",decision="allowed"} 7');
  });

  it('labels that differ only in where a separator could fall stay apart', async () => {
    const r = new Registry();
    const c = new BoundCounter('x_total', 'help', ['a', 'b'], r);
    c.inc({ a: 'ab', b: 'c' });
    c.inc({ a: 'a', b: 'bc' });
    const text = await r.metrics();
    expect(text).toContain('x_total{a="ab",b="c"} 1');
    expect(text).toContain('x_total{a="a",b="bc"} 1');
  });

  it('Registry.resetMetrics clears the series', async () => {
    const r = new Registry();
    const c = new BoundCounter('y_total', 'help', ['a'], r);
    c.inc({ a: 'x' });
    r.resetMetrics();
    expect(await r.metrics()).not.toContain('y_total{');
  });
});
