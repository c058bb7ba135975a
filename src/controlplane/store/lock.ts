/**
 * A lock beside the store file. The file store keeps its state in memory, so a second writer
 * (another gateway, or `ipgate import`) would be silently overwritten: refuse it instead.
 *
 * WHY more than a pid. Two containers that share the store's volume each run node as PID 1, and a
 * pid means nothing outside its PID namespace: a lock saying "1" looked like its own to every
 * container. So the lock names its holder fully (a random id per process, the pid, the hostname
 * and the PID namespace), is created exclusively (O_EXCL), and its holder touches it every few
 * seconds. Whether a holder is alive is then answered by its pid where the pid means something
 * (same host and PID namespace), and by the heartbeat everywhere else.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, readlinkSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';

/** How often a holder touches its lock, and how old a heartbeat may get before the lock is stale. */
const HEARTBEAT_MS = 5_000;
export const STALE_MS = 30_000;

interface LockRecord {
  readonly pid: number;
  readonly host: string;
  /** The PID namespace ("pid:[4026531836]"), or "" where /proc does not say. */
  readonly pidns: string;
  /** Per process: tells this process's lock from a dead one's that had the same pid. */
  readonly id: string;
}

export interface LockHolder {
  readonly pid: number;
  readonly host: string;
}

function ownPidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return '';
  }
}

const ME: LockRecord = { pid: process.pid, host: hostname(), pidns: ownPidNamespace(), id: randomUUID() };
const heartbeats = new Map<string, NodeJS.Timeout>();

export function lockPath(storeFile: string): string {
  return `${storeFile}.lock`;
}

/** A lock file's record; a bare pid (the format before hosts and ids) is read as one in this namespace. */
function parseRecord(text: string): LockRecord | null {
  const t = text.trim();
  if (/^\d+$/.test(t)) return { pid: Number(t), host: ME.host, pidns: ME.pidns, id: '' };
  try {
    const r = JSON.parse(t) as Partial<LockRecord>;
    if (typeof r.pid !== 'number' || typeof r.host !== 'string' || typeof r.pidns !== 'string' || typeof r.id !== 'string') return null;
    return { pid: r.pid, host: r.host, pidns: r.pidns, id: r.id };
  } catch {
    return null;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive but not ours. ESRCH: gone.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

type LockState = { kind: 'none' | 'mine' | 'stale' } | { kind: 'held'; holder: LockHolder };

function inspect(path: string, now: number): LockState {
  let text: string;
  let mtimeMs: number;
  try {
    text = readFileSync(path, 'utf8');
    mtimeMs = statSync(path).mtimeMs;
  } catch {
    return { kind: 'none' };
  }
  const r = parseRecord(text);
  // Unreadable (a writer died mid-write): stale once its heartbeat would have been renewed.
  if (r === null) return now - mtimeMs > STALE_MS ? { kind: 'stale' } : { kind: 'held', holder: { pid: 0, host: '?' } };
  if (r.id !== '' && r.id === ME.id) return { kind: 'mine' };
  const holder = { pid: r.pid, host: r.host };
  if (r.host === ME.host && r.pidns === ME.pidns) {
    // Our own pid, written by another process: the one that had this pid before us (PID 1 in a
    // restarted container) is gone.
    if (r.pid === ME.pid) return { kind: 'stale' };
    return Number.isSafeInteger(r.pid) && r.pid > 0 && pidAlive(r.pid) ? { kind: 'held', holder } : { kind: 'stale' };
  }
  // Another host or PID namespace: its pid cannot be checked from here, its heartbeat can.
  return now - mtimeMs > STALE_MS ? { kind: 'stale' } : { kind: 'held', holder };
}

/** The live process holding the lock, other than this one, if any. */
export function lockHolder(storeFile: string): LockHolder | null {
  const s = inspect(lockPath(storeFile), Date.now());
  return s.kind === 'held' ? s.holder : null;
}

export function acquireStoreLock(storeFile: string): void {
  const path = lockPath(storeFile);
  mkdirSync(dirname(storeFile), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, `${JSON.stringify(ME)}\n`, { flag: 'wx' });
      startHeartbeat(path);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const s = inspect(path, Date.now());
    if (s.kind === 'mine') return;
    if (s.kind === 'held') throw new Error(`store ${storeFile} is in use by process ${s.holder.pid} on ${s.holder.host} (${path})`);
    // Stale: remove it and try the exclusive create once more. Two processes taking over the same
    // stale lock at the same instant can both get here; the exclusive create lets one of them in.
    try {
      unlinkSync(path);
    } catch {
      // Already gone.
    }
  }
  throw new Error(`store ${storeFile}: another process took ${path} while this one was taking it over`);
}

function startHeartbeat(path: string): void {
  const beat = setInterval(() => {
    const now = new Date();
    try {
      utimesSync(path, now, now);
    } catch {
      // Removed under us: the next writer's lock check is the store's own business.
    }
  }, HEARTBEAT_MS);
  beat.unref();
  heartbeats.set(path, beat);
}

export function releaseStoreLock(storeFile: string): void {
  const path = lockPath(storeFile);
  clearInterval(heartbeats.get(path));
  heartbeats.delete(path);
  if (inspect(path, Date.now()).kind !== 'mine') return;
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}
