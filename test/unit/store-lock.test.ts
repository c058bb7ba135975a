/**
 * The file store's lock: who holds it is decided by pid only where a pid means something (the same
 * host and PID namespace), and by the holder's heartbeat everywhere else. A bare pid meant nothing
 * across containers sharing a volume, where every gateway is PID 1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { acquireStoreLock, lockHolder, lockPath, releaseStoreLock, STALE_MS } from '../../src/controlplane/store/lock.js';

const dir = mkdtempSync(join(tmpdir(), 'ipgate-lock-'));
let n = 0;
const storeFile = () => join(dir, `store-${n++}.json`);
const ownNs = (() => {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
})();
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  vi.useRealTimers();
});

function writeLock(file: string, record: unknown, ageMs = 0): void {
  writeFileSync(lockPath(file), typeof record === 'string' ? record : JSON.stringify(record));
  const t = new Date(Date.now() - ageMs);
  utimesSync(lockPath(file), t, t);
}

describe('store lock', () => {
  it('is taken exclusively, belongs to this process after that, and is released', () => {
    const f = storeFile();
    acquireStoreLock(f);
    const record = JSON.parse(readFileSync(lockPath(f), 'utf8')) as Record<string, unknown>;
    expect(record).toMatchObject({ pid: process.pid, host: hostname(), pidns: ownNs });
    expect(lockHolder(f)).toBeNull();
    acquireStoreLock(f); // ours already
    releaseStoreLock(f);
    expect(() => statSync(lockPath(f))).toThrow();
  });

  it('refuses while a live process of this namespace holds it', () => {
    const f = storeFile();
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    children.push(child);
    writeLock(f, { pid: child.pid, host: hostname(), pidns: ownNs, id: 'other' });
    expect(lockHolder(f)).toEqual({ pid: child.pid, host: hostname() });
    expect(() => acquireStoreLock(f)).toThrow(`in use by process ${child.pid}`);
  });

  it('takes over a lock whose holder is dead, or that carries this pid but not this process (PID 1 in a restarted container)', () => {
    for (const record of [
      { pid: 2 ** 22 + 12345, host: hostname(), pidns: ownNs, id: 'dead' },
      { pid: process.pid, host: hostname(), pidns: ownNs, id: 'an earlier process with this pid' },
      String(2 ** 22 + 12345), // the old bare-pid format
    ]) {
      const f = storeFile();
      writeLock(f, record);
      expect(lockHolder(f)).toBeNull();
      acquireStoreLock(f);
      expect(JSON.parse(readFileSync(lockPath(f), 'utf8')).pid).toBe(process.pid);
      releaseStoreLock(f);
    }
  });

  it('trusts the heartbeat, not the pid, for a holder in another PID namespace: PID 1 of another container holds it until its heartbeat is stale', () => {
    const f = storeFile();
    const other = { pid: 1, host: 'container-b', pidns: 'pid:[4026532999]', id: 'b' };
    writeLock(f, other);
    expect(lockHolder(f)).toEqual({ pid: 1, host: 'container-b' });
    expect(() => acquireStoreLock(f)).toThrow('in use by process 1 on container-b');
    writeLock(f, other, STALE_MS + 5_000);
    expect(lockHolder(f)).toBeNull();
    acquireStoreLock(f);
    expect(JSON.parse(readFileSync(lockPath(f), 'utf8')).host).toBe(hostname());
    releaseStoreLock(f);
  });

  it('keeps its own heartbeat fresh while held', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const f = storeFile();
    acquireStoreLock(f);
    const old = new Date(Date.now() - STALE_MS - 5_000);
    utimesSync(lockPath(f), old, old);
    vi.advanceTimersByTime(10_000);
    expect(Date.now() - statSync(lockPath(f)).mtimeMs).toBeLessThan(STALE_MS);
    releaseStoreLock(f);
  });
});
