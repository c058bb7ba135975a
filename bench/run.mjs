#!/usr/bin/env node
/**
 * ipgate's HTTP benchmark suite (issue 5): nine scenarios in one run, on one machine, so that the
 * targets can be ratios between them. Needs the compiled gateway (`npm run bench` builds first).
 *
 *   node bench/run.mjs            full run (~16 min): lists of 100,000 and 1,000,000 entries, 20 s per scenario, 3 rounds
 *   node bench/run.mjs --quick    smoke run (< 90 s): lists of 10,000 and 100,000 entries, 3 s per scenario, 1 round
 *   node bench/run.mjs --rounds=N run every scenario N times in turn; the table and the targets take the
 *       median over the rounds (this VM's neighbours move a single 20 s scenario by +-20%)
 *   node bench/run.mjs --only=2,3,7   a subset (targets whose scenarios did not run say n/a)
 *   node bench/run.mjs --keep     keep the temp dir (generated configs, gateway logs, store)
 *   BENCH_CPU_PROF=DIR node bench/run.mjs --only=2,3,7   write a --cpu-prof profile of the
 *       process under test per scenario into DIR; summarise with bench/macro/profile-top.mjs
 *   BENCH_SUT_NODE_ARGS="--trace-gc" node bench/run.mjs --only=9 --keep   extra node options for
 *       the gateway only (its stdout, and so the trace, lands in the kept dir's gateway.log)
 *
 * Every scenario starts its process under test fresh (the upstream of scenarios 2-9 is shared),
 * waits until it listens, sends one request to check the expected status, then hands over to a
 * pinned load-generator process (bench/macro/load.mjs). Prints a markdown table and the targets,
 * and writes everything as JSON to bench/results/<timestamp>.json.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, rssMiB, spawnNode, stop, syscalls, waitForLine, waitForStartedLog } from './macro/processes.mjs';
import { startReloadWriter } from './macro/reload-writer.mjs';
import { combineRounds, evaluateTargets, markdown } from './macro/report.mjs';
import { gatewayConfigText, PATH, reloadBodies, scenarios, SIZES } from './macro/scenarios.mjs';
import { machineInfo, pinningPlan, pinSelf } from './macro/system.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const keep = args.includes('--keep');
const onlyArg = args.find((a) => a.startsWith('--only='));
const roundsArg = args.find((a) => a.startsWith('--rounds='));
const rounds = roundsArg === undefined ? (quick ? 1 : 3) : Number(roundsArg.slice('--rounds='.length));
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${roundsArg}`);
const only = onlyArg === undefined ? null : new Set(onlyArg.slice('--only='.length).split(',').map(Number));
const profDir = process.env.BENCH_CPU_PROF ? path.resolve(process.env.BENCH_CPU_PROF) : null;

/** Fixed load parameters: change them only together with the README's Benchmarks section. */
const PARAMS = {
  connections: 50,
  pipelining: 1,
  warmupSec: quick ? 1 : 5,
  durationSec: quick ? 3 : 20,
  path: PATH,
  sizes: quick ? SIZES.quick : SIZES.full,
  rounds,
};
const STARTUP_TIMEOUT_MS = 300_000;

const plan = pinningPlan();
pinSelf(plan.load);
const machine = machineInfo();
const loadAvgStart = loadavg()[0].toFixed(2);
const log = (s) => process.stderr.write(`${s}\n`);
log(`ipgate bench (${quick ? 'quick' : 'full'}): ${machine.cpuModel} x${machine.cpuCount}, node ${machine.node}, commit ${machine.commit.slice(0, 12)}${machine.dirty ? ' (dirty)' : ''}`);
log(plan.pinned ? plan.note : `WARNING: ${plan.note}`);

const tmp = mkdtempSync(path.join(tmpdir(), 'ipgate-bench-'));
if (profDir !== null) mkdirSync(profDir, { recursive: true });

