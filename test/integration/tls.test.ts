/**
 * HTTPS on the traffic listener, and certificate reload from the files without a restart. The
 * certificates are made with openssl at test time; each has its own CN, so the certificate a new
 * connection is given tells which pair the gateway is serving.
 */
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { oneProxy, policy, sendRaw, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';
import { makeCertPair, type CertPair } from '../helpers/tls-certs.js';

interface HttpsReply {
  readonly status: number;
  readonly text: string;
  /** CN of the certificate the server presented on this request's connection. */
  readonly cn: string | undefined;
}

function get(port: number, path: string, opts: { from?: string; agent?: Agent } = {}): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1',
      port,
      path,
      localAddress: opts.from ?? '127.0.0.1',
      // Self-signed test certificates; the test checks which one was presented by its CN.
      rejectUnauthorized: false,
      agent: opts.agent ?? false,
    });
    req.on('response', (res) => {
      const cn = (res.socket as TLSSocket).getPeerCertificate().subject?.CN;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), cn: Array.isArray(cn) ? cn[0] : cn }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `cond` holds; a generous deadline, because file watching is asynchronous. */
async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(50);
  }
}

/** Replace `to` the way certificate tools do: write a temporary file, then rename it over. */
function replaceAtomically(from: string, to: string): void {
  copyFileSync(from, to + '.tmp');
  renameSync(to + '.tmp', to);
}

describe('TLS on the traffic listener, with certificate reload', () => {
  let dir: string;
  let live: { certFile: string; keyFile: string };
  let a: CertPair;
  let b: CertPair;
  let c: CertPair;
  let up: Upstream;
  let gw: TestGateway;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipgate-tls-'));
    // Pairs are generated outside the watched directory, so making them triggers nothing.
    mkdirSync(join(dir, 'gen'));
    mkdirSync(join(dir, 'live'));
    a = makeCertPair(join(dir, 'gen'), 'a', 'ipgate-a');
    b = makeCertPair(join(dir, 'gen'), 'b', 'ipgate-b');
    c = makeCertPair(join(dir, 'gen'), 'c', 'ipgate-c');
    live = { certFile: join(dir, 'live', 'tls.crt'), keyFile: join(dir, 'live', 'tls.key') };
    copyFileSync(a.certFile, live.certFile);
    copyFileSync(a.keyFile, live.keyFile);
    up = await startUpstream();
    gw = await startGateway(oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.1'])], { gateway: { tls: live } }));
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS with the configured certificate and tells the upstream the scheme was https', async () => {
    const before = up.requests.length;
    const r = await get(gw.port, '/api/hello');
    expect(r.status).toBe(200);
    expect(r.cn).toBe('ipgate-a');
    expect(up.requests.slice(before).map((q) => q.headers['x-forwarded-proto'])).toEqual(['https']);
  });

  it('enforces policy on the TLS peer address', async () => {
    const r = await get(gw.port, '/api/hello', { from: '127.0.0.2' });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.text).fault.faultString).toBe('Client IP 127.0.0.2 is not allowed');
  });

  it('does not answer plain HTTP on the TLS listener', async () => {
    const text = await sendRaw(gw.port, 'GET /api/hello HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    expect(text).toBe('');
  });

  it('reloads a certificate replaced by rename; new connections get it, open ones keep theirs', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect((await get(gw.port, '/api/before', { agent })).cn).toBe('ipgate-a');
      replaceAtomically(b.keyFile, live.keyFile);
      replaceAtomically(b.certFile, live.certFile);
      await until(async () => (await get(gw.port, '/api/poll')).cn === 'ipgate-b', 'the new certificate');
      const reloaded = gw.logs.events('tls_reloaded');
      expect(reloaded.at(-1)).toMatchObject({ level: 30, certFile: live.certFile, keyFile: live.keyFile, subject: 'CN=ipgate-b' });
      // The keep-alive connection opened before the reload was not cut, and still has pair A.
      const old = await get(gw.port, '/api/after', { agent });
      expect(old.status).toBe(200);
      expect(old.cn).toBe('ipgate-a');
    } finally {
      agent.destroy();
    }
  });

  it('keeps the current certificate when the new key does not match, and logs an error', async () => {
    const failed = gw.logs.events('tls_reload_failed').length;
    // Overwritten in place (not renamed): the key of pair C next to the certificate of pair B.
    writeFileSync(live.keyFile, c.key);
    await until(() => gw.logs.events('tls_reload_failed').length > failed, 'tls_reload_failed');
    const logged = gw.logs.events('tls_reload_failed').at(-1)!;
    expect(logged.level).toBe(50);
    expect(String(logged.err)).toMatch(/key values mismatch/);
    expect((await get(gw.port, '/api/still-b')).cn).toBe('ipgate-b');
  });

  it('keeps the current certificate while a certificate file is half written, then takes the complete one', async () => {
    const failed = gw.logs.events('tls_reload_failed').length;
    const reloaded = gw.logs.events('tls_reloaded').length;
    // The key of C is in place from the previous test; now a truncated certificate of C.
    writeFileSync(live.certFile, c.cert.subarray(0, Math.floor(c.cert.length / 2)));
    await until(() => gw.logs.events('tls_reload_failed').length > failed, 'tls_reload_failed');
    expect((await get(gw.port, '/api/still-b')).cn).toBe('ipgate-b');
    // The writer finishes: the watcher survived the failures and picks the complete pair up.
    writeFileSync(live.certFile, c.cert);
    await until(async () => (await get(gw.port, '/api/poll')).cn === 'ipgate-c', 'certificate C');
    expect(gw.logs.events('tls_reloaded').length).toBe(reloaded + 1);
    expect(gw.logs.events('tls_reloaded').at(-1)).toMatchObject({ subject: 'CN=ipgate-c' });
  });

  it('keeps serving when the files disappear, and logs the failed reload', async () => {
    const failed = gw.logs.events('tls_reload_failed').length;
    rmSync(live.certFile);
    await until(() => gw.logs.events('tls_reload_failed').length > failed, 'tls_reload_failed');
    expect(String(gw.logs.events('tls_reload_failed').at(-1)!.err)).toMatch(/ENOENT/);
    expect((await get(gw.port, '/api/still-c')).cn).toBe('ipgate-c');
    copyFileSync(c.certFile, live.certFile);
  });
});

