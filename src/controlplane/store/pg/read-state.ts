/**
 * Reading the cluster store's state: the head row, then the rows that differ from what this node
 * already holds (all of them on a full reload), then the blobs it does not have yet.
 *
 * The caller provides consistency: a sync reads inside one REPEATABLE READ transaction (one
 * snapshot for every statement), and a write reads after taking the head row's lock (no other
 * writer can commit in between).
 */
import { createHash } from 'node:crypto';
import type { Sql, TransactionSql } from 'postgres';
import { blobHash, deepFreeze, sealBlob } from '../blobs.js';
import type { AuditRecord, ProxyRecord, StoreData } from '../state.js';
import { assemble, blobRefs, decodeRow, rowId, type CachedRow, type Kind } from './rows.js';

export interface Head {
  readonly epoch: string;
  readonly revision: number;
  readonly format: number;
  /** The random id of the write that made `revision` (a restore cannot make it repeat). */
  readonly writeId: string;
}

/** Everything a node knows of one revision of the store. Immutable once built. */
export interface StateCache {
  readonly head: { readonly epoch: string; readonly revision: number; readonly writeId: string };
  readonly rows: ReadonlyMap<string, CachedRow>;
  /** Audit record id → the revision that wrote it, and the record. */
  readonly audit: ReadonlyMap<number, { readonly revision: number; readonly record: AuditRecord }>;
  readonly blobs: ReadonlyMap<string, object>;
  /** Deep-frozen. */
  readonly data: Readonly<StoreData>;
}

export type Q = Sql | TransactionSql;

export async function readHead(q: Q, s: string): Promise<Head | null> {
  const rows = await q.unsafe(`select revision, epoch::text as epoch, format, write_id::text as write_id from ${s}.head`);
  const r = rows[0];
  if (r === undefined) return null;
  return { revision: Number(r.revision), epoch: String(r.epoch), format: Number(r.format), writeId: String(r.write_id) };
}

/**
 * Is the revision `have` holds still the database's revision of that number? 'same' if so.
 * 'rewritten' after a restore to an earlier point followed by new writes: the numbers repeat, the
 * write ids do not. 'trimmed' when its row is gone: the store keeps only the newest
 * store.postgres.historyRevisions revisions (pg-store.ts #trimHistory), and this node is further
 * behind. Anything but 'same' means a full read.
 */
export async function sameHistory(q: Q, s: string, have: StateCache): Promise<'same' | 'rewritten' | 'trimmed'> {
  const [r] = await q.unsafe(`select write_id::text as write_id from ${s}.revisions where revision = $1`, [have.head.revision]);
  if (r === undefined) return 'trimmed';
  return String(r.write_id) === have.head.writeId ? 'same' : 'rewritten';
}

/** Must a node holding `have` reload everything to reach `head`? (Another store, or one restored to an earlier point.) */
export function needsFullReload(have: StateCache | null, head: Head): boolean {
  return have === null || have.head.epoch !== head.epoch || head.revision < have.head.revision;
}

/**
 * The state at `head`, reusing what `have` already holds when that is safe. Throws on anything it
 * cannot trust (a missing or corrupt blob, a row without its project): the caller keeps its state.
 */