/** Environment for children: no IPGATE_* from the caller's shell may change a scenario. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('IPGATE_')) env[k] = v;
  return { ...env, ...extra };
}

/** BENCH_SUT_NODE_ARGS: node options for the gateway only (diagnostics such as --trace-gc), split on spaces. */
const sutNodeArgs = (process.env.BENCH_SUT_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');

function profArgs(name) {
  return profDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}.cpuprofile`];
}

async function startListening(cpu, script, scriptArgs, name) {
  const child = spawnNode(cpu, [...profArgs(name), path.join(here, script), ...scriptArgs], { env: cleanEnv() });
  try {
    const m = await waitForLine(child, /listening (\d+)/);
    return { child, port: Number(m[1]) };
  } catch (err) {
    await stop(child);
    throw err;
  }
}

/** One request, to check the process under test answers what the scenario expects before loading it. */
function probe(port, headers) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: PATH, headers, localAddress: '127.0.0.1' }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Run load.mjs pinned; `onMeasure` is called when the measured phase starts (after warm-up). */
async function runLoad(port, scenario, onMeasure) {
  const opts = { url: `http://127.0.0.1:${port}${PATH}`, connections: PARAMS.connections, pipelining: PARAMS.pipelining, warmupSec: PARAMS.warmupSec, durationSec: PARAMS.durationSec, headers: scenario.headers, expectStatus: scenario.expectStatus };
  const child = spawnNode(plan.load, [path.join(here, 'macro/load.mjs'), JSON.stringify(opts)], { env: cleanEnv() });
  try {
    await waitForLine(child, /phase measure\n/, (PARAMS.warmupSec + 60) * 1000);
    await onMeasure(child.pid);
    const m = await waitForLine(child, /result (.*)\n/, (PARAMS.durationSec + 60) * 1000);
    return JSON.parse(m[1]);
  } finally {
    await stop(child);
  }
}

async function startIpgate(scenario, upstreamUrl, round) {
  const dir = path.join(tmp, `s${scenario.id}-r${round}`);
  mkdirSync(dir);
  const configFile = path.join(dir, 'gateway.yaml');
  const t0 = performance.now();
  writeFileSync(configFile, gatewayConfigText(scenario, { upstreamUrl, storeFile: path.join(dir, 'store.json') }));
  const configSec = (performance.now() - t0) / 1000;
  const token = randomBytes(24).toString('hex');
  const logFile = path.join(dir, 'gateway.log');
  const t1 = performance.now();
  const child = spawnNode(plan.sut, [...profArgs(`s${scenario.id}-ipgate`), ...sutNodeArgs, path.join(repo, 'dist/cli.js'), 'start', '--config', configFile], {
    env: cleanEnv(scenario.store === true ? { IPGATE_ADMIN_TOKEN: token } : {}),
    logFile,
  });
  let started;
  try {
    started = await waitForStartedLog(child, logFile, STARTUP_TIMEOUT_MS);
  } catch (err) {
    await stop(child);
    throw err;
  }
  const startupSec = (performance.now() - t1) / 1000;
  const port = Number(started.listen.slice(started.listen.lastIndexOf(':') + 1));
  const adminPort = Number(started.admin.slice(started.admin.lastIndexOf(':') + 1));
  return { child, port, adminPort, token, startupSec, configSec, stats: started.stats };
}

