/**
 * `workers: 2` end to end: the built CLI as a real primary with two real worker processes on one
 * traffic port, a real upstream, and clients bound to 127.0.0.x. Which worker served a request is
 * read from the worker's own access-log line for the request's X-Correlation-Id: every line a
 * worker writes carries `worker: <id>` and its pid.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, startUpstream, type Upstream } from '../helpers/harness.js';

// Run against the built CLI (npm test builds dist/ first), as an operator would.
const CLI = 'dist/cli.js';
const TOKEN = 'workers-test-admin-token-0123456789';
const POL = '/apiops/projects/p/apiProxies/api/policies/';

type Line = Record<string, unknown>;

/** The gateway's stdout as JSON lines, with a way to wait for a line that has not arrived yet. */
class Logs {
  readonly lines: Line[] = [];
  private partial = '';
  private waiters: { pred: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];

  feed(chunk: Buffer): void {
    const parts = (this.partial + chunk.toString('utf8')).split('\n');
    this.partial = parts.pop() ?? '';
    for (const text of parts) {
      if (text.trim() === '') continue;
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        continue; // not a log line
      }
      this.lines.push(line);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(line)) return true;
        w.resolve(line);
        return false;
      });
    }
  }

  /** The first line, past or future, that satisfies `pred` (bounded by the test timeout). */
  waitFor(pred: (l: Line) => boolean): Promise<Line> {
    const seen = this.lines.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  /** The worker id that wrote the access line of each correlation id, once all have arrived. */
  async servedBy(correlationIds: readonly string[]): Promise<number[]> {
    const out: number[] = [];
    for (const id of correlationIds) {
      const l = await this.waitFor((x) => x.event === 'access' && x.correlationId === id);
      out.push(l.worker as number);
    }
    return out;
  }
}

interface Reply {
  status: number;
  correlationId: string;
  body: string;
}

/** One request on a keep-alive agent with a single socket: every request of an agent uses the same connection. */
function sendOn(agent: Agent, port: number, path: string, from: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent, localAddress: from }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, correlationId: String(res.headers['x-correlation-id']), body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function fresh(port: number, from: string, n: number): Promise<Reply[]> {
  const out: Reply[] = [];
  for (let i = 0; i < n; i++) {
    const r = await send(port, '/api/x', { from });
    out.push({ status: r.status, correlationId: String(r.headers['x-correlation-id']), body: r.text });
  }
  return out;
}

function metricValue(text: string, series: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return null;
}

