/**
 * Content-addressed, immutable JSON blobs beside the store file: `<store>.blobs/<sha256>.json`.
 *
 * Deployed copies of API proxies (one per deployment and per history entry, each possibly a
 * 100,000-entry list) live here instead of inside the store file. A blob is written once, before
 * the store file that references it is renamed into place, and its name is the SHA-256 of its
 * bytes, so it verifies itself on load. Rewriting the store file then costs only the working
 * copies, however long the deploy history is: this is what keeps a large policy write fast.
 *
 * Objects loaded from or written to blobs are deep-frozen and remembered with their hash, so the
 * same object is never serialised or hashed twice, and drafts share them instead of copying.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open as fsOpen, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pace, pacedSha256, pacedStringify } from '../../policy/pace.js';

const NAME = /^([0-9a-f]{64})\.json$/;

/** Hashes of frozen objects that are stored as blobs. An object in here is never mutated. */
const hashes = new WeakMap<object, string>();

/** Is `value` a stored (immutable, shareable) blob object? */
export function isBlob(value: object): boolean {
  return hashes.has(value);
}

export function blobHash(value: object): string | undefined {
  return hashes.get(value);
}

/** JSON of sealed blobs not yet known to be on disk (dropped once written). */
const pendingJson = new WeakMap<object, string>();

/**
 * Deep-freezes `value`, hashes its JSON once, and remembers it as a blob. Returns the hash.
 * `stored`: the blob was just read from storage, so its JSON is not kept for a later write.
 */
export function sealBlob(value: object, opts?: { stored?: boolean }): string {
  const known = hashes.get(value);
  if (known !== undefined) return known;
  const json = pacedStringify(value);
  const hash = pacedSha256(json);
  deepFreeze(value);
  hashes.set(value, hash);
  if (opts?.stored !== true) pendingJson.set(value, json);
  return hash;
}

/** The JSON text a sealed blob is stored as (the one its hash names). */
export function blobJson(value: object): string {
  return pendingJson.get(value) ?? JSON.stringify(value);
}

/** The blob is durably stored: its JSON text need not be kept any longer. */
export function markStored(value: object): void {
  pendingJson.delete(value);
}

/**
 * Arrays that are frozen and hold only primitives (an ipList of 100,000 strings): nothing can
 * change them, so drafts share them instead of copying them, and derived values (the audit's
 * summary hash) may be remembered per array. Filled by deepFreeze and freezeLeafArrays.
 */
const leafArrays = new WeakSet<readonly unknown[]>();

/**
 * Objects that deepFreeze froze together with everything inside them. Object.isFrozen alone does
 * not say that: deepFreeze stops at an object that is already frozen, and an object frozen by
 * someone else may hold mutable ones. Only these are shared whole by cloneState.
 */
const deepFrozen = new WeakSet<object>();

/** Is `value` a frozen array of primitives that drafts share (see leafArrays)? */
export function isSharedLeafArray(value: unknown): value is readonly unknown[] {
  return Array.isArray(value) && leafArrays.has(value);
}

/**
 * If `a` holds elements and every one is a primitive, freeze it and register it as a shared leaf
 * array. An empty array says nothing about what it will hold (writes append projects, proxies and
 * entries to arrays that may be empty), so it stays private to each draft.
 */
function freezeIfLeaf(a: unknown[]): void {
  if (a.length === 0) return;
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if ((typeof v === 'object' && v !== null) || typeof v === 'function') return;
    if ((i & 63) === 0) pace(64);
  }
  Object.freeze(a);
  leafArrays.add(a);
  deepFrozen.add(a);
}

/**
 * Freezes every array of primitives inside `value` (a draft part about to be shared, e.g. the
 * working copy a deployment copies), so that cloneDraft shares those arrays instead of copying
 * them. An in-place change to such an array afterwards throws (modules are strict), it cannot
 * silently reach the other holder; every write replaces lists rather than editing them.
 */
export function freezeLeafArrays(value: unknown): void {
  if (typeof value !== 'object' || value === null || isBlob(value)) return;
  if (Array.isArray(value)) {
    if (leafArrays.has(value)) return;
    if (!Object.isFrozen(value)) freezeIfLeaf(value);
    if (leafArrays.has(value)) return;
    for (const v of value) freezeLeafArrays(v);
    return;
  }
  for (const k of Object.keys(value)) freezeLeafArrays((value as Record<string, unknown>)[k]);
}

/**
 * A private, mutable copy of a committed state for one write. Blobs (deployed copies, frozen and
 * content-addressed) and frozen arrays of primitives (the lists) are shared, not copied;
 * everything else is copied, so the draft never aliases a mutable part of the committed state.
 */
