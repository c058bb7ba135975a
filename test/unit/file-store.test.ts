import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, watch } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { FileStore, StoreCorruptError } from '../../src/controlplane/store/file-store.js';
import type { EnvironmentRecord, StoreData } from '../../src/controlplane/store/state.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

let dir = '';
let file = '';

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipgate-store-'));
  file = join(dir, 'store.json');
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function initial(over: Partial<StoreData> = {}): StoreData {
  return {
    format: 1,
    epoch: '5f0c6d1e-0000-4000-8000-000000000001',
    revision: 0,
    environments: [{ name: 'prod', description: 'production', createdAt: '2024-01-01T00:00:00.000Z' }],
    projects: [],
    audit: [],
    ...over,
  };
}

function env(name: string): EnvironmentRecord {
  return { name, createdAt: '2024-01-01T00:00:00.000Z' };
}

/** An independent writer of the documented file format, to build files with a valid checksum. */
function envelopeText(data: unknown, sha?: string): string {
  const json = JSON.stringify(data);
  const hex = sha ?? createHash('sha256').update(json, 'utf8').digest('hex');
  return `{"ipgate":"store","format":1,"sha256":"${hex}","data":${json}}\n`;
}

async function openCorrupt(path: string): Promise<StoreCorruptError> {
  const err: unknown = await FileStore.open(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StoreCorruptError);
  const e = err as StoreCorruptError;
  expect(e.file).toBe(path);
  expect(e.message).toContain(path);
  return e;
}

