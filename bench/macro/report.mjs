/**
 * The benchmark's verdict: the per-scenario table and the targets of issue 5, each computed from
 * numbers measured side by side in this one run.
 */

/**
 * Below this CPU share the process under test was not what limited the rate: it was starved by
 * other work on its CPU, or the load generator's CPU ran out first. Its row, and any ratio built
 * on it, measures the machine rather than the process.
 */
export const SATURATED_CPU_PERCENT = 90;
const suspect = (row) => row?.cpuPercent?.target !== null && row?.cpuPercent?.target !== undefined && row.cpuPercent.target < SATURATED_CPU_PERCENT;

const num = (x, digits = 0) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));

const median = (xs) => {
  const v = xs.filter((x) => x !== null && x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const sum = (xs) => xs.reduce((a, x) => a + (x ?? 0), 0);

/**
 * One row per scenario from the rows of every round (`round` 1..R, scenarios in the same order each
 * round). Rates, latencies and CPU are the median over the rounds (max latency: the maximum);
 * errors, failures and responses are summed, so a failure in any round shows. A scenario that
 * failed in any round is reported as failed. `rounds` keeps each round's req/s and p99.
 */
export function combineRounds(rawRows) {
  const byId = new Map();
  for (const r of rawRows) {
    if (!byId.has(r.id)) byId.set(r.id, []);
    byId.get(r.id).push(r);
  }
  return [...byId.values()].map((rs) => {
    const first = rs[0];
    const failed = rs.find((r) => r.error !== undefined);
    if (failed !== undefined) return { ...failed, rounds: rs.map((r) => ({ round: r.round, error: r.error ?? null })) };
    const loads = rs.map((r) => r.load);
    const row = {
      ...first,
      startupSec: median(rs.map((r) => r.startupSec)),
      rssMiB: median(rs.map((r) => r.rssMiB)),
      cpuPercent: Object.fromEntries(Object.keys(first.cpuPercent).map((k) => [k, median(rs.map((r) => r.cpuPercent[k]))])),
      perRequest: Object.fromEntries(Object.keys(first.perRequest).map((k) => [k, median(rs.map((r) => r.perRequest[k]))])),
      load: {
        ...first.load,
        rps: median(loads.map((l) => l.rps)),
        latencyMs: {
          ...first.load.latencyMs,
          p50: median(loads.map((l) => l.latencyMs.p50)),
          p99: median(loads.map((l) => l.latencyMs.p99)),
          max: Math.max(...loads.map((l) => l.latencyMs.max)),
        },
        errors: sum(loads.map((l) => l.errors)),
        non2xx: sum(loads.map((l) => l.non2xx)),
        failed: sum(loads.map((l) => l.failed)),
        responses: sum(loads.map((l) => l.responses)),
      },
      rounds: rs.map((r) => ({ round: r.round, rps: r.load.rps, p99: r.load.latencyMs.p99, cpuUs: r.perRequest.cpuUs })),
    };
    if (first.reload !== undefined) {
      const rl = rs.map((r) => r.reload);
      row.reload = {
        ...first.reload,
        writes: sum(rl.map((x) => x.writes)),
        failedWrites: sum(rl.map((x) => x.failedWrites)),
        writeMs: {
          min: Math.min(...rl.map((x) => x.writeMs?.min ?? Infinity)),
          median: median(rl.map((x) => x.writeMs?.median)),
          max: Math.max(...rl.map((x) => x.writeMs?.max ?? -Infinity)),
        },
      };
    }
    return row;
  });
}

/**
 * The ratio of scenarios a and b within each round (`field`: 'rps' or 'p99'), as text: scenarios of
 * one round ran minutes apart, so a round's ratio is less exposed to the host's slow stretches
 * than the ratio of two medians taken from different rounds. Shown beside the verdict, which
 * stays the ratio of the medians.
 */
function perRound(byId, a, b, field) {
  const ra = byId.get(a).rounds ?? [];
  const rb = byId.get(b).rounds ?? [];
  if (ra.length < 2) return '';
  const ratios = ra.map((x) => {
    const y = rb.find((z) => z.round === x.round);
    return y === undefined || !(y[field] > 0) ? 'n/a' : `${(x[field] / y[field]).toFixed(3)}x`;
  });
  return `; per round ${ratios.join(', ')}`;
}

/** The targets, from the rows by scenario id. A target whose scenarios did not run is "n/a". */
export function evaluateTargets(byId) {
  const ok = (id) => byId.get(id)?.load !== undefined;
  const rps = (id) => byId.get(id).load.rps;
  const p99 = (id) => byId.get(id).load.latencyMs.p99;
  const t = [];
  const add = (target, ids, value, threshold, pass, measured) => {
    if (!ids.every(ok)) t.push({ target, measured: 'n/a (scenario not run or failed)', threshold, pass: null, suspect: false });
    else t.push({ target, measured: measured(value()), threshold, pass: pass(value()), suspect: ids.some((id) => suspect(byId.get(id))) });
  };
  const rpsText = (a, b) => (v) => `${v.toFixed(3)}x (${num(rps(a))} / ${num(rps(b))})${perRound(byId, a, b, 'rps')}`;
  const p99Text = (a, b) => (v) => `${v.toFixed(3)}x (${num(p99(a), 2)} / ${num(p99(b), 2)} ms)${perRound(byId, a, b, 'p99')}`;
  add('7 vs 2: requests/s', [7, 2], () => rps(7) / rps(2), '>= 0.90x', (v) => v >= 0.9, rpsText(7, 2));
  add('7 vs 2: p99 latency', [7, 2], () => p99(7) / p99(2), '<= 1.2x', (v) => v <= 1.2, p99Text(7, 2));
  // "Within 3%": a faster run with a million entries than with none can only be noise, so only
  // the slow side counts.
  add('6 vs 3: requests/s (list size must not matter)', [6, 3], () => rps(6) / rps(3), '>= 0.97x', (v) => v >= 0.97, rpsText(6, 3));
  add('8 vs 3: deny flood requests/s', [8, 3], () => rps(8) / rps(3), '>= 1.5x', (v) => v >= 1.5, rpsText(8, 3));
  add(
    '9: failed requests during reloads',
    [9],
    () => byId.get(9).load.failed,
    '0, with every write deployed',
    (v) => v === 0 && byId.get(9).reload.writes > 0 && byId.get(9).reload.failedWrites === 0,
    (v) => {
      const r = byId.get(9).reload;
      return `${num(v)} failed of ${num(byId.get(9).load.responses)}; ${r.writes} writes, ${r.failedWrites} failed, write ms min/median/max ${r.writeMs?.min}/${r.writeMs?.median}/${r.writeMs?.max}`;
    },
  );
  add('9 vs 5: p99 latency', [9, 5], () => p99(9) / p99(5), '<= 1.5x', (v) => v <= 1.5, p99Text(9, 5));
  return t;
}

/** Above this spread of scenario 1 between rounds, the run says so under the targets. */
export const DRIFT_WARN = 0.1;

/**
 * How much the machine itself moved during the run: scenario 1 (the upstream alone, none of
 * ipgate's code) between its fastest and slowest round. null when it stayed within DRIFT_WARN or
 * did not run in several rounds.
 */
export function machineDrift(rows) {
  const up = rows.find((r) => r.id === 1 && r.rounds !== undefined && r.rounds.length > 1 && r.error === undefined);
  if (up === undefined) return null;
  const rates = up.rounds.map((x) => x.rps).filter((x) => x > 0);
  if (rates.length < 2) return null;
  const spread = Math.max(...rates) / Math.min(...rates) - 1;
  if (spread <= DRIFT_WARN) return null;
  return (
    `‡ The machine's own speed moved during this run: scenario 1 (the upstream alone, no ipgate code) ran at ${rates.map((x) => num(x)).join(' / ')} req/s in its rounds, ` +
    `${Math.round(spread * 100)}% apart. A ratio of two medians may pair a slow round with a fast one; the per-round ratios beside each verdict show how much that matters.`
  );
}

export function markdown(report) {
  const { machine, params, pinning, rows, targets } = report;
  const out = [];
  out.push(`## ipgate HTTP benchmark (${report.mode})`, '');
  out.push(`- date: ${report.date}`);
  out.push(`- machine: ${machine.cpuModel}, ${machine.cpuCount} CPUs, ${machine.memoryGiB} GiB, ${machine.os}`);
  out.push(`- node ${machine.node}, commit ${machine.commit}${machine.dirty ? ' (with uncommitted changes)' : ''}`);
  out.push(`- load: autocannon, ${params.connections} connections, pipelining ${params.pipelining}, ${params.warmupSec} s warm-up then ${params.durationSec} s measured, GET ${params.path}`);
  out.push(
    `- rounds: ${params.rounds}${params.rounds > 1 ? ' (every scenario once per round, in order; the table and the targets use the median over the rounds, failures are summed)' : ''}`,
  );
  out.push(`- pinning: ${pinning.note}`);
  out.push(`- 1-minute load average at start / end: ${report.loadAvg.start} / ${report.loadAvg.end} (anything else running makes every number noisy)`);
  out.push('');
  const multi = params.rounds > 1;
  out.push(`| # | scenario | req/s | p50 ms | p99 ms | max ms | errors | non-2xx | failed | CPU % under test | CPU µs / req under test | CPU % upstream + load | start s |${multi ? ' req/s, p99 ms per round |' : ''}`);
  out.push(`|---|---|---|---|---|---|---|---|---|---|---|---|---|${multi ? '---|' : ''}`);
  for (const r of rows) {
    if (r.error !== undefined) {
      out.push(`| ${r.id} | ${r.name} | ERROR: ${r.error.split('\n')[0]} | | | | | | | | | | |`);
      continue;
    }
    const l = r.load;
    out.push(
      `| ${r.id}${suspect(r) ? ' †' : ''} | ${r.name} | ${num(l.rps)} | ${num(l.latencyMs.p50, 2)} | ${num(l.latencyMs.p99, 2)} | ${num(l.latencyMs.max, 2)} | ${num(l.errors)} | ${num(l.non2xx)} | ${num(l.failed)} | ${num(r.cpuPercent.target)} | ${num(r.perRequest.cpuUs)} | ${num((r.cpuPercent.upstream ?? 0) + r.cpuPercent.load)} | ${r.startupSec === null ? '' : num(r.startupSec, 1)} |${multi ? ` ${r.rounds.map((x) => `${num(x.rps)} / ${num(x.p99, 2)}`).join('; ')} |` : ''}`,
    );
  }
  out.push('');
  out.push('"failed" counts connection errors plus responses with another status than the scenario expects (200; 403 for the deny flood). Latencies are of every response, in the load generator.');
  out.push('');
  out.push('| target | measured | needs | verdict |');
  out.push('|---|---|---|---|');
  for (const t of targets) out.push(`| ${t.target} | ${t.measured} | ${t.threshold} | ${t.pass === null ? 'n/a' : t.pass ? 'PASS' : 'FAIL'}${t.suspect ? ' †' : ''} |`);
  if (rows.some(suspect)) {
    out.push(
      '',
      `† The process under test used less than ${SATURATED_CPU_PERCENT}% of its CPU: it was starved by other work on the machine, or something else (usually the load generator's CPU) was the bottleneck. Those rows and the verdicts built on them are not trustworthy; rerun on a quiet machine.`,
    );
  }
  const noise = machineDrift(rows);
  if (noise !== null) out.push('', noise);
  if (report.mode !== 'full') {
    out.push('', `Quick mode: smaller lists (${params.sizes.s5.toLocaleString('en-US')} / ${params.sizes.s6.toLocaleString('en-US')} entries) and short runs; the verdicts are a smoke test, not the targets of issue 5.`);
  }
  return out.join('\n');
}
