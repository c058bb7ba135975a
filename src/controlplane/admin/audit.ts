/**
 * Audit records: who changed what, with the before and after. Large lists (a 1,000,000-entry
 * ipList) are summarised by size and hash so the audit trail cannot grow the store without bound.
 */
import { pacedSha256, pacedStringify } from '../../policy/pace.js';
import { freezeLeafArrays, isSharedLeafArray } from '../store/blobs.js';
import type { AuditRecord, StoreData } from '../store/state.js';

const MAX_RECORDS = 10_000;
const MAX_LIST = 100;

/**
 * Summaries of frozen lists, by identity. A replaced list is the "after" of one write and the
 * "before" of the next (drafts share frozen lists), so each list is serialised and hashed once.
 */
const listSummaries = new WeakMap<readonly unknown[], { items: number; sha256: string }>();

function summariseList(v: readonly unknown[]): { items: number; sha256: string } {
  const known = listSummaries.get(v);
  if (known !== undefined) return known;
  // The audit is written last in a write: what it summarises is about to be committed (and
  // deep-frozen) anyway, so a list of primitives is frozen now, which lets the next write's
  // "before" find its summary even when this write did not deploy (deployTo freezes otherwise).
  freezeLeafArrays(v);
  const out = { items: v.length, sha256: pacedSha256(pacedStringify(v)) };
  // Only a frozen list of primitives cannot change after it was hashed.
  if (isSharedLeafArray(v)) listSummaries.set(v, out);
  return out;
}

function summarise(v: unknown): unknown {
  if (Array.isArray(v)) {
    if (v.length > MAX_LIST) return summariseList(v);
    return v.map(summarise);
  }
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = summarise(x);
    return out;
  }
  return v;
}

export function appendAudit(d: StoreData, r: Omit<AuditRecord, 'id' | 'time' | 'revision' | 'before' | 'after'> & { before: unknown; after: unknown }): void {
  const last = d.audit[d.audit.length - 1];
  d.audit.push({
    id: (last?.id ?? 0) + 1,
    time: new Date().toISOString(),
    revision: d.revision + 1,
    actor: r.actor,
    action: r.action,
    project: r.project,
    proxy: r.proxy,
    target: r.target,
    before: summarise(r.before),
    after: summarise(r.after),
  });
  if (d.audit.length > MAX_RECORDS) d.audit.splice(0, d.audit.length - MAX_RECORDS);
}