async function tempFiles(): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.includes('.tmp-'));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('FileStore basics', () => {
  it('round-trips create → open, writes the documented envelope, and refuses to create over an existing file', async () => {
    expect(await FileStore.open(file)).toBeNull();

    const store = await FileStore.create(file, initial({ revision: 7 }));
    expect(store.data).toEqual(initial({ revision: 7 }));
    await store.close();

    const text = await readFile(file, 'utf8');
    const parsed = JSON.parse(text) as { ipgate: string; format: number; sha256: string; data: StoreData };
    expect(parsed.ipgate).toBe('store');
    expect(parsed.format).toBe(2);
    expect(parsed.data).toEqual(initial({ revision: 7 }));
    expect(parsed.sha256).toBe(createHash('sha256').update(JSON.stringify(parsed.data)).digest('hex'));

    const reopened = await FileStore.open(file);
    expect(reopened).not.toBeNull();
    expect(reopened!.data).toEqual(initial({ revision: 7 }));
    await reopened!.close();

    await expect(FileStore.create(file, initial({ epoch: 'other' }))).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(file, 'utf8')).toBe(text);
    expect(await tempFiles()).toEqual([]);
  });

  it('refuses to treat a lost store file as a first start when its blobs remain (seeding would replace every policy)', async () => {
    const store = await FileStore.create(file, initial());
    await store.close();
    const blobDir = `${file}.blobs`;
    await mkdir(blobDir, { recursive: true });
    await writeFile(join(blobDir, `${'ab'.repeat(32)}.json`), '{}');
    await rm(file);
    const e = await openCorrupt(file);
    expect(e.reason).toContain('the file is missing');
    expect(e.reason).toContain(blobDir);
    await expect(FileStore.open(file, { readOnly: true })).rejects.toBeInstanceOf(StoreCorruptError);
    // Without blobs it is a first start.
    await rm(blobDir, { recursive: true });
    expect(await FileStore.open(file)).toBeNull();
  });

  it('increments the revision by exactly one per update and persists every commit', async () => {
    const store = await FileStore.create(file, initial({ revision: 3 }));
    for (let i = 1; i <= 5; i++) {
      const { data, result } = await store.update((d) => {
        d.environments.push(env(`e${i}`));
        d.revision = 1000; // ignored: the store owns the revision
        return `r${i}`;
      });
      expect(result).toBe(`r${i}`);
      expect(data.revision).toBe(3 + i);
      expect(store.data).toBe(data);
      const onDisk = await FileStore.open(file);
      expect(onDisk!.data).toEqual(data);
      await onDisk!.close();
    }
    expect(store.data.environments.map((e) => e.name)).toEqual(['prod', 'e1', 'e2', 'e3', 'e4', 'e5']);

    // replace: +1 by default, or the given revision with keepRevision.
    const replaced = await store.replace(initial({ revision: 2, epoch: 'imported' }));
    expect(replaced.revision).toBe(9);
    expect(replaced.epoch).toBe('imported');
    const kept = await store.replace(initial({ revision: 42 }), { keepRevision: true });
    expect(kept.revision).toBe(42);
    await store.close();
    expect((await FileStore.open(file))!.data.revision).toBe(42);
  });

  it('commits a new object returned by fn instead of the draft', async () => {
    const store = await FileStore.create(file, initial());
    const { data } = await store.update((d) => ({ ...d, environments: [env('only')] }));
    expect(data.environments.map((e) => e.name)).toEqual(['only']);
    expect(data.revision).toBe(1);
    // Returning the committed state (e.g. as a "before" value) is just a result; the draft is committed.
    const before = store.data;
    const second = await store.update((d) => {
      d.environments.push(env('two'));
      return before;
    });
    expect(second.result).toBe(before);
    expect(second.data.environments.map((e) => e.name)).toEqual(['only', 'two']);
    await store.close();
  });

  it('aborts without writing when fn throws, and later updates still work', async () => {
    const store = await FileStore.create(file, initial());
    await store.update((d) => void d.environments.push(env('a')));
    const bytesBefore = await readFile(file);
    const dataBefore = store.data;

    const boom = new Error('boom');
    await expect(
      store.update((d) => {
        d.environments.length = 0; // mutate, then abort
        d.epoch = 'changed';
        throw boom;
      }),
    ).rejects.toBe(boom);
    await expect(
      store.update(async (d) => {
        d.environments.push(env('never'));
        await sleep(1);
        throw new Error('async boom');
      }),
    ).rejects.toThrow('async boom');

    expect(store.data).toBe(dataBefore);
    expect(store.data.environments.map((e) => e.name)).toEqual(['prod', 'a']);
    expect(await readFile(file)).toEqual(bytesBefore);
    expect(await tempFiles()).toEqual([]);

    // A failure in the middle of a queue affects only its own caller.
    const results = await Promise.allSettled([
      store.update((d) => void d.environments.push(env('b'))),
      store.update(() => {
        throw new Error('middle');
      }),
      store.update((d) => void d.environments.push(env('c'))),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(store.data.revision).toBe(3);
    expect(store.data.environments.map((e) => e.name)).toEqual(['prod', 'a', 'b', 'c']);
    await store.close();
    expect((await FileStore.open(file))!.data).toEqual(store.data);
  });

  it('serialises 50 concurrent updates in call order with no lost update', async () => {
    const store = await FileStore.create(file, initial({ revision: 10 }));
    const seen: number[] = [];
    const pending = Array.from({ length: 50 }, (_, i) =>
      store.update(async (d) => {
        seen.push(d.revision);
        // Yield with random delays: a store that ran fns concurrently would lose appends.
        await sleep(Math.random() * 3);
        d.environments.push(env(`env-${i}`));
        return i;
      }),
    );
    const done = await Promise.all(pending);
    done.forEach(({ data, result }, i) => {
      expect(result).toBe(i);
      expect(data.revision).toBe(11 + i);
      expect(data.environments.length).toBe(2 + i);
      expect(data.environments[1 + i]!.name).toBe(`env-${i}`);
    });
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => 10 + i));
    const names = ['prod', ...Array.from({ length: 50 }, (_, i) => `env-${i}`)];
    expect(store.data.environments.map((e) => e.name)).toEqual(names);
    await store.close();
    const reopened = await FileStore.open(file);
    expect(reopened!.data.revision).toBe(60);
    expect(reopened!.data.environments.map((e) => e.name)).toEqual(names);
  });

  it('rejects a failed fs write, removes its temp file, keeps data, and recovers', async () => {
    const store = await FileStore.create(file, initial());
    const dataBefore = store.data;
    // Put a non-empty directory where the store file is: the rename over it fails (works as root too).
    await rm(file);
    await mkdir(file);
    await writeFile(join(file, 'x'), 'x');
    const err: unknown = await store.update((d) => void d.environments.push(env('lost'))).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as NodeJS.ErrnoException).code).toMatch(/^E[A-Z]+$/);
    expect(store.data).toBe(dataBefore);
    expect(await tempFiles()).toEqual([]);

    await rm(file, { recursive: true });
    const { data } = await store.update((d) => void d.environments.push(env('after')));
    expect(data.revision).toBe(1);
    expect(data.environments.map((e) => e.name)).toEqual(['prod', 'after']);
    await store.close();
    expect((await FileStore.open(file))!.data).toEqual(data);
  });

  it('refuses to write states it could not open again', async () => {
    const store = await FileStore.create(file, initial());
    const bytes = await readFile(file);
    await expect(
      store.update((d) => {
        (d as { projects: unknown }).projects = undefined;
      }),
    ).rejects.toThrow(/projects is not an array/);
    await expect(store.update((d) => void ((d as { epoch: unknown }).epoch = 5))).rejects.toThrow(/epoch/);
    await expect(store.replace(initial({ revision: -1 }), { keepRevision: true })).rejects.toThrow(/revision/);
    await expect(store.replace({ ...initial(), format: 2 as 1 })).rejects.toThrow(/format/);
    await expect(store.update((d) => void ((d.audit as unknown[]).push({ big: 1n })))).rejects.toThrow(/BigInt/);
    await expect(FileStore.create(join(dir, 'bad.json'), initial({ revision: 1.5 }))).rejects.toThrow(/revision/);
    expect(existsSync(join(dir, 'bad.json'))).toBe(false);
    expect(await readFile(file)).toEqual(bytes);
    expect(store.data.revision).toBe(0);
    expect(await tempFiles()).toEqual([]);
    await store.close();
  });

  it('exposes committed data as immutable and never aliases the draft or replace input', async () => {
    const store = await FileStore.create(file, initial());
    expect(() => (store.data.environments as EnvironmentRecord[]).push(env('x'))).toThrow(TypeError);
    expect(() => {
      (store.data.environments[0] as EnvironmentRecord).name = 'x';
    }).toThrow(TypeError);
    let leaked: StoreData | undefined;
    await store.update((d) => {
      leaked = d;
    });
    // The draft became the committed state, frozen: a leaked reference cannot change it.
    expect(() => leaked!.environments.push(env('late'))).toThrow(TypeError);
    const input = initial();
    await store.replace(input);
    input.environments.push(env('late2'));
    expect(store.data.environments.map((e) => e.name)).toEqual(['prod']);
    await store.close();
  });

  it('rejects a nested update instead of deadlocking', async () => {
    const store = await FileStore.create(file, initial());
    const { result } = await store.update(async (d) => {
      d.environments.push(env('outer'));
      return store.update((inner) => void inner.environments.push(env('inner'))).then(
        () => 'nested ran',
        (e: unknown) => (e as Error).message,
      );
    });
    expect(result).toMatch(/inside an update function/);
    expect(store.data.environments.map((e) => e.name)).toEqual(['prod', 'outer']);
    await store.close();
  });

  it('close waits for queued writes and refuses new ones', async () => {
    const store = await FileStore.create(file, initial());
    const order: string[] = [];
    const slow = store
      .update(async (d) => {
        await sleep(50);
        d.environments.push(env('slow'));
      })
      .then(() => order.push('update'));
    await store.close().then(() => order.push('close'));
    await slow;
    expect(order).toEqual(['update', 'close']);
    await expect(store.update(() => undefined)).rejects.toThrow(/closed/);
    expect((await FileStore.open(file))!.data.revision).toBe(1);
  });
});

