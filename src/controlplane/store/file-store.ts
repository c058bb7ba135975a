/**
 * The embedded control-plane store: one JSON file, written crash-safely, one write at a time.
 *
 * File layout (exactly this, on one line, followed by "\n"):
 *
 *   {"ipgate":"store","format":2,"sha256":"<hex>","data":<data JSON>}
 *
 * where <hex> is the SHA-256 of the UTF-8 bytes of <data JSON> as they appear in the file. The data
 * is the last member so the reader can hash the exact bytes it parsed; a truncated file is not
 * parseable, and a flipped bit changes the checksum. The file is written by this module only: a
 * hand-edited (e.g. re-indented) file is rejected as corrupt rather than guessed at.
 *
 * Writes go to a temp file in the same directory (written, fsynced, closed), which is renamed over
 * the store, after which the directory is fsynced. A crash at any point therefore leaves either the
 * old or the new complete file, plus perhaps a stray temp file, which `open` removes.
 *
 * Fail-closed: `open` throws {@link StoreCorruptError} for anything it cannot fully validate; it never
 * returns an empty state for a file that exists. A missing file is `null` so the caller decides
 * whether to create one.
 *
 * Deployed copies of API proxies (deployments and history) are not inline: the data holds
 * {"$blob": "<sha256>"} and the copy lives in a content-addressed blob file (blobs.ts), written and
 * fsynced before the store file that references it. Format 1 files (everything inline) still load.
 *
 * Updates never deep-copy the whole state: a draft copies the working state and shares the frozen
 * blobs, and the committed state is the draft, frozen. A 100,000-entry policy write therefore costs
 * one copy and one serialisation of the working lists, however long the deploy history is.
 *
 * One FileStore per file: the caller holds the store lock (lock.ts) so that no second process
 * writes the same file.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { link, open as fsOpen, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pacedSha256, pacedStringify } from '../../policy/pace.js';
import { BlobCorruptError, BlobDir, blobHash, cloneState, deepFreeze, sealBlob } from './blobs.js';
import { STORE_FORMAT, type StoreData } from './state.js';
import type { ApplyReport, DeploymentResult, NodeInfo, Store, StoreHealth, UpdateOptions, UpdateResult } from './store.js';

const ENVELOPE_FORMAT = 2;
/** Format 1: deployed copies inline, no blob directory. Read, never written. */
const LEGACY_ENVELOPE_FORMAT = 1;
const ENVELOPE_TAG = 'store';
const SHA256_HEX = /^[0-9a-f]{64}$/;
const NEW_FILE_MODE = 0o600;

/** The store file exists but cannot be trusted. Never treat this as "empty". */
export class StoreCorruptError extends Error {
  readonly file: string;
  readonly reason: string;

  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super(`store file ${file} is corrupt: ${reason}`, options);
    this.name = 'StoreCorruptError';
    this.file = file;
    this.reason = reason;
  }
}

/** Per-process counter so temp names from one process never repeat. */
let tempCounter = 0;

/** Marks the async context of a running update/replace so a nested call fails instead of deadlocking. */
const inWrite = new AsyncLocalStorage<{ running: boolean }>();

export class FileStore implements Store {
  readonly file: string;
  readonly nodeId: string;
  #data: StoreData;
  #mode: number;
  #blobs: BlobDir;
  /** The end of the write queue. Never rejects (failures are reported to their own caller). */
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;
  #applied: (ApplyReport & { at: string }) | null = null;
  readonly #readOnly: boolean;
  /** A write whose rename succeeded but whose directory fsync failed: committed, durability unknown. */
  #lastDirSyncError: string | null = null;

  private constructor(file: string, data: StoreData, mode: number, blobs: BlobDir, nodeId: string, readOnly: boolean) {
    this.#readOnly = readOnly;
    this.file = file;
    this.#data = data;
    this.#mode = mode;
    this.#blobs = blobs;
    this.nodeId = nodeId;
  }

  get description(): string {
    return `file:${this.file}`;
  }

