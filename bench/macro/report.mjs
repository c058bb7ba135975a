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
  add('7 vs 2: requests/s', [7, 2], () => rps(7) / rps(2), '>= 0.90x', (v) => v >= 0.9, (v) => `${v.toFixed(3)}x (${num(rps(7))} / ${num(rps(2))})`);
  add('7 vs 2: p99 latency', [7, 2], () => p99(7) / p99(2), '<= 1.2x', (v) => v <= 1.2, (v) => `${v.toFixed(3)}x (${num(p99(7), 2)} / ${num(p99(2), 2)} ms)`);
  // "Within 3%": a faster run with a million entries than with none can only be noise, so only
  // the slow side counts.
  add('6 vs 3: requests/s (list size must not matter)', [6, 3], () => rps(6) / rps(3), '>= 0.97x', (v) => v >= 0.97, (v) => `${v.toFixed(3)}x (${num(rps(6))} / ${num(rps(3))})`);
  add('8 vs 3: deny flood requests/s', [8, 3], () => rps(8) / rps(3), '>= 1.5x', (v) => v >= 1.5, (v) => `${v.toFixed(3)}x (${num(rps(8))} / ${num(rps(3))})`);
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
  add('9 vs 5: p99 latency', [9, 5], () => p99(9) / p99(5), '<= 1.5x', (v) => v <= 1.5, (v) => `${v.toFixed(3)}x (${num(p99(9), 2)} / ${num(p99(5), 2)} ms)`);
  return t;
}

export function markdown(report) {
  const { machine, params, pinning, rows, targets } = report;
  const out = [];
  out.push(`## ipgate HTTP benchmark (${report.mode})`, '');
  out.push(`- date: ${report.date}`);
  out.push(`- machine: ${machine.cpuModel}, ${machine.cpuCount} CPUs, ${machine.memoryGiB} GiB, ${machine.os}`);
  out.push(`- node ${machine.node}, commit ${machine.commit}${machine.dirty ? ' (with uncommitted changes)' : ''}`);
  out.push(`- load: autocannon, ${params.connections} connections, pipelining ${params.pipelining}, ${params.warmupSec} s warm-up then ${params.durationSec} s measured, GET ${params.path}`);
  out.push(`- pinning: ${pinning.note}`);
  out.push(`- 1-minute load average at start / end: ${report.loadAvg.start} / ${report.loadAvg.end} (anything else running makes every number noisy)`);
  out.push('');
  out.push('| # | scenario | req/s | p50 ms | p99 ms | max ms | errors | non-2xx | failed | CPU % under test | CPU µs / req under test | CPU % upstream + load | start s |');
  out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    if (r.error !== undefined) {
      out.push(`| ${r.id} | ${r.name} | ERROR: ${r.error.split('\n')[0]} | | | | | | | | | | |`);
      continue;
    }
    const l = r.load;
    out.push(
      `| ${r.id}${suspect(r) ? ' †' : ''} | ${r.name} | ${num(l.rps)} | ${num(l.latencyMs.p50, 2)} | ${num(l.latencyMs.p99, 2)} | ${num(l.latencyMs.max, 2)} | ${num(l.errors)} | ${num(l.non2xx)} | ${num(l.failed)} | ${num(r.cpuPercent.target)} | ${num(r.perRequest.cpuUs)} | ${num((r.cpuPercent.upstream ?? 0) + r.cpuPercent.load)} | ${r.startupSec === null ? '' : num(r.startupSec, 1)} |`,
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
  if (report.mode !== 'full') {
    out.push('', `Quick mode: smaller lists (${params.sizes.s5.toLocaleString('en-US')} / ${params.sizes.s6.toLocaleString('en-US')} entries) and short runs; the verdicts are a smoke test, not the targets of issue 5.`);
  }
  return out.join('\n');
}