describe('FileStore deployed copies are content-addressed blobs', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ipgate-blobs-'));
    file = join(dir, 'store.json');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const draft = (ipList: string[]) => ({
    name: 'api',
    basePath: '/api',
    upstream: { url: 'http://127.0.0.1:9' },
    policies: [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'w', ipList } }],
  });
  const withProxy = (ipList: string[]): StoreData =>
    initial({
      projects: [
        {
          name: 'p',
          createdAt: '2024-01-01T00:00:00.000Z',
          ipGroups: [],
          proxies: [
            {
              draft: draft(ipList) as never,
              version: 1,
              deployments: { prod: { revision: 0, deployedAt: '2024-01-01T00:00:00.000Z', deployedBy: 't', proxy: draft(ipList) as never } },
              history: [{ revision: 0, deployedAt: '2024-01-01T00:00:00.000Z', deployedBy: 't', environment: 'prod', kind: 'deploy', proxy: draft(ipList) as never }],
            },
          ],
        },
      ],
    });
  const blobNames = async () => (await readdir(`${file}.blobs`)).sort();

  it('stores each distinct deployed copy once, outside the store file, and loads it back verified', async () => {
    const store = await FileStore.create(file, withProxy(['10.0.0.1']));
    const text = await readFile(file, 'utf8');
    const onDisk = JSON.parse(text).data.projects[0].proxies[0];
    const hash = createHash('sha256').update(JSON.stringify(draft(['10.0.0.1']))).digest('hex');
    // The deployment and the history entry hold equal copies: one blob, referenced twice.
    expect(onDisk.deployments.prod.proxy).toEqual({ $blob: hash });
    expect(onDisk.history[0].proxy).toEqual({ $blob: hash });
    expect(onDisk.draft.policies[0].policy.ipList).toEqual(['10.0.0.1']);
    expect(await blobNames()).toEqual([`${hash}.json`]);
    await store.close();
    const reopened = (await FileStore.open(file))!;
    expect(reopened.data).toEqual(withProxy(['10.0.0.1']));
    expect(Object.isFrozen(reopened.data.projects[0]!.proxies[0]!.deployments['prod']!.proxy)).toBe(true);
    await reopened.close();
  });

  it('shares deployed copies with drafts instead of copying them, and removes blobs no longer referenced', async () => {
    const store = await FileStore.create(file, withProxy(['10.0.0.1']));
    const before = store.data.projects[0]!.proxies[0]!.deployments['prod']!.proxy;
    // An unrelated write: the deployed copy is the same object afterwards (never cloned).
    await store.update((d) => void d.environments.push(env('staging')));
    expect(store.data.projects[0]!.proxies[0]!.deployments['prod']!.proxy).toBe(before);
    // Redeploy a new list and drop the history: the old blob is collected.
    await store.update((d) => {
      const r = d.projects[0]!.proxies[0]!;
      r.deployments['prod'] = { revision: 2, deployedAt: 'x', deployedBy: 't', proxy: draft(['10.0.0.2']) as never };
      r.history = [];
    });
    const hash2 = createHash('sha256').update(JSON.stringify(draft(['10.0.0.2']))).digest('hex');
    expect(await blobNames()).toEqual([`${hash2}.json`]);
    // A deployed copy is immutable: changing it in a draft throws instead of silently changing history.
    await expect(store.update((d) => void (d.projects[0]!.proxies[0]!.deployments['prod']!.proxy.name = 'x'))).rejects.toThrow(TypeError);
    await store.close();
  });

  it('refuses to open when a referenced blob is missing or altered, naming the blob', async () => {
    const store = await FileStore.create(file, withProxy(['10.0.0.1']));
    await store.close();
    const [name] = await blobNames();
    const blob = join(`${file}.blobs`, name!);
    const good = await readFile(blob, 'utf8');
    await writeFile(blob, good.replace('10.0.0.1', '10.0.0.9'));
    let e = await openCorrupt(file);
    expect(e.message).toContain(name!);
    expect(e.message).toMatch(/checksum mismatch/);
    await rm(blob);
    e = await openCorrupt(file);
    expect(e.message).toMatch(/referenced blob is missing/);
    await writeFile(blob, good);
    expect((await FileStore.open(file))!.data.revision).toBe(0);
  });

  it('still opens a format 1 file with inline deployed copies, and moves them to blobs on the next write', async () => {
    await writeFile(file, envelopeText(withProxy(['10.0.0.1'])));
    const store = (await FileStore.open(file))!;
    expect(store.data).toEqual(withProxy(['10.0.0.1']));
    await store.update(() => undefined);
    expect(JSON.parse(await readFile(file, 'utf8')).format).toBe(2);
    expect(await blobNames()).toHaveLength(1);
    await store.close();
  });
});

