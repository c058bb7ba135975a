import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { policy, send, startGateway } from '../helpers/harness.js';

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
    const main = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' });
    expect(main.status).toBe(0);
    expect(main.stdout).toMatch(/^Usage: ipgate <command>/);
    for (const cmd of ['start', 'check', 'export', 'import', 'ip-check']) {
      expect(main.stdout).toMatch(new RegExp(`^  ${cmd} `, 'm'));
      const r = spawnSync(process.execPath, [CLI, cmd, '--help'], { encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: ipgate ${cmd} `));
    }
  });

  it('check: drainTimeoutMs must be a non-negative integer, from the file or IPGATE_DRAIN_TIMEOUT_MS', () => {
    const negative = check('drainTimeoutMs: -1\n');
    expect(negative.status).toBe(1);
    expect(negative.stderr).toMatch(/^  drainTimeoutMs: .*>=0.* \(got -1\)$/m);
    const fraction = check('drainTimeoutMs: 2.5\n');
    expect(fraction.status).toBe(1);
    expect(fraction.stderr).toMatch(/^  drainTimeoutMs: .*expected int.*\(got 2\.5\)$/m);
    const word = check('{}\n', { IPGATE_DRAIN_TIMEOUT_MS: 'soon' });
    expect(word.status).toBe(1);
    expect(word.stderr).toMatch(/^  drainTimeoutMs: .*number.*\(got "soon"\) \[set by IPGATE_DRAIN_TIMEOUT_MS\]$/m);
    expect(check('drainTimeoutMs: 0\n').status).toBe(0);
    expect(check('{}\n', { IPGATE_DRAIN_TIMEOUT_MS: '45000' }).status).toBe(0);
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
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
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

describe('ipgate ip-check', () => {
  const TOKEN = 'cli-ip-check-admin-token-0123456789';
  const projects = [
    {
      name: 'shop',
      apiProxies: [
        {
          name: 'orders',
          basePath: '/orders',
          upstream: { url: 'http://127.0.0.1:1' },
          policies: [
            policy('policy-white-ip', 'offices', ['198.51.100.0/24']),
            policy('policy-black-ip', 'no-kiosk', ['198.51.100.66'], { enforce: false }, { targetScope: 'ENDPOINT', targetEndpoint: '/{id}/admin', targetEndpointHTTPMethod: 'GET' }),
          ],
        },
      ],
    },
  ];
  const configFile = join(dir, 'ip-check.yaml');
  writeFileSync(configFile, stringify({ projects }));

  // IPGATE_CONFIG is cleared so that only the flags say where policies come from.
  const ipCheck = (args: string[]) => spawnSync(process.execPath, [CLI, 'ip-check', ...args], { encoding: 'utf8', env: { ...process.env, IPGATE_CONFIG: '' } });

  it('prints the JSON the admin ip-check endpoint returns, and exits 0 allowed / 1 denied', async () => {
    // The admin API serves ip-check from its store, seeded from the same projects.
    const gw = await startGateway({ projects, store: { file: join(dir, 'ip-check-store.json') } }, { env: { IPGATE_ADMIN_TOKEN: TOKEN } });
    try {
      const cases: { body: Record<string, unknown>; flags: string[]; decision: string; exit: number }[] = [
        // Allowed through X-Forwarded-For from a trusted peer; the dry-run block list would have rejected.
        {
          body: { remoteAddress: '127.0.0.1', headers: { 'X-Forwarded-For': '198.51.100.66' }, path: '/7/admin', method: 'GET' },
          flags: ['--remote-address', '127.0.0.1', '--header', 'X-Forwarded-For: 198.51.100.66', '--path', '/7/admin', '--method', 'get'],
          decision: 'allowed',
          exit: 0,
        },
        { body: { ip: '203.0.113.9' }, flags: ['--ip', '203.0.113.9'], decision: 'denied', exit: 1 },
      ];
      for (const c of cases) {
        const admin = await send(gw.gateway.adminAddress.port, '/apiops/projects/shop/apiProxies/orders/ip-check/', {
          method: 'POST',
          headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
          body: JSON.stringify(c.body),
        });
        expect(admin.status).toBe(200);
        const r = ipCheck(['--config', configFile, '--project', 'shop', '--proxy', 'orders', ...c.flags]);
        expect(r.status, r.stderr).toBe(c.exit);
        const offline = JSON.parse(r.stdout) as Record<string, unknown>;
        expect(offline.decision).toBe(c.decision);
        // Identical but for the revision: a file has none.
        expect(offline).toEqual({ ...admin.json(), revision: null });
      }
    } finally {
      await gw.close();
    }
  });

  it('matches endpoint patterns on the canonical path, as live traffic does', () => {
    const base = ['--config', configFile, '--project', 'shop', '--proxy', 'orders', '--ip', '198.51.100.66', '--method', 'GET'];
    const verdict = (path: string) => {
      const r = ipCheck([...base, '--path', path]);
      expect(r.status, r.stderr).toBe(0);
      return (JSON.parse(r.stdout) as { policies: { policy: string; result: string }[] }).policies.find((p) => p.policy === 'no-kiosk')!.result;
    };
    expect(verdict('/7/admin')).toBe('dry_run_reject');
    for (const path of ['/7/x/../admin', '/7//admin', '/7/%61dmin', '/7/./admin?x=1', '/7/public/%2e%2e/admin']) expect(verdict(path), path).toBe('dry_run_reject');
    expect(verdict('/7/administrator')).toBe('not_applicable');
    const bad = ipCheck([...base, '--path', '/7/..%2fadmin']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--path: encoded slash');
  });

  it('--export takes the policies from an export instead of the config', () => {
    const exported = join(dir, 'ip-check-export.yaml');
    const changed = structuredClone(projects);
    changed[0]!.apiProxies[0]!.policies[0] = policy('policy-white-ip', 'offices', ['203.0.113.0/24']);
    writeFileSync(exported, stringify({ environments: ['production'], projects: changed }));
    const args = ['--project', 'shop', '--proxy', 'orders', '--ip', '203.0.113.9'];
    expect(ipCheck(['--config', configFile, ...args]).status).toBe(1);
    const r = ipCheck(['--export', exported, ...args]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ decision: 'allowed', environment: 'production', policies: [{ policy: 'offices', result: 'pass', matchedEntry: '203.0.113.0/24' }, { result: 'not_applicable' }] });
  });

  it('exits 2 on errors, naming the flag or the proxy', () => {
    const base = ['--config', configFile, '--project', 'shop', '--proxy', 'orders'];
    const cases: [string[], string][] = [
      [['--project', 'shop', '--proxy', 'orders', '--ip', '1.2.3.4'], 'give --config FILE or --export FILE'],
      [['--config', configFile, '--project', 'shop', '--ip', '1.2.3.4'], '--proxy is required'],
      [base, '--ip: give ip, or remoteAddress'],
      [[...base, '--ip', '1.2.3.4', '--method', 'g3t'], '--method:'],
      [[...base, '--remote-address', '127.0.0.1', '--header', 'no colon here'], "--header: expected 'Name: value'"],
      [['--config', configFile, '--project', 'shop', '--proxy', 'carts', '--ip', '1.2.3.4'], `no API proxy shop/carts in ${configFile}`],
      [[...base, '--ip', '1.2.3.4', '--environment', 'staging'], 'API proxy orders is not deployed to staging'],
      [[...base, '--ip', '1.2.3.4', '--bogus'], "Unknown option '--bogus'"],
    ];
    for (const [args, message] of cases) {
      const r = ipCheck(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stdout).toBe('');
    }
  });
});