describe('TLS configuration', () => {
  let dir: string;
  let a: CertPair;
  let b: CertPair;
  let up: Upstream;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ipgate-tls-cfg-'));
    a = makeCertPair(dir, 'a', 'ipgate-a');
    b = makeCertPair(dir, 'b', 'ipgate-b');
    up = await startUpstream();
  });
  afterAll(async () => {
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (tls: unknown) => oneProxy(up.url, [policy('policy-white-ip', 'allow', ['127.0.0.1'])], { gateway: { tls } });

  it('refuses to start when a file cannot be read, naming the key', async () => {
    await expect(startGateway(config({ certFile: join(dir, 'missing.crt'), keyFile: a.keyFile }))).rejects.toThrow(/tls\.certFile: cannot read .*missing\.crt/);
    await expect(startGateway(config({ certFile: a.certFile, keyFile: join(dir, 'missing.key') }))).rejects.toThrow(/tls\.keyFile: cannot read .*missing\.key/);
  });

  it('refuses to start when the key does not belong to the certificate', async () => {
    await expect(startGateway(config({ certFile: a.certFile, keyFile: b.keyFile }))).rejects.toThrow(/not a usable certificate and key: .*key values mismatch/);
  });

  it('takes the files from IPGATE_TLS_CERT and IPGATE_TLS_KEY', async () => {
    const gw = await startGateway(config(null), { env: { IPGATE_TLS_CERT: b.certFile, IPGATE_TLS_KEY: b.keyFile } });
    try {
      const r = await get(gw.port, '/api/env');
      expect(r.status).toBe(200);
      expect(r.cn).toBe('ipgate-b');
    } finally {
      await gw.close();
    }
  });

  it('reloads when a Kubernetes-style secret volume swaps its ..data symlink', async () => {
    // The layout kubelet writes: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/; an update
    // writes a new timestamped directory and renames a new ..data symlink over the old one.
    const vol = join(dir, 'k8s');
    const version = (name: string, p: CertPair) => {
      mkdirSync(join(vol, name));
      copyFileSync(p.certFile, join(vol, name, 'tls.crt'));
      copyFileSync(p.keyFile, join(vol, name, 'tls.key'));
    };
    mkdirSync(vol);
    version('..v1', a);
    symlinkSync('..v1', join(vol, '..data'));
    symlinkSync('..data/tls.crt', join(vol, 'tls.crt'));
    symlinkSync('..data/tls.key', join(vol, 'tls.key'));
    const gw = await startGateway(config({ certFile: join(vol, 'tls.crt'), keyFile: join(vol, 'tls.key') }));
    try {
      expect((await get(gw.port, '/api/k8s')).cn).toBe('ipgate-a');
      version('..v2', b);
      symlinkSync('..v2', join(vol, '..data_tmp'));
      renameSync(join(vol, '..data_tmp'), join(vol, '..data'));
      await until(async () => (await get(gw.port, '/api/poll')).cn === 'ipgate-b', 'the swapped certificate');
      expect(gw.logs.events('tls_reload_failed')).toEqual([]);
    } finally {
      await gw.close();
    }
  });

  it('validates the tls keys at load time', () => {
    expect(parseConfigText('{}', 'x.yaml').tls).toBeNull();
    expect(() => parseConfigText('tls: { certFile: a.crt }', 'x.yaml')).toThrow('tls.keyFile');
    expect(() => parseConfigText('tls: { certFile: a.crt, keyFile: a.key, keyfile: b }', 'x.yaml')).toThrow(/tls: .*keyfile/);
    expect(() => parseConfigText('{}', 'x.yaml', { IPGATE_TLS_CERT: 'a.crt' })).toThrow(/tls\.keyFile/);
  });
});
