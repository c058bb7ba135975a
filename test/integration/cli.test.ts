import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { send } from '../helpers/harness.js';

// These run the built CLI (npm test builds dist/ first), exactly as a user would.
const CLI = 'dist/cli.js';
const dir = mkdtempSync(join(tmpdir(), 'ipgate-cli-'));

function check(yaml: string, env: Record<string, string> = {}) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  return spawnSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8', env: { ...process.env, ...env } });
}

describe('ipgate CLI', () => {
  it('check: validates the shipped config and prints compile statistics', () => {
    const r = spawnSync(process.execPath, [CLI, 'check', '--config', 'config/gateway.yaml'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('config config/gateway.yaml: OK');
    expect(r.stdout).toMatch(/active policies: 1/);
    expect(r.stdout).toMatch(/entries: 3 \(3 CIDR prefixes/);
    expect(r.stdout).toMatch(/trie: \d+ nodes, \d+ bytes/);
    expect(r.stdout).toContain('demo/echo /echo -> http://127.0.0.1:9001');
  });

  it('check: exits 1 and names the key path and value of a bad entry', () => {
    const r = check(`projects:
  - name: p
    apiProxies:
      - name: a
        basePath: /a
        upstream: { url: "http://127.0.0.1:1" }
        policies:
          - operationMetadata: { targetScope: ALL, targetPipeline: REQUEST }
            policy: { type: policy-white-ip, name: w, ipList: ["10.0.0.1/8"] }
`);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('projects[0].apiProxies[0].policies[0].policy.ipList[0]: 10.0.0.1/8: host bits set, did you mean 10.0.0.0/8?');
  });

  it('check: names the environment variable behind a bad override', () => {
    const r = check('{}\n', { IPGATE_LISTEN: 'not-an-address' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/listen: .*\[set by IPGATE_LISTEN\]/);
  });

  it('check: reports an unreadable file and an unknown command', () => {
    const r = spawnSync(process.execPath, [CLI, 'check', '--config', join(dir, 'missing.yaml')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('cannot read file');
    const u = spawnSync(process.execPath, [CLI, 'frobnicate'], { encoding: 'utf8' });
    expect(u.status).toBe(1);
    expect(u.stderr).toContain('unknown command "frobnicate"');
  });

  it('--help documents each command', () => {
    for (const cmd of [[], ['start'], ['check']]) {
      const r = spawnSync(process.execPath, [CLI, ...cmd, '--help'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^Usage: ipgate/);
    }
  });

  it('start: serves traffic with the demo backend, then exits 0 on SIGTERM', async () => {
    // Free ports are picked by the OS: bind, read, close.
    const { createServer } = await import('node:net');
    const freePort = () =>
      new Promise<number>((resolve) => {
        const s = createServer().listen(0, '127.0.0.1', () => {
          const p = (s.address() as { port: number }).port;
          s.close(() => resolve(p));
        });
      });
    const gwPort = await freePort();
    const demoPort = await freePort();
    const file = join(dir, 'start.yaml');
    writeFileSync(
      file,
      `listen: 127.0.0.1:${gwPort}
admin: { listen: "127.0.0.1:0" }
projects:
  - name: demo
    apiProxies:
      - name: echo
        basePath: /echo
        upstream: { url: "http://127.0.0.1:${demoPort}" }
        policies:
          - operationMetadata: { targetScope: ALL, targetPipeline: REQUEST }
            policy: { type: policy-white-ip, name: local, ipList: [127.0.0.1] }
`,
    );
    const child = spawn(process.execPath, [CLI, 'start', '--config', file, '--demo-backend', `127.0.0.1:${demoPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      for (let i = 0; i < 100 && !out.includes('"event":"started"'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(out).toContain('"event":"started"');
      const ok = await send(gwPort, '/echo/hi', { from: '127.0.0.1' });
      expect(ok.status).toBe(200);
      expect(ok.json().echo).toBe(true);
      expect((await send(gwPort, '/echo/hi', { from: '127.0.0.3' })).status).toBe(403);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(out).toContain('"event":"stopped"');
  });
});
