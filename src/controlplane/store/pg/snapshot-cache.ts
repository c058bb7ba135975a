/**
 * The opt-in local snapshot cache (store.postgres.snapshotCache): the last state this node read
 * from PostgreSQL, kept in one local file so that a node restarted while the database is
 * unreachable can start enforcing the last good policies instead of refusing to start.
 *
 * A security trade-off, off by default: the file holds the whole policy state on the node's disk,
 * and a node started from it enforces what was true when the file was written. Anything revoked
 * since (an address removed from an allowlist) stays allowed on that node until it reaches the
 * database again. The file is written 0600, checksummed, and replaced atomically.
 *
 * Layout, one line: {"ipgate":"snapshot-cache","sha256":"<hex of data JSON>","data":<StoreData JSON>}
 * with deployed copies inline.
 */
import { createHash, randomBytes } from 'node:crypto';
import { open as fsOpen, readFile, rename, unlink } from 'node:fs/promises';
import { deepFreeze, sealBlob } from '../blobs.js';
import type { StoreData } from '../state.js';
import { checkState } from './rows.js';

const TAG = 'snapshot-cache';

export async function writeSnapshotCache(file: string, data: Readonly<StoreData>): Promise<void> {
  const json = JSON.stringify(data);
  const sha = createHash('sha256').update(json).digest('hex');
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const handle = await fsOpen(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(`{"ipgate":"${TAG}","sha256":"${sha}","data":${json}}\n`);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  await rename(tmp, file).catch(async (err: unknown) => {
    await unlink(tmp).catch(() => undefined);
    throw err;
  });
}

/** The cached state, or throws naming the file and why it cannot be used. */
export async function readSnapshotCache(file: string): Promise<StoreData> {
  const text = await readFile(file, 'utf8');
  const prefix = `{"ipgate":"${TAG}","sha256":"`;
  if (!text.startsWith(prefix) || !text.endsWith('}\n')) throw new Error(`snapshot cache ${file} is not an ipgate snapshot cache`);
  const sha = text.slice(prefix.length, prefix.length + 64);
  const dataStart = prefix.length + 64 + '","data":'.length;
  const json = text.slice(dataStart, text.length - 2);
  const actual = createHash('sha256').update(json).digest('hex');
  if (actual !== sha) throw new Error(`snapshot cache ${file} is corrupt (checksum mismatch)`);
  const data = JSON.parse(json) as StoreData;
  const problem = checkState(data);
  if (problem !== null) throw new Error(`snapshot cache ${file} is corrupt: ${problem}`);
  // Deployed copies become shared, frozen blobs again, as when read from the database.
  for (const p of data.projects) {
    for (const r of p.proxies) {
      for (const dep of Object.values(r.deployments)) sealBlob(dep.proxy, { stored: true });
      for (const h of r.history ?? []) sealBlob(h.proxy, { stored: true });
    }
  }
  return deepFreeze(data);
}