  /**
   * Opens (does not create) the store. `null` when the file does not exist; throws
   * StoreCorruptError when it cannot be trusted. `readOnly`: see #openReadOnly.
   */
  static async open(file: string, opts?: { nodeId?: string; readOnly?: boolean }): Promise<FileStore | null> {
    if (opts?.readOnly === true) return FileStore.#openReadOnly(file);
    const read = await readStoreFile(file);
    if (read === null) return FileStore.#absent(file);
    const blobs = new BlobDir(file);
    const data = await decodeStoreFile(file, read.bytes, blobs);
    // Only the store's owner (the process holding its lock) cleans up after a crashed write.
    await removeStaleTemps(file);
    await blobs.collect(referencedBlobs(data));
    return new FileStore(file, data, read.mode, blobs, opts?.nodeId ?? 'local', false);
  }

  /**
   * A reader beside the owner (`ipgate export` while a gateway runs): removes nothing and refuses
   * writes. The owner may replace the file and collect its old blobs between this reader's read of
   * the file and of a blob; a blob missing for that reason is retried on the newer file.
   */
  static async #openReadOnly(file: string): Promise<FileStore | null> {
    for (let attempt = 1; ; attempt++) {
      const read = await readStoreFile(file);
      if (read === null) return FileStore.#absent(file);
      const blobs = new BlobDir(file);
      try {
        const data = await decodeStoreFile(file, read.bytes, blobs);
        return new FileStore(file, data, read.mode, blobs, 'reader', true);
      } catch (err) {
        const again = await readStoreFile(file);
        const changed = again !== null && !again.bytes.equals(read.bytes);
        if (!(err instanceof StoreCorruptError) || !changed || attempt >= 5) throw err;
      }
    }
  }

  /**
   * No store file: null (a first start, which seeds it), unless its blob directory holds blobs.
   * Then the store existed and its file was lost, and seeding afresh from the config would silently
   * replace every policy the store held with the config's (perhaps a permissive sample): refuse.
   */
  static async #absent(file: string): Promise<null> {
    const dir = new BlobDir(file).dir;
    let blobs: string[];
    try {
      blobs = (await readdir(dir)).filter((n) => n.endsWith('.json'));
    } catch {
      return null;
    }
    if (blobs.length === 0) return null;
    throw new StoreCorruptError(
      file,
      `the file is missing, but ${dir} holds ${blobs.length} blob(s), so the store existed and its file was lost. Restore ${file}, or remove ${dir} to seed a new store from the config`,
    );
  }

  /** Creates a new store file holding `initial` (its revision kept as given). Fails if the file exists. */
  static async create(file: string, initial: StoreData, opts?: { nodeId?: string }): Promise<FileStore> {
    const blobs = new BlobDir(file);
    const { json, committed, referenced } = prepare(initial, initial.revision);
    await removeStaleTemps(file);
    await blobs.writeAll(referenced);
    await writeDurably(file, encodeStoreFile(json), NEW_FILE_MODE, { exclusive: true });
    return new FileStore(file, committed, NEW_FILE_MODE, blobs, opts?.nodeId ?? 'local', false);
  }

  /** The last committed state. Deep-frozen: it is exactly what the file holds. */
  get data(): Readonly<StoreData> {
    return this.#data;
  }

  /**
   * Serialised read-modify-write. `fn` receives a private draft of the committed state (made when
   * its turn comes, so it sees every earlier write; deployed copies, lists and audit records are
   * shared frozen parts of the committed state and must be replaced, not mutated: see
   * Store.update) and may mutate it; alternatively it may return a whole new
   * StoreData-shaped object (format, string epoch, the three arrays), which is then written
   * instead of the draft. Any other return value (including the current `data` object) is only the
   * `result`. Throwing/rejecting (in `fn` or in `opts.check`) aborts: nothing is written and the
   * error reaches the caller. The store forces revision = previous + 1. `fn` must not call
   * update/replace (that is rejected).
   */
  update<T>(fn: (draft: StoreData) => T | Promise<T>, opts?: UpdateOptions): Promise<UpdateResult<T>> {
    return this.#enqueue(async () => {
      const current = this.#data;
      const draft = cloneState(current);
      const marker = { running: true };
      let result: T;
      try {
        result = await inWrite.run(marker, () => fn(draft));
      } finally {
        marker.running = false;
      }
      const next = result !== draft && result !== current && looksLikeStoreData(result) ? result : draft;
      const data = await this.#commit(next, current.revision + 1, opts?.check);
      return { data, result };
    });
  }

  /** Replaces everything (import). Serialised; revision = previous + 1 unless `keepRevision`. */
  replace(next: StoreData, opts?: { keepRevision?: boolean }): Promise<StoreData> {
    // The revision is read when the job runs (after every earlier queued write), not now.
    return this.#enqueue(() => this.#commit(cloneState(next), opts?.keepRevision === true ? next.revision : this.#data.revision + 1));
  }

  /** One process owns the file: nothing changes it behind this node's back. */
  onRemoteChange(_listener: (data: Readonly<StoreData>) => void): void {}

  reportApplied(report: ApplyReport): Promise<void> {
    this.#applied = { ...report, at: new Date().toISOString() };
    return Promise.resolve();
  }

  /**
   * The file store has exactly one node: this one. Other environments have no live node, which is
   * what the report says instead of pretending they were deployed.
   */
  deploymentResults(environments: readonly string[], _revision: number, own: { environment: string; success: boolean; message: string }): Promise<DeploymentResult[]> {
    const known = new Set(this.#data.environments.map((e) => e.name));
    return Promise.resolve(
      environments.map((env): DeploymentResult =>
        env === own.environment
          ? { environmentName: env, success: own.success, message: own.message }
          : { environmentName: env, success: false, message: known.has(env) ? 'no live gateway node' : 'unknown environment' },
      ),
    );
  }

  nodes(): Promise<NodeInfo[]> {
    const a = this.#applied;
    if (a === null) return Promise.resolve([]);
    return Promise.resolve([
      {
        nodeId: this.nodeId,
        environment: a.environment,
        revision: a.revision,
        snapshotHash: a.snapshotHash,
        lastSeen: new Date().toISOString(),
        state: 'live',
        failedRevision: a.failed?.revision ?? null,
        failedError: a.failed?.error ?? null,
      },
    ]);
  }

  health(): StoreHealth {
    return {
      writable: !this.#closed && !this.#readOnly,
      detail: { kind: 'file', file: this.file, revision: this.#data.revision, ...(this.#lastDirSyncError === null ? {} : { lastDirectorySyncError: this.#lastDirSyncError }) },
    };
  }

  /** Refuses new writes and waits for those already queued (including one in flight). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#tail;
  }

  #enqueue<R>(job: () => Promise<R>): Promise<R> {
    if (this.#closed) return Promise.reject(new Error(`store ${this.file} is closed`));
    if (this.#readOnly) return Promise.reject(new Error(`store ${this.file} is open read-only`));
    if (inWrite.getStore()?.running === true) {
      return Promise.reject(new Error('FileStore update/replace called from inside an update function (it would wait for itself)'));
    }
    const run = this.#tail.then(job);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #commit(next: StoreData, revision: number, check?: (next: Readonly<StoreData>) => void): Promise<StoreData> {
    if (isPlainObject(next)) next.revision = revision;
    check?.(next);
    const { json, committed, referenced } = prepare(next, revision);
    await this.#blobs.writeAll(referenced);
    let renamed = false;
    try {
      await writeDurably(this.file, encodeStoreFile(json), this.#mode, {
        afterRename: () => {
          renamed = true;
          this.#data = committed;
        },
      });
      this.#lastDirSyncError = null;
    } catch (err) {
      if (!renamed) throw err;
      // The rename happened: the file holds `committed` (its bytes were fsynced); only the
      // directory entry's durability is unknown. The write stands, so the caller enforces it, and
      // the error is kept for health() rather than failing a write that cannot be undone.
      this.#lastDirSyncError = (err as Error).message;
    }
    this.#data = committed;
    await this.#blobs.collect(new Set(referenced.keys()));
    return committed;
  }
}

/** The store file's bytes and mode; null when it does not exist. */
async function readStoreFile(file: string): Promise<{ bytes: Buffer; mode: number } | null> {
  let handle: FileHandle;
  try {
    handle = await fsOpen(file, 'r');
  } catch (err) {
    if (errCode(err) === 'ENOENT') return null;
    throw err; // EACCES, EIO...: not "absent" and not "corrupt"; the caller must see it.
  }
  try {
    const mode = (await handle.stat()).mode & 0o777;
    const bytes = await handle.readFile(); // EISDIR etc. propagate as they are
    return { bytes, mode };
  } finally {
    await handle.close();
  }
}

/** Every blob the state references (deployed copies in deployments and history). */
function referencedBlobs(d: Readonly<StoreData>): Set<string> {
  const out = new Set<string>();
  for (const p of d.projects) {
    for (const r of p.proxies) {
      for (const dep of Object.values(r.deployments)) out.add(blobHash(dep.proxy)!);
      for (const h of r.history ?? []) out.add(blobHash(h.proxy)!);
    }
  }
  return out;
}

/**
 * Validates `next` and serialises it with the given revision, each deployed copy sealed as a blob
 * and written as {"$blob": hash}. Returns the store file's data JSON, the blobs it references, and
 * the committed state (`next` itself, deep-frozen: the caller gave up the draft).
 */
function prepare(next: StoreData, revision: number): { json: string; committed: StoreData; referenced: Map<string, object> } {
  if (!isPlainObject(next)) throw new TypeError('refusing to write the store: the new state is not an object');
  next.revision = revision;
  const problem = checkData(next);
  if (problem !== null) throw new TypeError(`refusing to write an invalid store state: ${problem}`);
  const referenced = new Map<string, object>();
  const ref = (proxy: object): { $blob: string } => {
    if (!isPlainObject(proxy)) throw new TypeError('refusing to write an invalid store state: a deployed copy is not an object');
    const hash = sealBlob(proxy);
    referenced.set(hash, proxy);
    return { $blob: hash };
  };
  // The on-disk form: the same data with deployed copies replaced by references (shallow copies only).
  const disk = {
    ...next,
    projects: next.projects.map((p) => ({
      ...p,
      proxies: p.proxies.map((r) => ({
        ...r,
        deployments: Object.fromEntries(Object.entries(r.deployments).map(([env, dep]) => [env, { ...dep, proxy: ref(dep.proxy) }])),
        ...(r.history === undefined ? {} : { history: r.history.map((h) => ({ ...h, proxy: ref(h.proxy) })) }),
      })),
    })),
  };
  const json = pacedStringify(disk); // throws on cycles/BigInt: nothing written
  return { json, committed: deepFreeze(next), referenced };
}

function encodeStoreFile(dataJson: string): Buffer {
  // Encode the data once, straight into the output buffer, and hash those exact bytes.
  const dataLength = Buffer.byteLength(dataJson, 'utf8');
  const prefixLength = envelopePrefix('0'.repeat(64)).length; // ASCII
  const out = Buffer.allocUnsafe(prefixLength + dataLength + 2);
  out.write(dataJson, prefixLength, 'utf8');
  const sha = pacedSha256(out.subarray(prefixLength, prefixLength + dataLength));
  out.write(envelopePrefix(sha), 0, 'ascii');
  out.write('}\n', prefixLength + dataLength, 'ascii');
  return out;
}

function envelopePrefix(sha: string, format: number = ENVELOPE_FORMAT): string {
  return `{"ipgate":"${ENVELOPE_TAG}","format":${format},"sha256":"${sha}","data":`;
}

/** Validates a store file's bytes and its blobs completely; throws StoreCorruptError naming the file and the reason. */
async function decodeStoreFile(file: string, bytes: Buffer, blobs: BlobDir): Promise<StoreData> {
  const corrupt = (reason: string, cause?: unknown): StoreCorruptError =>
    new StoreCorruptError(file, reason, cause === undefined ? undefined : { cause });

  if (bytes.length === 0) throw corrupt('the file is empty');
  let text: string;
  try {
    // fatal: invalid UTF-8 is corruption, not U+FFFD; ignoreBOM: a BOM stays and fails the parse.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    throw corrupt('invalid UTF-8', err);
  }
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch (err) {
    throw corrupt(`not valid JSON (${err instanceof Error ? err.message : String(err)})`, err);
  }
  if (!isPlainObject(envelope)) throw corrupt('the top level is not a JSON object');
  if (envelope['ipgate'] !== ENVELOPE_TAG) throw corrupt(`not an ipgate store file (ipgate: ${show(envelope['ipgate'])})`);
  const format = envelope['format'];
  if (format !== ENVELOPE_FORMAT && format !== LEGACY_ENVELOPE_FORMAT) throw corrupt(`unsupported envelope format ${show(format)}`);
  const sha = envelope['sha256'];
  if (typeof sha !== 'string' || !SHA256_HEX.test(sha)) throw corrupt(`bad sha256 field ${show(sha)}`);
  if (!('data' in envelope)) throw corrupt('the data member is missing');

  // Hash the exact bytes of the data member. Prefix and suffix are ASCII, so char offsets are byte offsets.
  const prefix = envelopePrefix(sha, format);
  const suffixLength = text.endsWith('}\n') ? 2 : text.endsWith('}') ? 1 : -1;
  if (!text.startsWith(prefix) || suffixLength < 0) {
    throw corrupt('unexpected envelope layout (the store file is written by ipgate only and must not be edited by hand)');
  }
  const actual = createHash('sha256')
    .update(bytes.subarray(prefix.length, bytes.length - suffixLength))
    .digest('hex');
  if (actual !== sha) throw corrupt(`checksum mismatch (recorded ${sha}, computed ${actual})`);

  const data = envelope['data'];
  const problem = checkData(data);
  if (problem !== null) throw corrupt(problem);
  try {
    await inflate(data as StoreData, blobs, format === LEGACY_ENVELOPE_FORMAT);
  } catch (err) {
    if (err instanceof BlobCorruptError) throw corrupt(err.message, err);
    throw err;
  }
  return deepFreeze(data as StoreData);
}

/** Replaces every {"$blob": hash} with the verified blob (one shared object per hash). */
async function inflate(d: StoreData, blobs: BlobDir, legacy: boolean): Promise<void> {
  const loaded = new Map<string, object>();
  const resolve = async (where: string, proxy: unknown): Promise<never | object> => {
    if (legacy) {
      if (!isPlainObject(proxy)) throw new BlobCorruptError(where, 'a deployed copy is not an object');
      sealBlob(proxy);
      return proxy;
    }
    const hash = isPlainObject(proxy) ? proxy['$blob'] : undefined;
    if (typeof hash !== 'string' || !SHA256_HEX.test(hash)) throw new BlobCorruptError(where, `bad blob reference ${show(proxy)}`);
    let value = loaded.get(hash);
    if (value === undefined) {
      value = await blobs.load(hash);
      loaded.set(hash, value);
    }
    return value;
  };
  for (const [i, p] of d.projects.entries()) {
    for (const [j, r] of p.proxies.entries()) {
      if (!isPlainObject(r.deployments)) throw new BlobCorruptError(`projects[${i}].proxies[${j}]`, 'deployments is not an object');
      for (const [env, dep] of Object.entries(r.deployments)) dep.proxy = (await resolve(`projects[${i}].proxies[${j}].deployments.${env}`, dep.proxy)) as typeof dep.proxy;
      if (r.history !== undefined) {
        if (!Array.isArray(r.history)) throw new BlobCorruptError(`projects[${i}].proxies[${j}]`, 'history is not an array');
        for (const [k, h] of r.history.entries()) h.proxy = (await resolve(`projects[${i}].proxies[${j}].history[${k}]`, h.proxy)) as typeof h.proxy;
      }
    }
  }
}

/** The structural checks every stored state must pass (on open and before every write). */
function checkData(data: unknown): string | null {
  if (!isPlainObject(data)) return 'data is not an object';
  if (data['format'] !== STORE_FORMAT) return `unsupported data format ${show(data['format'])}`;
  const revision = data['revision'];
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 0) {
    return `revision ${show(revision)} is not a non-negative integer`;
  }
  if (typeof data['epoch'] !== 'string') return `epoch ${show(data['epoch'])} is not a string`;
  for (const key of ['environments', 'projects', 'audit'] as const) {
    const list = data[key];
    if (!Array.isArray(list)) return `${key} is not an array`;
    for (let i = 0; i < list.length; i++) {
      if (!isPlainObject(list[i])) return `${key}[${i}] is not an object`;
    }
  }
  const projects = data['projects'] as Record<string, unknown>[];
  for (let i = 0; i < projects.length; i++) {
    const project = projects[i] as Record<string, unknown>;
    if (!Array.isArray(project['proxies'])) return `projects[${i}].proxies is not an array`;
    if (!Array.isArray(project['ipGroups'])) return `projects[${i}].ipGroups is not an array`;
  }
  return null;
}

function looksLikeStoreData(value: unknown): value is StoreData {
  return (
    isPlainObject(value) &&
    value['format'] === STORE_FORMAT &&
    typeof value['epoch'] === 'string' &&
    Array.isArray(value['environments']) &&
    Array.isArray(value['projects']) &&
    Array.isArray(value['audit'])
  );
}

/**
 * temp file (same directory, exclusive create) → write all bytes → fsync → close → rename (or, for
 * `exclusive`, link, which fails if the target exists) → fsync the directory. The temp file is
 * removed if anything before the rename fails.
 */
async function writeDurably(
  file: string,
  bytes: Buffer,
  mode: number,
  opts: { exclusive?: boolean; afterRename?: () => void },
): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${tempCounter++}-${randomBytes(4).toString('hex')}`;
  let handle: FileHandle | undefined;
  let tmpExists = false;
  try {
    handle = await fsOpen(tmp, 'wx', mode);
    tmpExists = true;
    await handle.writeFile(bytes); // loops until every byte is written
    await handle.sync();
    const h = handle;
    handle = undefined;
    await h.close();
    if (opts.exclusive === true) {
      await publishExclusive(tmp, file);
    } else {
      await rename(tmp, file);
    }
    tmpExists = false;
  } catch (err) {
    if (handle !== undefined) await handle.close().catch(() => undefined);
    if (tmpExists) await unlink(tmp).catch(() => undefined);
    throw err;
  }
  opts.afterRename?.();
  await fsyncDirectory(dirname(file));
}

/** Makes `tmp` appear as `file` only if `file` does not exist (atomically, where hard links work). */
async function publishExclusive(tmp: string, file: string): Promise<void> {
  try {
    await link(tmp, file); // EEXIST if the store exists
  } catch (err) {
    const code = errCode(err);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    // No hard links on this file system: check, then rename (a small race, only at creation).
    const exists = await stat(file).then(
      () => true,
      (e: unknown) => (errCode(e) === 'ENOENT' ? false : Promise.reject(e)),
    );
    if (exists) throw Object.assign(new Error(`EEXIST: store file already exists, ${file}`), { code: 'EEXIST' });
    await rename(tmp, file);
    return;
  }
  await unlink(tmp).catch(() => undefined); // the store is published; a leftover temp is removed at open
}

async function fsyncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsOpen(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = errCode(err);
    // Some platforms (Windows) cannot open or fsync a directory; only those codes are tolerated.
    if (code !== 'EISDIR' && code !== 'EINVAL') throw err;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Removes `<file>.tmp-*` left by a crash mid-write. Best effort: a leftover is harmless. */
async function removeStaleTemps(file: string): Promise<void> {
  const prefix = `${basename(file)}.tmp-`;
  const dir = dirname(file);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => unlink(join(dir, n)).catch(() => undefined)));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