describe('workers: 2', () => {
  let up: Upstream;
  let child: ChildProcess;
  let exited: Promise<number | null>;
  const logs = new Logs();
  let port = 0;
  let adminPort = 0;
  let primaryPid = 0;
  /** Worker id → pid, from the primary's worker_ready lines. */
  const workers = new Map<number, number>();

  const admin = async (method: string, path: string, body?: unknown) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
    if (payload !== undefined) headers['content-type'] = 'application/json';
    const r = await send(adminPort, path, { method, headers, body: payload });
    return { status: r.status, text: r.text, body: r.text === '' ? null : r.json() };
  };

  beforeAll(async () => {
    up = await startUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-workers-'));
    const file = join(dir, 'gateway.yaml');
    writeFileSync(
      file,
      `listen: 127.0.0.1:0
workers: 2
admin:
  listen: 127.0.0.1:0
  tokens: [{ name: ci, sha256: ${createHash('sha256').update(TOKEN).digest('hex')}, role: admin }]
store: { file: ${join(dir, 'store.json')} }
log: { access: all }
projects:
  - name: p
    apiProxies:
      - name: api
        basePath: /api
        upstream: { url: "${up.url}" }
        policies:
          - operationMetadata: { targetScope: ALL, targetPipeline: REQUEST }
            policy: { type: policy-black-ip, name: block-docs, ipList: [203.0.113.0/24] }
`,
    );
    child = spawn(process.execPath, [CLI, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.on('data', (c: Buffer) => logs.feed(c));
    exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    const started = await logs.waitFor((l) => l.event === 'started');
    primaryPid = started.pid as number;
    port = Number(String(started.listen).split(':').pop());
    adminPort = Number(String(started.admin).split(':').pop());
    for (const l of logs.lines) if (l.event === 'worker_ready') workers.set(l.workerId as number, l.workerPid as number);
  });

  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await up.close();
  });

  it('forks two workers that both serve the one traffic port', async () => {
    expect(workers.size).toBe(2);
    expect([...workers.values()]).not.toContain(primaryPid);
    const replies = await fresh(port, '127.0.0.2', 20);
    expect(replies.map((r) => r.status)).toEqual(new Array(20).fill(200));
    const servedBy = await logs.servedBy(replies.map((r) => r.correlationId));
    // Each access line was written by the worker process that handled the request.
    expect(new Set(servedBy)).toEqual(new Set(workers.keys()));
    const lines = logs.lines.filter((l) => l.event === 'access' && replies.some((r) => r.correlationId === l.correlationId));
    for (const l of lines) expect(l.pid).toBe(workers.get(l.worker as number));
  });

  it('/metrics on the admin listener adds up both workers’ counters', async () => {
    const r = await send(adminPort, '/metrics');
    expect(r.status).toBe(200);
    // Both workers served some of the 20 requests above, so no single process counted all 20.
    expect(metricValue(r.text, 'ipgate_requests_total{proxy="api",decision="allowed",status_class="2xx"}')).toBe(20);
    expect(metricValue(r.text, 'ipgate_workers')).toBe(2);
    expect(metricValue(r.text, 'ipgate_snapshot_revision')).toBe(1);
    // The histogram keeps its per-proxy series through the aggregation.
    expect(metricValue(r.text, 'ipgate_request_duration_seconds_count{proxy="api"}')).toBe(20);
  });

  it('reports a policy change only once both workers enforce it, then denies on every connection', async () => {
    expect((await send(port, '/api/x', { from: '127.0.0.9' })).status).toBe(200);
    const [stopped, running] = [...workers.entries()] as [[number, number], [number, number]];
    // A stopped worker cannot apply anything, so the deployment must wait for it.
    process.kill(stopped[1], 'SIGSTOP');
    let answered = false;
    let write: Promise<Awaited<ReturnType<typeof admin>>>;
    try {
      write = admin('POST', `${POL}block-nine/`, {
        operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST', deploy: true, deployTargetEnvironmentNameList: ['production'], order: 1 },
        policy: { type: 'policy-black-ip', ipList: ['127.0.0.9'] },
      });
      void write.then(() => (answered = true));
      // The running worker has the new revision in force...
      const installed = await logs.waitFor((l) => l.event === 'snapshot_installed' && l.worker === running[0] && (l.revision as number) > 1);
      expect(installed.revision).toBe(2);
      // ...and the write has still not answered: the other worker has not confirmed it.
      expect(answered).toBe(false);
    } finally {
      process.kill(stopped[1], 'SIGCONT');
    }
    const r = await write;
    expect(r.status).toBe(200);
    expect(r.body.deploymentResult.success).toBe(true);
    expect(r.body.deploymentResult.deploymentResults[0]).toMatchObject({ environmentName: 'production', success: true, message: 'Deployment successful: revision 2 is enforced by every worker (2)' });
    await logs.waitFor((l) => l.event === 'snapshot_installed' && l.worker === stopped[0] && l.revision === 2);
    // The workers installed the snapshot the primary compiled, not one of their own: the same
    // compile, to the microsecond (a worker that compiled would have timed its own).
    // Each process batches its log writes, so the primary's line may arrive after the workers'.
    const primaryInstall = await logs.waitFor((l) => l.event === 'snapshot_installed' && l.worker === undefined && l.revision === 2);
    const workerInstalls = logs.lines.filter((l) => l.event === 'snapshot_installed' && l.worker !== undefined && l.revision === 2);
    expect(workerInstalls).toHaveLength(2);
    for (const l of workerInstalls) expect((l.stats as { compileMs: number }).compileMs).toBe((primaryInstall.stats as { compileMs: number }).compileMs);

    // Every fresh connection, whichever worker takes it, is now denied.
    const denied = await fresh(port, '127.0.0.9', 20);
    expect(denied.map((d) => d.status)).toEqual(new Array(20).fill(403));
    expect(denied.every((d) => JSON.parse(d.body).fault.faultCode === 'IP_BLOCKED')).toBe(true);
    expect(new Set(await logs.servedBy(denied.map((d) => d.correlationId)))).toEqual(new Set(workers.keys()));
    // The node reports the revision its workers enforce.
    const nodes = await admin('GET', '/apiops/nodes/');
    expect(nodes.body.resultList[0]).toMatchObject({ revision: 2, failedRevision: null });
  });

  it('replaces a killed worker while the other keeps serving, and the replacement enforces the current revision', async () => {
    // Keep-alive connections, each pinned to the worker that accepted it.
    const agents: { agent: Agent; worker: number }[] = [];
    for (let i = 0; i < 20 && new Set(agents.map((a) => a.worker)).size < 2; i++) {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const r = await sendOn(agent, port, '/api/x', '127.0.0.3');
      expect(r.status).toBe(200);
      const [worker] = await logs.servedBy([r.correlationId]);
      agents.push({ agent, worker: worker! });
    }
    const victim = agents[0]!.worker;
    const survivor = [...workers.keys()].find((w) => w !== victim)!;
    const survivorAgents = agents.filter((a) => a.worker === survivor).map((a) => a.agent);
    expect(survivorAgents.length).toBeGreaterThan(0);

    // Load on the survivor's connections, from before the kill until the replacement is live.
    let done = false;
    const replies: Reply[] = [];
    const failures: unknown[] = [];
    const loops = survivorAgents.map(async (agent) => {
      while (!done) {
        try {
          replies.push(await sendOn(agent, port, '/api/x', '127.0.0.3'));
        } catch (err) {
          failures.push(err);
        }
      }
    });
    await logs.waitFor((l) => l.event === 'access' && l.worker === survivor && replies.some((r) => r.correlationId === l.correlationId));

    process.kill(workers.get(victim)!, 'SIGKILL');
    const exit = await logs.waitFor((l) => l.event === 'worker_exited' && l.workerId === victim);
    expect(exit.signal).toBe('SIGKILL');
    const ready = await logs.waitFor((l) => l.event === 'worker_ready' && !workers.has(l.workerId as number));
    // The load goes on until the survivor has served on these connections after the replacement came up.
    await logs.waitFor((l) => l.event === 'access' && l.worker === survivor && (l.time as number) > (ready.time as number));
    done = true;
    await Promise.all(loops);
    for (const a of agents) a.agent.destroy();

    // Every request on the survivor's connections succeeded, before, during and after the death.
    expect(failures).toEqual([]);
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(new Set(await logs.servedBy(replies.map((r) => r.correlationId)))).toEqual(new Set([survivor]));
    const served = logs.lines.filter((l) => l.event === 'access' && replies.some((r) => r.correlationId === l.correlationId));
    expect(served.some((l) => (l.time as number) > (exit.time as number) && (l.time as number) < (ready.time as number))).toBe(true);

    // The replacement started with revision 2 and takes its share of new connections.
    const replacement = ready.workerId as number;
    expect(ready.revision).toBe(2);
    workers.delete(victim);
    workers.set(replacement, ready.workerPid as number);
    const denied = await fresh(port, '127.0.0.9', 20);
    expect(denied.map((d) => d.status)).toEqual(new Array(20).fill(403));
    expect(new Set(await logs.servedBy(denied.map((d) => d.correlationId)))).toEqual(new Set([survivor, replacement]));
    const allowed = await fresh(port, '127.0.0.2', 4);
    expect(allowed.map((d) => d.status)).toEqual([200, 200, 200, 200]);

    const m = await send(adminPort, '/metrics');
    expect(metricValue(m.text, 'ipgate_workers')).toBe(2);
    expect(metricValue(m.text, 'ipgate_worker_restarts_total')).toBe(1);
    expect(metricValue(m.text, 'ipgate_snapshot_revision')).toBe(2);
  });

  it('SIGTERM drains both workers, then the primary exits 0', async () => {
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const [id, pid] of workers) {
      expect(logs.lines.some((l) => l.event === 'stopped' && l.worker === id && l.pid === pid)).toBe(true);
      expect(logs.lines.some((l) => l.event === 'worker_exited' && l.workerId === id && l.code === 0)).toBe(true);
    }
  });
});

