#!/usr/bin/env node
/**
 * The load generator: one autocannon run (programmatic API) against one target, in a process of
 * its own so that it can be pinned to its CPU and so that the orchestrator's work (e.g. sending
 * the admin writes of scenario 9) never stalls its event loop and inflates the latencies.
 *
 * Usage: node bench/macro/load.mjs '<json>' with
 *   { url, connections, pipelining, warmupSec, durationSec, headers, expectStatus }
 * Prints "phase measure" when the measured run starts (after the warm-up), then one line
 * "result <json>".
 *
 * Latency: autocannon's own histogram has 1 ms resolution and skips non-2xx responses, too coarse
 * for sub-millisecond p50s and blind for the deny flood. So every response's time (autocannon's
 * float milliseconds) is also recorded here, in microseconds, into node's HDR histogram; those are
 * the p50/p99/max the benchmark reports. autocannon's numbers are kept in the JSON as `autocannon`.
 */
import autocannon from 'autocannon';
import { createHistogram } from 'node:perf_hooks';

const o = JSON.parse(process.argv[2] ?? '{}');

function run(durationSec, onResponse) {
  const instance = autocannon({
    url: o.url,
    connections: o.connections,
    pipelining: o.pipelining,
    duration: durationSec,
    headers: o.headers ?? {},
    timeout: 10,
  });
  if (onResponse !== null) instance.on('response', onResponse);
  return instance;
}

// Warm-up: the JIT, the connection pools and the caches settle; its numbers are not reported
// (only its request count, so a CPU profile of the whole process can be divided per request).
const warmup = o.warmupSec > 0 ? await run(o.warmupSec, null) : null;

const hist = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
let responses = 0;
let unexpected = 0;
const onResponse = (_client, statusCode, _bytes, responseTimeMs) => {
  responses++;
  if (statusCode !== o.expectStatus) unexpected++;
  hist.record(Math.max(1, Math.round(responseTimeMs * 1000)));
};
process.stdout.write('phase measure\n');
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const r = await run(o.durationSec, onResponse);
const wallSec = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);

const ms = (us) => Math.round(us) / 1000;
const result = {
  rps: r.requests.average,
  rpsTotal: responses / wallSec,
  responses,
  wallSec,
  latencyMs: { p50: ms(hist.percentile(50)), p99: ms(hist.percentile(99)), max: ms(hist.max), mean: ms(hist.mean) },
  errors: r.errors,
  timeouts: r.timeouts,
  non2xx: r.non2xx,
  // Responses whose status differs from the scenario's expected one, plus connection errors.
  failed: unexpected + r.errors,
  statusCodeStats: r.statusCodeStats,
  warmupResponses: warmup === null ? 0 : warmup.requests.total,
  loadCpuPercent: ((cpu.user + cpu.system) / 1e4 / wallSec),
  autocannon: {
    requests: { average: r.requests.average, stddev: r.requests.stddev, min: r.requests.min, total: r.requests.total },
    latencyMs: { p50: r.latency.p50, p99: r.latency.p99, max: r.latency.max },
    duration: r.duration,
  },
};
process.stdout.write(`result ${JSON.stringify(result)}\n`);
