/**
 * Audit records: who changed what, with the before and after. Large lists (a 1,000,000-entry
 * ipList) are summarised by size and hash so the audit trail cannot grow the store without bound.
 */
import { pacedSha256, pacedStringify } from '../../policy/pace.js';
import type { AuditRecord, StoreData } from '../store/state.js';

const MAX_RECORDS = 10_000;
const MAX_LIST = 100;

function summarise(v: unknown): unknown {
  if (Array.isArray(v)) {
    if (v.length > MAX_LIST) return { items: v.length, sha256: pacedSha256(pacedStringify(v)) };
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
