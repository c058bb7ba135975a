/**
 * Review tests (control plane, file store). Each test says whether it demonstrates a bug (fails
 * today) or covers an untested path (passes).
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStore } from '../../src/controlplane/store/file-store.js';
import { readConfiguredStore } from '../../src/controlplane/store/pg/open-store.js';
import type { StoreData } from '../../src/controlplane/store/state.js';
import { seededStore } from '../helpers/store-seed.js';

let dir = '';
let file = '';

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipgate-review-'));
  file = join(dir, 'store.json');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const seed = (): StoreData => seededStore();

describe('file store read by `ipgate export` while the gateway writes', () => {
  // Found by review as a bug (fixed: readers open the store read-only and never clean up). `ipgate export` (cli.ts cmdExport -> readConfiguredStore -> FileStore.open)
  // does not check the store lock, and FileStore.open garbage-collects: it deletes `<store>.tmp-*`
  // files and every file in `<store>.blobs/` that the store file it read does not reference. Run
  // while a gateway writes, it deletes the temp files of the gateway's write (the admin write fails
  // with ENOENT on rename) and, worse, a new blob the gateway is about to reference: the gateway
  // then publishes a store file whose blob is gone, and its next start refuses ("the referenced
  // blob is missing"). Here the "exporter" is FileStore.open in the same process, racing the
  // gateway's own FileStore.update; after each round the test checks, without opening the store
  // (which would garbage-collect too), that every blob the store file references exists.
  it('a reader opening the store never breaks a concurrent write or deletes a blob the store references', async () => {
    const gateway = await FileStore.create(file, seed());
    const writeErrors = new Set<string>();
    const dangling: string[] = [];
    for (let i = 0; i < 200 && dangling.length === 0; i++) {
      const write = gateway
        .update((d) => {
          const r = d.projects[0]!.proxies[0]!;
          r.draft.description = `change ${i}`;
          r.version++;
          // A new deployed copy every time: a new blob, and the previous one becomes garbage.
          r.deployments.production = { revision: d.revision + 1, deployedAt: 'now', deployedBy: 'test', proxy: structuredClone(r.draft) };
        })
        .catch((e: unknown) => {
          writeErrors.add((e as Error).message.replace(/[0-9a-f]{8,}/g, 'H').replace(/\/tmp\/[^ ,']*/g, 'PATH'));
        });
      for (let k = 0; k < i % 6; k++) await new Promise(setImmediate);
      // What `ipgate export` does: read the configured store beside the running owner.
      const exporter = readConfiguredStore({ store: { file, postgres: null }, nodeId: 'exporter', environment: 'production' }).catch(() => null);
      await Promise.all([write, exporter]);
      const text = await readFile(file, 'utf8');
      const present = new Set(await readdir(`${file}.blobs`));
      for (const m of text.matchAll(/"\$blob":"([0-9a-f]{64})"/g)) if (!present.has(`${m[1]}.json`)) dangling.push(`round ${i}: ${m[1]}`);
    }
    await gateway.close();
    expect({ dangling, writeErrors: [...writeErrors] }).toEqual({ dangling: [], writeErrors: [] });
  });
});