async function runScenario(s, upstream, round) {
  log(`\n[${s.id}] ${s.name}`);
  let target = null;
  let writer = null;
  const row = { id: s.id, name: s.name, startupSec: null };
  try {
    if (s.kind === 'upstream') {
      // The upstream as the process under test: its own instance, on the CPU the gateway gets.
      target = await startListening(plan.sut, 'upstream.mjs', ['0'], `s${s.id}-upstream`);
    } else if (s.kind === 'baseline') {
      target = await startListening(plan.sut, 'baseline.mjs', [upstream.url, '0'], `s${s.id}-baseline`);
    } else {
      target = await startIpgate(s, upstream.url, round);
      row.startupSec = target.startupSec;
      row.configWriteSec = target.configSec;
      row.compile = target.stats;
      log(`    gateway ready in ${target.startupSec.toFixed(1)} s (${target.stats?.entries ?? 0} entries, compile ${target.stats?.compileMs?.toFixed(0) ?? '?'} ms), RSS ${rssMiB(target.child.pid)} MiB`);
    }
    row.rssMiB = rssMiB(target.child.pid);
    const status = await probe(target.port, s.headers);
    if (status !== s.expectStatus) throw new Error(`probe answered ${status}, expected ${s.expectStatus}`);

    const bodies = s.reload === undefined ? null : reloadBodies(s.reload.size);
    let cpu0 = null;
    let io0 = null;
    let t0 = 0;
    const pids = (loadPid) => ({ target: target.child.pid, upstream: upstream.child.pid, load: loadPid, orchestrator: process.pid });
    let loadPid = 0;
    const load = await runLoad(target.port, s, async (pid) => {
      loadPid = pid;
      t0 = performance.now();
      cpu0 = Object.fromEntries(Object.entries(pids(pid)).map(([k, p]) => [k, cpuSeconds(p)]));
      io0 = syscalls(target.child.pid);
      if (bodies !== null) writer = startReloadWriter({ adminPort: target.adminPort, token: target.token, bodies, periodMs: s.reload.periodMs });
    });
    const wall = (performance.now() - t0) / 1000;
    // The load process has exited by now; its own CPU share comes from load.mjs.
    const cpu1 = Object.fromEntries(Object.entries(pids(loadPid)).map(([k, p]) => [k, cpuSeconds(p)]));
    const io1 = syscalls(target.child.pid);
    row.cpuPercent = {
      target: cpu0.target === null || cpu1.target === null ? null : ((cpu1.target - cpu0.target) / wall) * 100,
      upstream: s.kind === 'upstream' || cpu0.upstream === null ? null : ((cpu1.upstream - cpu0.upstream) / wall) * 100,
      load: load.loadCpuPercent,
      orchestrator: cpu0.orchestrator === null ? null : ((cpu1.orchestrator - cpu0.orchestrator) / wall) * 100,
    };
    // What the process under test spent per response: the cost the targets are about, and less
    // sensitive to a busy machine than req/s. Syscalls are those /proc/<pid>/io counts (read and
    // write families), the CPU is user + system.
    const n = load.responses;
    row.perRequest = {
      cpuUs: cpu0.target === null || cpu1.target === null || n === 0 ? null : ((cpu1.target - cpu0.target) * 1e6) / n,
      readSyscalls: io0 === null || io1 === null || n === 0 ? null : (io1.reads - io0.reads) / n,
      writeSyscalls: io0 === null || io1 === null || n === 0 ? null : (io1.writes - io0.writes) / n,
    };
    if (writer !== null) {
      row.reload = await writer.stop();
      writer = null;
    }
    row.load = load;
    const l = load;
    log(`    ${l.rps.toFixed(0)} req/s, p50 ${l.latencyMs.p50} ms, p99 ${l.latencyMs.p99} ms, max ${l.latencyMs.max} ms, errors ${l.errors}, non-2xx ${l.non2xx}, failed ${l.failed}`);
    if (row.reload !== undefined) log(`    reload: ${row.reload.writes} writes, ${row.reload.failedWrites} failed, ms ${JSON.stringify(row.reload.writeMs)}`);
  } catch (err) {
    row.error = err instanceof Error ? err.message : String(err);
    log(`    ERROR: ${row.error}`);
  } finally {
    if (writer !== null) await writer.stop();
    if (target !== null) {
      const exit = await stop(target.child);
      if (exit.code !== 0 && exit.code !== null) row.exit = exit;
    }
  }
  return row;
}

const upstream = await startListening(plan.upstream, 'upstream.mjs', ['0'], 'upstream');
upstream.url = `http://127.0.0.1:${upstream.port}`;
const rawRows = [];
try {
  for (let round = 1; round <= rounds; round++) {
    if (rounds > 1) log(`\n=== round ${round} of ${rounds}`);
    for (const s of scenarios(PARAMS.sizes)) {
      if (only !== null && !only.has(s.id)) continue;
      rawRows.push({ ...(await runScenario(s, upstream, round)), round });
    }
  }
} finally {
  await stop(upstream.child);
}

const rows = combineRounds(rawRows);
const date = new Date().toISOString();
const report = {
  mode: quick ? 'quick' : 'full',
  date,
  machine,
  pinning: plan,
  params: PARAMS,
  loadAvg: { start: loadAvgStart, end: loadavg()[0].toFixed(2) },
  rows,
  rawRows,
  targets: evaluateTargets(new Map(rows.map((r) => [r.id, r]))),
};
const resultsDir = path.join(here, 'results');
mkdirSync(resultsDir, { recursive: true });
const file = path.join(resultsDir, `${date.replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
process.stdout.write(`\n${markdown(report)}\n\nJSON: ${path.relative(process.cwd(), file)}\n`);
if (profDir !== null) log(`CPU profiles in ${profDir}`);
if (keep) log(`kept ${tmp}`);
else rmSync(tmp, { recursive: true, force: true });
