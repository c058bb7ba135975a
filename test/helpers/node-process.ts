/**
 * Real gateway node processes for the cluster tests: `node dist/cli.js start --config FILE`, as an
 * operator runs them (npm test builds dist/ first). Each node listens on ports the OS picks; they
 * are read from its "started" log line. Its JSON log lines are kept for assertions.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { send } from './harness.js';

const CLI = 'dist/cli.js';
const dir = mkdtempSync(join(tmpdir(), 'ipgate-cluster-'));

export const ADMIN_TOKEN = 'cluster-admin-token-0123456789';

export interface NodeProcess {
  readonly name: string;
  readonly configFile: string;
  readonly child: ChildProcess;
  readonly trafficPort: number;
  readonly adminPort: number;
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or signal) when the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  events(name: string): Record<string, unknown>[];
  /** The first log line (already seen or still to come) matching `pred`. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function writeConfig(name: string, config: Record<string, unknown>): string {
  const file = join(dir, `${name}-${Date.now()}-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, stringify(config));
  return file;
}

export async function startNode(name: string, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<NodeProcess> {
  const configFile = writeConfig(name, { listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, log: { level: 'info' }, ...config });
  const child = spawn(process.execPath, [CLI, 'start', '--config', configFile], {
    env: { ...process.env, IPGATE_ADMIN_TOKEN: ADMIN_TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let stderr = '';
  let partial = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (text: string) => {
    partial += text;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      logs.push(parsed);
      for (const w of [...waiters]) {
        if (w.pred(parsed)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(parsed);
        }
      }
    }
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (t: string) => (stderr += t));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));

  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 20_000): Promise<Record<string, unknown>> => {
    const seen = logs.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: no matching log line within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`)), timeoutMs);
      waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  };

  const started = await Promise.race([
    waitForLog((l) => l.event === 'started', 30_000),
    exited.then(({ code, signal }) => {
      throw new Error(`${name} exited (${code ?? signal}) before it started:\n${stderr}\n${logs.map((l) => JSON.stringify(l)).join('\n').slice(-4000)}`);
    }),
  ]);
  const port = (hostPort: unknown): number => Number(String(hostPort).split(':').pop());
  return {
    name,
    configFile,
    child,
    trafficPort: port(started.listen),
    adminPort: port(started.admin),
    logs,
    exited,
    events: (event) => logs.filter((l) => l.event === event),
    waitForLog,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}

export interface AdminReply {
  status: number;
  etag: string | undefined;
  body: any;
}

/** One admin API call to a node. */
export async function admin(node: { adminPort: number }, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<AdminReply> {
  const h: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}`, ...headers };
  let payload: string | undefined;
  if (body !== undefined) {
    payload = JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const r = await send(node.adminPort, path, { method, headers: h, body: payload });
  return { status: r.status, etag: r.headers.etag as string | undefined, body: r.text === '' ? null : r.json() };
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last === undefined ? '' : `: ${(last as Error).message}`}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
