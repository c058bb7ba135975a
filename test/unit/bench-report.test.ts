/**
 * bench/macro/report.mjs: the benchmark's verdict. Per-round ratios beside each verdict, and a
 * note when the machine's own speed (scenario 1, the upstream alone) moved between rounds.
 */
import { describe, expect, it } from 'vitest';
// @ts-expect-error: plain ESM JavaScript without types (bench/ is not compiled)
import { combineRounds, evaluateTargets, machineDrift, markdown } from '../../bench/macro/report.mjs';

interface Row {
  id: number;
  round: number;
  load: { rps: number; latencyMs: { p50: number; p99: number; max: number } };
}

/** Raw rows as bench/run.mjs records them: `rates[id]` = [req/s, p99] per round. */
function raw(rates: Record<number, [number, number][]>): Row[] {
  const out: unknown[] = [];
  for (const [id, rounds] of Object.entries(rates)) {
    rounds.forEach(([rps, p99], i) =>
      out.push({
        id: Number(id),
        name: `s${id}`,
        round: i + 1,
        startupSec: 1,
        rssMiB: 100,
        cpuPercent: { target: 98, upstream: 40, load: 40 },
        perRequest: { cpuUs: 50 },
        load: { rps, latencyMs: { p50: p99 / 3, p99, max: p99 * 2 }, errors: 0, non2xx: 0, failed: 0, responses: rps * 20 },
        ...(Number(id) === 9 ? { reload: { writes: 3, failedWrites: 0, writeMs: { min: 1, median: 2, max: 3 } } } : {}),
      }),
    );
  }
  return out as Row[];
}

const steady: Record<number, [number, number][]> = {
  1: [[40_000, 3], [41_000, 3], [39_000, 3]],
  2: [[10_000, 10], [10_000, 10], [10_000, 10]],
  3: [[20_000, 5], [22_000, 5], [18_000, 5]],
  5: [[20_000, 5], [20_000, 6], [20_000, 5]],
  6: [[20_000, 5], [19_000, 5], [21_000, 5]],
  7: [[15_000, 8], [15_000, 8], [15_000, 8]],
  8: [[35_000, 3], [35_000, 3], [35_000, 3]],
  9: [[18_000, 7], [18_000, 9], [18_000, 6]],
};

function report(rates: Record<number, [number, number][]>): { text: string; targets: { target: string; measured: string; pass: boolean | null }[] } {
  const rows = combineRounds(raw(rates));
  const targets = evaluateTargets(new Map(rows.map((r: { id: number }) => [r.id, r])));
  const text = markdown({
    mode: 'full',
    date: 'd',
    machine: { cpuModel: 'm', cpuCount: 2, memoryGiB: 1, os: 'o', node: 'v', commit: 'c', dirty: false },
    params: { connections: 50, pipelining: 1, warmupSec: 5, durationSec: 20, path: '/', rounds: 3, sizes: { s5: 1, s6: 1 } },
    pinning: { note: 'n' },
    loadAvg: { start: 0, end: 0 },
    rows,
    targets,
  });
  return { text, targets };
}

describe('benchmark report', () => {
  it('shows the ratio of every round beside the verdict, which stays the ratio of the medians', () => {
    const { targets } = report(steady);
    const sixVsThree = targets.find((t) => t.target.startsWith('6 vs 3'))!;
    // Medians: 20,000 / 20,000 = 1.000x; per round 20/20, 19/22, 21/18.
    expect(sixVsThree.measured).toBe('1.000x (20,000 / 20,000); per round 1.000x, 0.864x, 1.167x');
    expect(sixVsThree.pass).toBe(true);
    const reload = targets.find((t) => t.target === '9 vs 5: p99 latency')!;
    expect(reload.measured).toBe('1.400x (7.00 / 5.00 ms); per round 1.400x, 1.500x, 1.200x');
  });

  it('says when the machine itself moved between rounds, and stays quiet when it did not', () => {
    expect(machineDrift(combineRounds(raw(steady)))).toBeNull();
    expect(report(steady).text).not.toContain('‡');
    const drifting = { ...steady, 1: [[45_000, 3], [27_000, 5], [45_000, 3]] as [number, number][] };
    const note = machineDrift(combineRounds(raw(drifting)));
    expect(note).toContain('45,000 / 27,000 / 45,000 req/s');
    expect(note).toContain('67% apart');
    expect(report(drifting).text).toContain(note);
  });
});
