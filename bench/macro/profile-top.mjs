#!/usr/bin/env node
/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof`, e.g. BENCH_CPU_PROF=DIR node bench/run.mjs)
 * as the functions with the most self time, and the share of time per file group.
 *
 * Usage: node bench/macro/profile-top.mjs FILE.cpuprofile [top=25] [--requests=N]
 * With --requests (the requests the process served while profiled: in bench/results JSON, a
 * scenario's load.warmupResponses + load.responses + 1 for the probe), each line also shows
 * microseconds per request, which is what compares across scenarios (the baseline vs ipgate).
 */
import { readFileSync } from 'node:fs';

const reqArg = process.argv.find((a) => a.startsWith('--requests='));
const requests = reqArg === undefined ? null : Number(reqArg.slice('--requests='.length));
const [file, topArg = '25'] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
if (file === undefined) {
  process.stderr.write('usage: node bench/macro/profile-top.mjs FILE.cpuprofile [top]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
// Self time per node: each sample is attributed to the node on top of the stack, for the time
// delta that follows it.
const selfUs = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  const dt = profile.timeDeltas[i + 1] ?? 0;
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
}
let total = 0;
const byFn = new Map();
const byGroup = new Map();
const repoRoot = new URL('../../', import.meta.url).pathname;
function group(url, name) {
  if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') return name;
  if (url === '') return '(native / V8)';
  const u = url.replace('file://', '').replace(repoRoot, '');
  if (u.startsWith('node:')) return `node core: ${u.slice(5).split('/')[0]}`;
  const nm = u.lastIndexOf('node_modules/');
  if (nm !== -1) return `dependency: ${u.slice(nm + 13).split('/')[0]}`;
  if (u.startsWith('dist/')) return `ipgate: ${u.slice(5)}`;
  return u;
}
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  const cf = n.callFrame;
  total += us;
  const where = cf.url === '' ? '' : `${cf.url.replace('file://', '').replace(repoRoot, '')}:${cf.lineNumber + 1}`;
  const key = `${cf.functionName || '(anonymous)'} ${where}`;
  byFn.set(key, (byFn.get(key) ?? 0) + us);
  const g = group(cf.url, cf.functionName);
  byGroup.set(g, (byGroup.get(g) ?? 0) + us);
}
const pct = (us) => `${((us / total) * 100).toFixed(1)}%`.padStart(6) + (requests === null ? '' : `${(us / requests).toFixed(1).padStart(7)} us/req`);
const idle = byGroup.get('(idle)') ?? 0;
const busy = requests === null ? '' : `, ${((total - idle) / requests).toFixed(1)} us of non-idle time per request`;
process.stdout.write(`${file}: ${(total / 1e6).toFixed(1)} s sampled, ${((idle / total) * 100).toFixed(1)}% idle${busy}\n\nTop self time:\n`);
for (const [k, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) process.stdout.write(`${pct(us)}  ${k}\n`);
process.stdout.write('\nBy file group:\n');
for (const [k, us] of [...byGroup].sort((a, b) => b[1] - a[1]).slice(0, 30)) process.stdout.write(`${pct(us)}  ${k}\n`);