export function cloneDraft<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (isBlob(value)) return value;
  if (Array.isArray(value)) {
    if (leafArrays.has(value)) return value;
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) {
      out[i] = cloneDraft(value[i]);
      pace();
    }
    return out as T;
  }
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value)) out[k] = cloneDraft((value as Record<string, unknown>)[k]);
  return out as T;
}

/**
 * cloneDraft of a whole store state, sharing its audit records. A write appends records and trims
 * the oldest, but never changes one, so the draft's audit array is a new array of the committed
 * records that deepFreeze froze whole: with the trail full (10,000 records) that is ~20 ms and
 * ~100,000 objects of garbage less per write. Any other record (a state handed in from outside,
 * even one frozen by its caller) is copied.
 */
export function cloneState<T extends object>(state: T): T {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(state)) {
    const v = (state as Record<string, unknown>)[k];
    out[k] = k === 'audit' && Array.isArray(v) ? v.map((r: unknown) => (typeof r === 'object' && r !== null && deepFrozen.has(r) ? r : cloneDraft(r))) : cloneDraft(v);
  }
  return out as T;
}

export class BlobCorruptError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`store blob ${file} is corrupt: ${reason}`);
    this.name = 'BlobCorruptError';
  }
}

let tempCounter = 0;

export class BlobDir {
  readonly dir: string;
  /** Blobs known to be durably on disk. */
  private readonly present = new Set<string>();

  constructor(storeFile: string) {
    this.dir = join(dirname(storeFile), `${basename(storeFile)}.blobs`);
  }

  /** Loads and verifies one blob; throws BlobCorruptError if it is missing or does not match its name. */
  async load(hash: string): Promise<object> {
    const file = join(this.dir, `${hash}.json`);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobCorruptError(file, 'the referenced blob is missing');
      throw err;
    }
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== hash) throw new BlobCorruptError(file, `checksum mismatch (computed ${actual})`);
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new BlobCorruptError(file, `not valid JSON (${(err as Error).message})`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BlobCorruptError(file, 'not a JSON object');
    deepFreeze(value);
    hashes.set(value, hash);
    this.present.add(hash);
    return value;
  }

  /**
   * Makes every given blob durable (temp file, fsync, rename, then one fsync of the directory).
   * Must complete before a store file that references them is published.
   */
  async writeAll(blobs: ReadonlyMap<string, object>): Promise<void> {
    const missing = [...blobs].filter(([hash]) => !this.present.has(hash));
    if (missing.length === 0) return;
    // A new directory's own entry must be durable before a store file that needs it is published.
    if ((await mkdir(this.dir, { recursive: true, mode: 0o700 })) !== undefined) await fsyncDir(dirname(this.dir));
    const written: [string, object][] = [];
    for (const [hash, value] of missing) {
      const json = blobJson(value);
      const file = join(this.dir, `${hash}.json`);
      const tmp = `${file}.tmp-${process.pid}-${tempCounter++}-${randomBytes(4).toString('hex')}`;
      let handle: FileHandle | undefined;
      try {
        handle = await fsOpen(tmp, 'wx', 0o600);
        await handle.writeFile(json);
        await handle.sync();
        await handle.close();
        handle = undefined;
        await rename(tmp, file);
      } catch (err) {
        await handle?.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
      written.push([hash, value]);
    }
    await fsyncDir(this.dir);
    // Known durable only now: a failure above leaves them unmarked, so the next write writes and
    // fsyncs them again before any store file may reference them.
    for (const [hash, value] of written) {
      this.present.add(hash);
      pendingJson.delete(value);
    }
  }

  /** Removes blobs (and stray temp files) no longer referenced. Best effort: a leftover is harmless. */
  async collect(keep: ReadonlySet<string>): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      const m = NAME.exec(name);
      if (m !== null && keep.has(m[1]!)) continue;
      if (m !== null) this.present.delete(m[1]!);
      await unlink(join(this.dir, name)).catch(() => undefined);
    }
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await fsOpen(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL') throw err;
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    // An array of primitives is frozen in one pass and registered for sharing (freezeIfLeaf);
    // anything else is frozen member by member.
    if (Array.isArray(value)) freezeIfLeaf(value);
    if (Object.isFrozen(value)) return value;
    Object.freeze(value);
    let all = true;
    for (const v of Object.values(value)) {
      deepFreeze(v);
      if (typeof v === 'object' && v !== null && !deepFrozen.has(v)) all = false;
      pace();
    }
    if (all) deepFrozen.add(value);
  }
  return value;
}
