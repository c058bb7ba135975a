/**
 * A pid lock beside the store file. The file store keeps its state in memory, so a second writer
 * (another gateway, or `ipgate import`) would be silently overwritten: refuse it instead.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export function lockPath(storeFile: string): string {
  return `${storeFile}.lock`;
}

/** The pid holding the lock, if that process is alive. */
export function lockHolder(storeFile: string): number | null {
  let pid: number;
  try {
    pid = Number(readFileSync(lockPath(storeFile), 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0) return null;
  if (pid === process.pid) return pid;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    // EPERM: alive but not ours. ESRCH: gone, the lock is stale.
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

export function acquireStoreLock(storeFile: string): void {
  const holder = lockHolder(storeFile);
  if (holder !== null && holder !== process.pid) throw new Error(`store ${storeFile} is in use by process ${holder} (${lockPath(storeFile)})`);
  mkdirSync(dirname(storeFile), { recursive: true });
  writeFileSync(lockPath(storeFile), `${process.pid}\n`);
}

export function releaseStoreLock(storeFile: string): void {
  if (lockHolder(storeFile) !== process.pid) return;
  try {
    unlinkSync(lockPath(storeFile));
  } catch {
    // Already gone.
  }
}