export async function readState(q: Q, s: string, head: Head, have: StateCache | null): Promise<StateCache & { full: boolean; trimmed: boolean }> {
  const history = needsFullReload(have, head) ? null : await sameHistory(q, s, have!);
  const base = history === 'same' ? have : null;
  const keep = new Map<string, CachedRow>();
  let fetched: { kind: Kind; key: string; pos: number; version: number; rev: number; rowVersion: number; doc: string }[];
  if (base === null) {
    const all = await q.unsafe(`select kind, key, pos, version, rev, row_version, doc::text as doc from ${s}.resources`);
    fetched = all.map((r) => ({ kind: r.kind as Kind, key: String(r.key), pos: Number(r.pos), version: Number(r.version), rev: Number(r.rev), rowVersion: Number(r.row_version), doc: String(r.doc) }));
  } else {
    const keys = await q.unsafe(`select kind, key, pos, version, rev, row_version from ${s}.resources`);
    const wanted: { kind: string; key: string }[] = [];
    const meta = new Map<string, { pos: number; version: number; rev: number; rowVersion: number }>();
    for (const r of keys) {
      const id = rowId(r.kind as Kind, String(r.key));
      const m = { pos: Number(r.pos), version: Number(r.version), rev: Number(r.rev), rowVersion: Number(r.row_version) };
      const c = base.rows.get(id);
      if (c !== undefined && c.rev === m.rev && c.rowVersion === m.rowVersion && c.pos === m.pos) keep.set(id, c);
      else {
        wanted.push({ kind: String(r.kind), key: String(r.key) });
        meta.set(id, m);
      }
    }
    fetched = [];
    if (wanted.length > 0) {
      const docs = await q.unsafe(
        `select r.kind, r.key, r.doc::text as doc from ${s}.resources r join json_to_recordset($1::text::json) as w(kind text, key text) on r.kind = w.kind and r.key = w.key`,
        [JSON.stringify(wanted)],
      );
      for (const r of docs) {
        const id = rowId(r.kind as Kind, String(r.key));
        const m = meta.get(id)!;
        fetched.push({ kind: r.kind as Kind, key: String(r.key), ...m, doc: String(r.doc) });
      }
      // A row deleted between the two statements cannot happen (one snapshot, or the head lock).
      if (fetched.length !== wanted.length) throw new Error('the resources changed while they were read');
    }
  }

  // Parse the fetched rows, then get the blobs they reference that this node does not hold.
  const parsed = fetched.map((r) => ({ ...r, value: JSON.parse(r.doc) as unknown }));
  const blobs = new Map<string, object>();
  const missing = new Set<string>();
  const want = (hash: string): void => {
    const known = base?.blobs.get(hash);
    if (known !== undefined) blobs.set(hash, known);
    else missing.add(hash);
  };
  for (const r of keep.values()) if (r.kind === 'proxy') for (const h of heldBlobRefs(r.value as ProxyRecord)) want(h);
  for (const r of parsed) if (r.kind === 'proxy') for (const h of blobRefs(r.value)) want(h);
  if (missing.size > 0) {
    const got = await q.unsafe(`select hash, body from ${s}.blobs where hash in (select json_array_elements_text($1::text::json))`, [JSON.stringify([...missing])]);
    for (const b of got) {
      const hash = String(b.hash);
      const body = String(b.body);
      // A blob verifies itself: its name is the SHA-256 of its text.
      const actual = createHash('sha256').update(body).digest('hex');
      if (actual !== hash) throw new Error(`store blob ${hash} is corrupt: its text hashes to ${actual}`);
      const value: unknown = JSON.parse(body);
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`store blob ${hash} is not a JSON object`);
      if (sealBlob(value, { stored: true }) !== hash) throw new Error(`store blob ${hash} is not in canonical form`);
      blobs.set(hash, value);
      missing.delete(hash);
    }
    if (missing.size > 0) throw new Error(`store blobs are missing: ${[...missing].join(', ')}`);
  }

  const rows = new Map(keep);
  for (const r of parsed) {
    const value = deepFreeze(decodeRow(r.kind, r.key, r.value, blobs));
    rows.set(rowId(r.kind, r.key), { kind: r.kind, key: r.key, pos: r.pos, version: r.version, json: r.doc, rev: r.rev, rowVersion: r.rowVersion, value });
  }

  // Audit records are immutable once written, each in the revision that wrote it, and only ever
  // trimmed from the oldest end: read those newer than `have`, and drop what was trimmed.
  const audit = new Map<number, { revision: number; record: AuditRecord }>();
  const addRows = (got: readonly Record<string, unknown>[]): void => {
    for (const r of got) audit.set(Number(r.id), { revision: Number(r.revision), record: deepFreeze(JSON.parse(String(r.doc)) as AuditRecord) });
  };
  if (base === null) {
    addRows(await q.unsafe(`select id, revision, doc::text as doc from ${s}.audit`));
  } else {
    const [range] = await q.unsafe(`select count(*)::bigint as n, min(id) as lo from ${s}.audit`);
    const lo = range?.lo === null || range?.lo === undefined ? Number.POSITIVE_INFINITY : Number(range.lo);
    for (const [id, a] of base.audit) if (id >= lo) audit.set(id, a);
    addRows(await q.unsafe(`select id, revision, doc::text as doc from ${s}.audit where revision > $1`, [base.head.revision]));
    // Anything else (a hand-edited table) means the incremental view cannot be trusted: read it all.
    if (audit.size !== Number(range?.n ?? 0)) {
      audit.clear();
      addRows(await q.unsafe(`select id, revision, doc::text as doc from ${s}.audit`));
    }
  }

  const data = deepFreeze(assemble(head, rows.values(), [...audit.values()].map((a) => a.record)));
  return { head: { epoch: head.epoch, revision: head.revision, writeId: head.writeId }, rows, audit, blobs, data, full: base === null, trimmed: history === 'trimmed' };
}

/** The blobs a decoded proxy record holds (its deployed copies are sealed blob objects). */
function heldBlobRefs(r: ProxyRecord): string[] {
  const out: string[] = [];
  for (const dep of Object.values(r.deployments)) out.push(blobHash(dep.proxy)!);
  for (const h of r.history ?? []) out.push(blobHash(h.proxy)!);
  return out;
}
