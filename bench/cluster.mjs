// Cluster propagation benchmark (`npm run bench:cluster`, after `npm run build`).
//
// Three real node processes (node-a and node-b in production, node-c in staging) share one
// PostgreSQL schema, as in test/integration/cluster-*.test.ts. Each of 100 writes adds an address
// to an IP group through node-a's admin API; meanwhile a client bound to that address sends
// requests to node-b, one after another, until node-b lets it through. The time from sending the
// write to node-b's first 200 is the propagation latency: commit, NOTIFY, node-b's sync, compile
// and swap, as a client sees it. Results go to bench/RESULTS.md under "Cluster propagation".
//
// PostgreSQL: IPGATE_TEST_PG_URL, default postgres://postgres@127.0.0.1:5432/test.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { stringify } from 'yaml';

const PG_URL = process.env.IPGATE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const WRITES = Number(process.env.BENCH_WRITES ?? 100);
const WARMUP = 5;
const TOKEN = 'bench-admin-token-0123456789';
const schema = `ipgate_bench_${process.pid}_${randomBytes(3).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'ipgate-bench-cluster-'));

function httpCall(port, path, { method = 'GET', body, from = '127.0.0.1', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const h = { ...headers };
    if (payload !== undefined) {
      h['content-type'] = 'application/json';
      h['content-length'] = Buffer.byteLength(payload);
    }
    const req = request({ host: '127.0.0.1', port, path, method, headers: h, localAddress: from, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

function startNode(name, environment, upstreamUrl) {
  const config = {
    listen: '127.0.0.1:0',
    nodeId: name,
    environment,
    log: { level: 'info' },
    admin: { listen: '127.0.0.1:0' },
    store: { postgres: { url: PG_URL, schema } },
    projects: [
      {
        name: 'p',
        ipGroups: [{ name: 'clients', entries: [{ ip: '127.0.0.1' }] }],
        apiProxies: [
          {
            name: 'api',
            basePath: '/api',
            upstream: { url: upstreamUrl },
            environments: ['production', 'staging'],
            policies: [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'allow-clients', ipGroupIdList: ['clients'] } }],
          },
        ],
      },
    ],
  };
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, stringify(config));
  // The ports the OS picked are in the "started" log line; the rest of stdout is drained unread.
  const child = spawn(process.execPath, ['dist/cli.js', 'start', '--config', file], {
    env: { ...process.env, IPGATE_ADMIN_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.setEncoding('utf8');
    const onData = (t) => {
      buf += t;
      for (const line of buf.split('\n')) {
        if (!line.includes('"event":"started"')) continue;
        const l = JSON.parse(line);
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolve({ name, child, traffic: Number(l.listen.split(':').pop()), admin: Number(l.admin.split(':').pop()) });
        return;
      }
    };
    child.stdout.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${name} exited with ${code} before it started`)));
  });
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main() {
  const sql = postgres(PG_URL, { max: 1, connect_timeout: 3, onnotice: () => undefined });
  let pgVersion;
  try {
    pgVersion = (await sql`show server_version`)[0].server_version;
  } catch (err) {
    console.error(`PostgreSQL is not reachable at ${PG_URL}: ${err.message}`);
    process.exit(1);
  }
  const upstream = createServer((req, res) => res.end('ok'));
  await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;
  const nodes = [];
  try {
    nodes.push(await startNode('node-a', 'production', upstreamUrl));
    nodes.push(await startNode('node-b', 'production', upstreamUrl));
    nodes.push(await startNode('node-c', 'staging', upstreamUrl));
    const [a, b] = nodes;
    const propagation = [];
    const writeLatency = [];
    for (let i = 0; i < WARMUP + WRITES; i++) {
      const ip = `127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`;
      const t0 = performance.now();
      const write = httpCall(a.admin, '/apiops/projects/p/ipGroups/clients/ips/', { method: 'POST', body: { entries: [{ ip }] }, headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => {
        writeLatency.push(performance.now() - t0);
        return r;
      });
      let seen;
      for (;;) {
        const r = await httpCall(b.traffic, '/api/x', { from: ip });
        if (r.status === 200) {
          seen = performance.now() - t0;
          break;
        }
        if (performance.now() - t0 > 10_000) throw new Error(`node-b never enforced write ${i}`);
      }
      const w = await write;
      if (w.status !== 200 || !JSON.parse(w.text).deploymentResult.success) throw new Error(`write ${i} failed: ${w.status} ${w.text}`);
      if (i >= WARMUP) propagation.push(seen);
      else writeLatency.pop();
    }
    propagation.sort((x, y) => x - y);
    writeLatency.sort((x, y) => x - y);
    const row = (label, s) => `| ${label} | ${pct(s, 50).toFixed(1)} | ${pct(s, 90).toFixed(1)} | ${pct(s, 99).toFixed(1)} | ${s[s.length - 1].toFixed(1)} |`;
    let commit = 'unknown';
    try {
      commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    } catch {
      // not a git checkout
    }
    const p99 = pct(propagation, 99);
    const section = [
      '## Cluster propagation (`npm run bench:cluster`)',
      '',
      `- **Date:** ${new Date().toISOString().slice(0, 10)}.`,
      `- **Machine:** ${cpus().length} cores, "${cpus()[0]?.model.trim() ?? 'unknown'}", Node ${process.version}, PostgreSQL ${pgVersion} on loopback, everything on the one machine.`,
      `- **Commit:** ${commit} (plus uncommitted work when run from a work tree).`,
      `- **Setup:** three node processes on one store (node-a, node-b production; node-c staging), default store settings. ${WRITES} writes after ${WARMUP} warm-up writes, each adding one address to an IP group through node-a's admin API.`,
      '',
      'Propagation is the time from sending the write to node-a until node-b first lets a request',
      'from that address through (real requests, one after another, from a socket bound to the',
      "address). The write's own answer waits until every live node of both environments has",
      'reported the new revision.',
      '',
      '| ms | p50 | p90 | p99 | max |',
      '|---|---|---|---|---|',
      row('write → enforced on node-b', propagation),
      row('write → admin response (all nodes confirmed)', writeLatency),
      '',
      `Target (issue 6): p99 under 500 ms — **${p99 < 500 ? 'met' : 'not met'}** (${p99.toFixed(1)} ms).`,
      '',
    ].join('\n');
    const file = 'bench/RESULTS.md';
    const text = readFileSync(file, 'utf8');
    const start = text.indexOf('## Cluster propagation');
    let out;
    if (start === -1) out = `${text.trimEnd()}\n\n${section}`;
    else {
      const next = text.indexOf('\n## ', start + 1);
      out = text.slice(0, start) + section + (next === -1 ? '' : text.slice(next + 1));
    }
    writeFileSync(file, out.endsWith('\n') ? out : `${out}\n`);
    console.log(section);
  } finally {
    for (const n of nodes) n.child.kill('SIGTERM');
    await Promise.all(nodes.map((n) => new Promise((r) => (n.child.exitCode !== null ? r() : n.child.on('exit', r)))));
    await sql.unsafe(`drop schema if exists "${schema}" cascade`);
    await sql.end();
    upstream.close();
  }
}

await main();