describe('workers config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ipgate-workers-config-'));
  const check = (yaml: string, env: Record<string, string> = {}) => {
    const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(file, yaml);
    return spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8', env: { ...process.env, ...env } });
  };

  it('accepts a positive count or "auto", from the file or IPGATE_WORKERS, and names the key otherwise', () => {
    // Each check is a node process start: keep the list short.
    expect(check('workers: auto\n').status).toBe(0);
    expect(check('{}\n', { IPGATE_WORKERS: '3' }).status).toBe(0);
    for (const bad of ['0', '1.5', 'many']) {
      const r = check(`workers: ${bad}\n`);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^ {2}workers: must be a positive integer \(at most 1024\) or "auto"/m);
    }
    const env = check('{}\n', { IPGATE_WORKERS: 'lots' });
    expect(env.status).toBe(1);
    expect(env.stderr).toMatch(/workers: .*\(got "lots"\) \[set by IPGATE_WORKERS\]/);
  }, 60_000);
});

describe('workers: IP group expiry', () => {
  it('reaches every worker: the primary recompiles at the expiry and sends the snapshot', async () => {
    const up = await startUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'ipgate-workers-expiry-'));
    const file = join(dir, 'gateway.yaml');
    const expiresAt = new Date(Date.now() + 6000).toISOString();
    // JSON is YAML too.
    const config = {
      listen: '127.0.0.1:0',
      workers: 2,
      admin: { listen: '127.0.0.1:0' },
      projects: [
        {
          name: 'p',
          ipGroups: [{ name: 'temp', entries: [{ ip: '127.0.0.77', expiresAt }] }],
          apiProxies: [
            {
              name: 'api',
              basePath: '/api',
              upstream: { url: up.url },
              policies: [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-black-ip', name: 'temp-block', ipGroupIdList: ['temp'] } }],
            },
          ],
        },
      ],
    };
    writeFileSync(file, JSON.stringify(config));
    const logs = new Logs();
    const child = spawn(process.execPath, [CLI, 'start', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.on('data', (c: Buffer) => logs.feed(c));
    try {
      const started = await logs.waitFor((l) => l.event === 'started');
      const port = Number(String(started.listen).split(':').pop());
      expect((await fresh(port, '127.0.0.77', 4)).map((r) => r.status)).toEqual([403, 403, 403, 403]);
      // Polled, not timed: once the entry has expired, both workers have installed the recompile.
      const workerIds = new Set<number>();
      await logs.waitFor((l) => {
        if (l.event === 'snapshot_installed' && l.worker !== undefined && l.revision === 1 && (l.stats as { policies: number }).policies === 1 && (l.entries as number) === 0) workerIds.add(l.worker as number);
        return workerIds.size === 2;
      });
      expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(expiresAt));
      const after = await fresh(port, '127.0.0.77', 10);
      expect(after.map((r) => r.status)).toEqual(new Array(10).fill(200));
    } finally {
      child.kill('SIGKILL');
      await up.close();
    }
  }, 30_000);
});