describe('FileStore corruption is fail-closed', () => {
  it('truncated file', async () => {
    const store = await FileStore.create(file, initial());
    await store.update((d) => void d.environments.push(env('staging')));
    await store.close();
    const bytes = await readFile(file);
    for (const cut of [bytes.length - 2, Math.floor(bytes.length / 2), 10]) {
      await writeFile(file, bytes.subarray(0, cut));
      const e = await openCorrupt(file);
      expect(e.message).toMatch(/not valid JSON.*(unexpected end of JSON input|Unterminated|Expected)/i);
    }
    await writeFile(file, '');
    expect((await openCorrupt(file)).message).toMatch(/empty/);
  });

  it('flipped byte inside data (checksum mismatch)', async () => {
    const store = await FileStore.create(file, initial());
    await store.close();
    const text = await readFile(file, 'utf8');
    const at = text.indexOf('production');
    expect(at).toBeGreaterThan(text.indexOf('"data":'));
    await writeFile(file, text.slice(0, at) + 'prodUction' + text.slice(at + 'production'.length));
    expect((await openCorrupt(file)).message).toMatch(/checksum mismatch/);

    // A one-bit flip that yields equivalent JSON (\u001f → \u001F) is caught too: the raw bytes are hashed.
    const ctl = envelopeText(initial({ epoch: 'a\u001fb' }));
    expect(ctl).toContain('\\u001f');
    await writeFile(file, ctl);
    expect((await FileStore.open(file))!.data.epoch).toBe('a\u001fb');
    await writeFile(file, ctl.replace('\\u001f', '\\u001F'));
    expect((await openCorrupt(file)).message).toMatch(/checksum mismatch/);

    // A flipped byte in the recorded checksum.
    const good = envelopeText(initial());
    const sha = /"sha256":"([0-9a-f]{64})"/.exec(good)![1]!;
    const flipped = (sha[0] === 'a' ? 'b' : 'a') + sha.slice(1);
    await writeFile(file, envelopeText(initial(), flipped));
    expect((await openCorrupt(file)).message).toMatch(/checksum mismatch/);
  });

  it('non-JSON and invalid UTF-8', async () => {
    await writeFile(file, 'this is not json\n');
    expect((await openCorrupt(file)).message).toMatch(/not valid JSON/);
    await writeFile(file, Buffer.concat([Buffer.from('{"ipgate":"store","x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]));
    expect((await openCorrupt(file)).message).toMatch(/invalid UTF-8/);
  });

  it('wrong format, bad envelope, bad fields', async () => {
    const cases: Array<[string, RegExp]> = [
      [envelopeText({ ...initial(), format: 2 }), /unsupported data format 2/],
      [envelopeText(initial()).replace('"format":1', '"format":3'), /unsupported envelope format 3/],
      [envelopeText(initial()).replace('"ipgate":"store"', '"ipgate":"other"'), /not an ipgate store file/],
      [JSON.stringify(initial()), /not an ipgate store file/],
      ['[]', /not a JSON object/],
      [envelopeText(initial({ revision: -1 })), /revision -1 is not a non-negative integer/],
      [envelopeText(initial({ revision: 1.5 })), /revision 1.5/],
      [envelopeText({ ...initial(), epoch: 7 }), /epoch 7 is not a string/],
      [envelopeText({ ...initial(), audit: undefined }), /audit is not an array/],
      [envelopeText({ ...initial(), environments: {} }), /environments is not an array/],
      [envelopeText({ ...initial(), projects: [{ name: 'p', proxies: [] }] }), /projects\[0\]\.ipGroups is not an array/],
      [envelopeText(initial()).replace('"sha256":"', '"sha256":"x'), /bad sha256/],
      [JSON.stringify(JSON.parse(envelopeText(initial())), null, 2), /unexpected envelope layout/],
    ];
    for (const [text, reason] of cases) {
      await writeFile(file, text);
      const e = await openCorrupt(file);
      expect(e.message, text.slice(0, 80)).toMatch(reason);
    }
    // Control: the same writer produces a file that opens.
    await writeFile(file, envelopeText(initial({ revision: 4 })));
    expect((await FileStore.open(file))!.data.revision).toBe(4);
  });

  it('ignores and removes leftover temp files at open', async () => {
    const store = await FileStore.create(file, initial());
    await store.close();
    await writeFile(`${file}.tmp-123-0`, '{"half');
    await writeFile(join(dir, 'other.json.tmp-1-1'), 'keep');
    const reopened = await FileStore.open(file);
    expect(reopened!.data).toEqual(initial());
    expect((await readdir(dir)).sort()).toEqual(['other.json.tmp-1-1', 'store.json']);
  });
});

describe('FileStore survives kill -9 mid-write', () => {
  let buildDir = '';
  let storeModuleUrl = '';

  beforeAll(async () => {
    buildDir = await mkdtemp(join(tmpdir(), 'ipgate-store-build-'));
    const tsc = spawnSync(
      join(ROOT, 'node_modules/.bin/tsc'),
      [
        'src/controlplane/store/file-store.ts',
        'src/controlplane/store/blobs.ts',
        '--outDir', buildDir,
        '--rootDir', 'src',
        '--module', 'nodenext',
        '--moduleResolution', 'nodenext',
        '--target', 'es2022',
        '--skipLibCheck',
        '--types', 'node',
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    const out = join(buildDir, 'controlplane/store/file-store.js');
    if (tsc.status !== 0 || !existsSync(out)) {
      throw new Error(`tsc failed (${tsc.status}): ${tsc.stdout}${tsc.stderr}${tsc.error?.message ?? ''}`);
    }
    await writeFile(join(buildDir, 'package.json'), '{"type":"module"}\n');
    storeModuleUrl = pathToFileURL(out).href;
  }, 60_000); // tsc takes a few seconds, more on a loaded 2-core machine

  afterAll(async () => {
    if (buildDir !== '') await rm(buildDir, { recursive: true, force: true });
  });

  const PAYLOAD_CHARS = 3 * 1024 * 1024;
  /** Must match the child script: a revision-specific ~3 MB string. */
  const payload = (rev: number) => `<${rev}>`.repeat(Math.ceil(PAYLOAD_CHARS / `<${rev}>`.length));

  const CHILD = `
import { FileStore } from ${JSON.stringify('__URL__')};
const payload = (rev) => \`<\${rev}>\`.repeat(Math.ceil(${PAYLOAD_CHARS} / \`<\${rev}>\`.length));
const store = await FileStore.open(process.argv[2]);
if (store === null) throw new Error('no store');
process.stdout.write('open ' + store.data.revision + '\\n');
for (;;) {
  const { data } = await store.update((d) => {
    const rev = d.revision + 1;
    d.environments = [{ name: 'rev-' + rev, createdAt: new Date().toISOString() }];
    d.audit = [{ id: rev, time: '', actor: 'crash-test', action: 'write', project: null, proxy: null,
                 target: 'rev-' + rev, before: null, after: payload(rev), revision: rev }];
    // A new deployed copy each revision, so a blob file is written (and the old one removed) every time.
    const copy = { name: 'rev-' + rev, basePath: '/x', upstream: { url: 'http://127.0.0.1:9' }, policies: [], big: payload(rev).slice(0, 100000) };
    d.projects = [{ name: 'p', createdAt: '', ipGroups: [], proxies: [{ draft: copy, version: rev,
      deployments: { prod: { revision: rev, deployedAt: '', deployedBy: 't', proxy: copy } } }] }];
  });
  process.stdout.write('committed ' + data.revision + '\\n');
}
`;

  interface Run {
    opened: number | null;
    committed: number[];
    signal: NodeJS.Signals | null;
    stderr: string;
  }

  type KillPlan = { after: 'spawn'; ms: number } | { after: 'temp-created'; nth: number; ms: number };

  /**
   * Runs the child and SIGKILLs it: either `ms` after spawning, or `ms` after the child creates its
   * `nth` temp file (seen through fs.watch on the directory), which aims the kill at the write itself.
   */
  function runAndKill(script: string, plan: KillPlan): Promise<Run> {
    return new Promise((resolve, reject) => {
      const run: Run = { opened: null, committed: [], signal: null, stderr: '' };
      const timers: NodeJS.Timeout[] = [];
      const kill = (ms: number) => timers.push(setTimeout(() => child.kill('SIGKILL'), ms));
      let temps = 0;
      const seen = new Set<string>();
      const watcher = watch(dir, (event, name) => {
        if (plan.after !== 'temp-created' || typeof name !== 'string') return;
        // A new temp file, or (for an implementation that wrongly writes in place) a change to the store.
        // Each temp name counts once (it also gets 'change' events); its unlink/rename-away is not a creation.
        const temp = name.startsWith('store.json.tmp-') && !seen.has(name) && existsSync(join(dir, name));
        if (temp) seen.add(name);
        const inPlace = name === 'store.json' && event === 'change';
        if ((temp || inPlace) && ++temps === plan.nth) kill(plan.ms);
      });
      const child = spawn(process.execPath, [script, file], { stdio: ['ignore', 'pipe', 'pipe'] });
      if (plan.after === 'spawn') kill(plan.ms);
      kill(8000); // fallback: never hang the suite (the temp may be missed if watch coalesces events)
      let buf = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const [word, n] = buf.slice(0, nl).split(' ');
          buf = buf.slice(nl + 1);
          if (word === 'open') run.opened = Number(n);
          if (word === 'committed') run.committed.push(Number(n));
        }
      });
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c: string) => (run.stderr += c));
      child.on('error', reject);
      // 'close' fires after stdout is drained, so every line the child wrote has been seen.
      child.on('close', (_code, signal) => {
        timers.forEach(clearTimeout);
        watcher.close();
        run.signal = signal;
        resolve(run);
      });
    });
  }

  it('always reopens at the last committed revision or the one in flight, with matching data', { timeout: 60_000 }, async () => {
    const script = join(dir, 'child.mjs');
    await writeFile(script, CHILD.replace('__URL__', storeModuleUrl));
    const created = await FileStore.create(file, initial({ environments: [] }));
    await created.close();

    let known = 0; // the revision verified on disk after the previous kill
    let killedMidWrite = 0; // kills that left a temp file behind, i.e. landed between temp create and rename
    let inFlightCommitted = 0; // kills after rename but before the child reported the commit
    const started = Date.now();
    for (let i = 0; i < 20; i++) {
      // Mostly aimed at the 1st, 2nd or 3rd write (0-15 ms after its temp file appears, i.e. during
      // write/fsync/rename/dir fsync or just after); every fourth run at a random time after spawn.
      const plan: KillPlan =
        i % 4 === 3
          ? { after: 'spawn', ms: Math.random() * 500 }
          : { after: 'temp-created', nth: 1 + (i % 3), ms: Math.random() * 15 };
      const run = await runAndKill(script, plan);
      expect(run.signal, `child exited on its own: ${run.stderr}`).toBe('SIGKILL');
      if (run.opened !== null) expect(run.opened).toBe(known);
      // Commits are reported in order, one at a time.
      run.committed.forEach((rev, k) => expect(rev).toBe(known + 1 + k));
      const lastReported = run.committed.at(-1) ?? known;

      if ((await tempFiles()).length > 0) killedMidWrite++;
      const store = await FileStore.open(file); // must not throw StoreCorruptError
      expect(store).not.toBeNull();
      const data = store!.data;
      expect([lastReported, lastReported + 1]).toContain(data.revision);
      if (data.revision === lastReported + 1) inFlightCommitted++;
      if (data.revision === 0) {
        expect(data.environments).toEqual([]);
      } else {
        expect(data.environments[0]!.name).toBe(`rev-${data.revision}`);
        expect(data.audit[0]!.revision).toBe(data.revision);
        expect(data.audit[0]!.after === payload(data.revision)).toBe(true);
        // The deployed copy is the one of the same revision, loaded from its (verified) blob.
        expect(data.projects[0]!.proxies[0]!.deployments['prod']!.proxy.name).toBe(`rev-${data.revision}`);
      }
      await store!.close();
      expect(await tempFiles()).toEqual([]); // removed by open
      known = data.revision;
    }
    // The kills must really have interrupted writes, or this test proves nothing.
    expect(killedMidWrite).toBeGreaterThan(0);
    expect(known).toBeGreaterThanOrEqual(10); // and committed states were verified along the way
    console.log(
      `crash test: 20 kills in ${Date.now() - started} ms, final revision ${known}, ` +
        `${killedMidWrite} mid-write (temp file left), ${inFlightCommitted} committed-but-unreported`,
    );
  });
});
