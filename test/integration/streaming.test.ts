/**
 * The response path streams: a large upstream body reaches a slow client intact (backpressure,
 * not buffering), an upstream that dies mid-body gives the client a broken response rather than a
 * clean short one, and a client that leaves mid-response stops the upstream request.
 */
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneProxy, startGateway, startUpstream, type TestGateway, type Upstream } from '../helpers/harness.js';

// Large against what the socket buffers of two loopback hops can hold while the client pauses
// (kernel autotuning took them to 12 MiB in one CI run): the backpressure bound below has margin.
const BIG = 64 * 1024 * 1024;
const chunkOf = (i: number) => Buffer.alloc(64 * 1024, i % 251);

describe('response streaming', () => {
  let up: Upstream;
  let gw: TestGateway;
  let upstreamClosedEarly = 0;
  let upstreamWritten = 0;

  beforeAll(async () => {
    up = await startUpstream((req, res) => {
      if (req.url?.endsWith('/big') === true) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BIG });
        let i = 0;
        const more = (): void => {
          while (i < BIG / (64 * 1024)) {
            const ok = res.write(chunkOf(i++));
            upstreamWritten++;
            if (!ok) {
              res.once('drain', more);
              return;
            }
          }
          res.end();
        };
        res.on('close', () => {
          if (!res.writableFinished) upstreamClosedEarly++;
        });
        more();
        return;
      }
      if (req.url?.endsWith('/dies') === true) {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1000 });
        res.write('x'.repeat(100));
        setTimeout(() => res.destroy(), 50);
        return;
      }
      res.end('ok');
    });
    gw = await startGateway(oneProxy(up.url, []));
  });
  afterAll(async () => {
    await gw.close();
    await up.close();
  });

  it('delivers a 64 MiB body intact to a client that stops reading for a while', async () => {
    const expected = createHash('sha256');
    for (let i = 0; i < BIG / (64 * 1024); i++) expected.update(chunkOf(i));
    const { status, sha, size, writtenWhilePaused } = await new Promise<{ status: number; sha: string; size: number; writtenWhilePaused: number }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/api/big', localAddress: '127.0.0.2' }, (res) => {
        const h = createHash('sha256');
        let size = 0;
        let writtenWhilePaused = 0;
        res.pause();
        // While the client reads nothing, the upstream must be held back by backpressure, not
        // drained into gateway memory.
        setTimeout(() => {
          writtenWhilePaused = upstreamWritten;
          res.on('data', (c: Buffer) => {
            size += c.length;
            h.update(c);
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, sha: h.digest('hex'), size, writtenWhilePaused }));
          res.resume();
        }, 700);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(200);
    expect(size).toBe(BIG);
    expect(sha).toBe(expected.digest('hex'));
    // Socket buffers and stream queues hold well under 32 MiB; without backpressure all 1,024
    // chunks would be written.
    expect(writtenWhilePaused).toBeLessThan(BIG / (64 * 1024) / 2);
  });

  it('breaks the client response when the upstream dies mid-body, instead of ending it cleanly', async () => {
    const outcome = await new Promise<{ status: number; got: number; ended: boolean; error: string | null }>((resolve) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/api/dies', localAddress: '127.0.0.3' }, (res) => {
        let got = 0;
        res.on('data', (c: Buffer) => (got += c.length));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, got, ended: true, error: null }));
        res.on('error', (e) => resolve({ status: res.statusCode ?? 0, got, ended: false, error: e.message }));
        res.on('close', () => resolve({ status: res.statusCode ?? 0, got, ended: res.complete, error: 'closed' }));
      });
      req.on('error', (e) => resolve({ status: 0, got: 0, ended: false, error: e.message }));
      req.end();
    });
    expect(outcome.status).toBe(200);
    expect(outcome.got).toBe(100);
    expect(outcome.ended).toBe(false);
  });

  it('stops the upstream request when the client leaves mid-response', async () => {
    const before = upstreamClosedEarly;
    await new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: gw.port, path: '/api/big', localAddress: '127.0.0.4' }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.on('close', () => resolve());
      req.end();
      setTimeout(() => reject(new Error('no data')), 10_000).unref();
    });
    const deadline = Date.now() + 10_000;
    while (upstreamClosedEarly === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(upstreamClosedEarly).toBe(before + 1);
  });
});
