/**
 * The container image.
 *
 * STATIC CHECK ONLY for the Dockerfile: the development machines have a docker client but no
 * Docker engine, so the image is never built here. These tests read the Dockerfile and
 * .dockerignore and check their structure; they cannot prove that the image builds or runs.
 *
 * The HEALTHCHECK probe itself (dist/healthcheck.js) is tested for real: against a stub admin
 * listener answering 200 or 503, against nothing at all, and against a real gateway's /healthz.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/harness.js';

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** Dockerfile instructions, split into stages at each FROM (comments and line continuations handled). */
function dockerStages(text: string): Instruction[][] {
  const logical = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Instruction[][] = [];
  for (const line of logical) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (m === null) continue;
    const ins = { op: m[1]!.toUpperCase(), args: m[2]! };
    if (ins.op === 'FROM') stages.push([]);
    stages[stages.length - 1]?.push(ins);
  }
  return stages;
}

describe('Dockerfile (static check: no Docker engine here, the image is not built)', () => {
  const stages = dockerStages(readFileSync('Dockerfile', 'utf8'));
  const runtime = stages[stages.length - 1]!;
  const all = (op: string, stage = runtime) => stage.filter((i) => i.op === op).map((i) => i.args);

  it('is a multi-stage build on a Node 24 slim image', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s[0]!.args).toMatch(/^node:24-slim\b/);
    // The TypeScript build happens in an earlier stage, and only dist/ is carried over.
    expect(all('RUN', stages[0]).join('\n')).toContain('npm run build');
    expect(all('COPY')).toContain('--from=build /app/dist ./dist');
  });

  it('installs production dependencies only in the image that ships', () => {
    const runs = all('RUN').join('\n');
    expect(runs).toMatch(/npm ci\b[^\n]*--omit=dev/);
    expect(runs).not.toMatch(/npm (ci|install)(?![^\n]*--omit=dev)/);
    expect(all('ENV').join(' ')).toMatch(/NODE_ENV=production/);
    // No source, tests or dev tooling copied in.
    for (const c of all('COPY')) expect(c).not.toMatch(/\b(src|test|node_modules)\b/);
  });

  it('runs as a non-root user, given by number so runAsNonRoot can verify it', () => {
    const users = all('USER');
    expect(users.length).toBeGreaterThan(0);
    const last = users[users.length - 1]!;
    expect(last).toMatch(/^\d+(:\d+)?$/);
    expect(last.split(':')[0]).not.toBe('0');
    // USER comes before the entry point, so nothing runs as root at run time.
    const ops = runtime.map((i) => i.op);
    expect(ops.lastIndexOf('USER')).toBeLessThan(ops.indexOf('ENTRYPOINT'));
    // The store directory is writable by that user.
    expect(all('RUN').join('\n')).toContain(`chown ${last} /var/lib/ipgate`);
    expect(all('ENV').join(' ')).toContain('IPGATE_STORE=/var/lib/ipgate/store.json');
  });

  it('has a HEALTHCHECK that runs the node probe shipped in dist/', () => {
    const hc = all('HEALTHCHECK');
    expect(hc).toHaveLength(1);
    expect(hc[0]).toMatch(/CMD \["node", "dist\/healthcheck\.js"\]$/);
    // The probe is built from src/, so it is in dist/ (npm test builds dist/ before the tests run).
    expect(existsSync('src/healthcheck.ts')).toBe(true);
    expect(existsSync('dist/healthcheck.js')).toBe(true);
  });

  it('takes its config from a mounted file or the environment, and starts the gateway as PID 1 (exec form)', () => {
    expect(all('ENV').join(' ')).toMatch(/IPGATE_CONFIG=\/etc\/ipgate\/gateway\.yaml/);
    expect(all('ENTRYPOINT')).toEqual(['["node", "dist/cli.js"]']);
    expect(all('CMD')).toEqual(['["start"]']);
    expect(all('STOPSIGNAL')).toEqual(['SIGTERM']);
    expect(all('EXPOSE')).toContain('8080');
  });

  it('.dockerignore keeps local state, dependencies and build output out of the context', () => {
    const ignored = readFileSync('.dockerignore', 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const p of ['node_modules', 'dist', '.ipgate-data', '.git', 'test', 'test-results', '.env']) expect(ignored).toContain(p);
    // Nothing the build copies is ignored.
    for (const p of ['src', 'config', 'package.json', 'package-lock.json', 'tsconfig.json']) expect(ignored).not.toContain(p);
  });
});

function probe(adminListen: string | undefined): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.IPGATE_ADMIN_LISTEN;
    if (adminListen !== undefined) env.IPGATE_ADMIN_LISTEN = adminListen;
    const p = spawn(process.execPath, ['dist/healthcheck.js'], { env });
    let out = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (out += c.toString()));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

describe('the HEALTHCHECK probe (dist/healthcheck.js)', () => {
  let status = 200;
  const paths: string[] = [];
  let stub: Server;
  let port = 0;
  let gw: TestGateway;

  beforeAll(async () => {
    stub = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(status).end();
    });
    await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
    port = (stub.address() as AddressInfo).port;
    gw = await startGateway({});
  });
  afterAll(async () => {
    await new Promise<void>((r) => stub.close(() => r()));
    await gw.close();
  });

  it('exits 0 when /healthz on IPGATE_ADMIN_LISTEN answers 2xx, 1 when it answers 503', async () => {
    status = 200;
    expect((await probe(`127.0.0.1:${port}`)).code).toBe(0);
    status = 503;
    expect((await probe(`127.0.0.1:${port}`)).code).toBe(1);
    expect(paths).toEqual(['/healthz', '/healthz']);
  });

  it('probes a wildcard bind on loopback', async () => {
    status = 200;
    expect((await probe(`0.0.0.0:${port}`)).code).toBe(0);
  });

  it('exits 1 when nothing listens, and on a malformed address', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const freed = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect((await probe(`127.0.0.1:${freed}`)).code).toBe(1);
    const bad = await probe('not-an-address');
    expect(bad.code).toBe(1);
    expect(bad.out).toContain('IPGATE_ADMIN_LISTEN');
  });

  it("passes against a real gateway's admin listener", async () => {
    expect((await probe(`127.0.0.1:${gw.gateway.adminAddress.port}`)).code).toBe(0);
  });
});
