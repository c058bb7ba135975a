/**
 * The cluster store's relational form of StoreData, and the diff a write turns into statements.
 *
 * Every addressable resource is one row of the `resources` table, keyed by (kind, key), with its
 * JSON exactly as serialised here (a `json` column keeps the text as written, so key order, and
 * with it every node's snapshot hash, is the same everywhere; `jsonb` would reorder keys):
 *
 *   environment   key = name                        an EnvironmentRecord
 *   project       key = name                        the ProjectRecord without proxies and ipGroups
 *   proxy         key = ["project","proxy"]         the ProxyRecord, deployed copies as {"$blob": sha256}
 *   ip_group      key = ["project","group id"]      the IpGroupRecord
 *   admin_access  key = admin-access                the AdminAccessRecord
 *
 * Deployed copies (deployments[env].proxy, history[i].proxy) are immutable, content-addressed blobs
 * in the `blobs` table, written once: a write of a 100,000-entry policy rewrites the working copy's
 * row, never the deploy history. Audit records are rows of `audit` (append-only, trimmed).
 *
 * `pos` orders each list (per project for proxies and groups). Positions of rows that keep their
 * relative order are kept, so deleting the first of many proxies rewrites one row, not all.
 */
import { pacedStringify } from '../../../policy/pace.js';
import { blobHash, isBlob, sealBlob } from '../blobs.js';
import { STORE_FORMAT, type AdminAccessRecord, type AuditRecord, type EnvironmentRecord, type IpGroupRecord, type ProjectRecord, type ProxyRecord, type StoreData } from '../state.js';

export type Kind = 'environment' | 'project' | 'proxy' | 'ip_group' | 'admin_access';

export const ADMIN_ACCESS_KEY = 'admin-access';

/** A resource row as this node last read or wrote it. `value` is the decoded, frozen record. */
export interface CachedRow {
  readonly kind: Kind;
  readonly key: string;
  readonly pos: number;
  /** The resource's own version (its ETag) where it has one, else 0. */
  readonly version: number;
  /** The row's JSON exactly as stored. */
  readonly json: string;
  /** The head revision of the write that last changed the row. */
  readonly rev: number;
  /** Incremented on every change of the row: what a write's UPDATE and DELETE are guarded by. */
  readonly rowVersion: number;
  readonly value: object;
}

/** A row as a new state wants it. */
export interface DesiredRow {
  readonly kind: Kind;
  readonly key: string;
  /** Rows sharing a list share a group; positions are per group. */
  readonly group: string;
  readonly version: number;
  readonly json: string;
  readonly value: object;
}

export interface Encoded {
  /** By rowId, in list order within each group. */
  readonly rows: Map<string, DesiredRow>;
  /** Every blob the state references, by hash. */
  readonly blobs: Map<string, object>;
}

export function rowId(kind: Kind, key: string): string {
  return `${kind}\u0000${key}`;
}

export function pairKey(project: string, name: string): string {
  return JSON.stringify([project, name]);
}

export function splitPairKey(key: string): [string, string] {
  const v: unknown = JSON.parse(key);
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string') throw new Error(`bad resource key ${key}`);
  return [v[0], v[1]];
}

/**
 * The row form of a state. Deployed copies are sealed as blobs (once per object). Serialised with
 * yield points (policy/pace.ts): a proxy row holds its whole working copy, lists included.
 */
export function encode(d: Readonly<StoreData>): Encoded {
  const rows = new Map<string, DesiredRow>();
  const blobs = new Map<string, object>();
  const put = (kind: Kind, key: string, group: string, version: number, value: object, json: string = pacedStringify(value)): void => {
    const id = rowId(kind, key);
    if (rows.has(id)) throw new TypeError(`refusing to write the store: duplicate ${kind} ${key}`);
    rows.set(id, { kind, key, group, version, json, value });
  };
  const ref = (proxy: object): { $blob: string } => {
    const hash = sealBlob(proxy);
    blobs.set(hash, proxy);
    return { $blob: hash };
  };
  for (const e of d.environments) put('environment', e.name, 'environment', 0, e);
  for (const p of d.projects) {
    const { proxies, ipGroups, ...shell } = p;
    put('project', p.name, 'project', 0, shell);
    for (const r of proxies) {
      // The stored form: the same record with deployed copies replaced by references.
      const disk = {
        ...r,
        deployments: Object.fromEntries(Object.entries(r.deployments).map(([env, dep]) => [env, { ...dep, proxy: ref(dep.proxy) }])),
        ...(r.history === undefined ? {} : { history: r.history.map((h) => ({ ...h, proxy: ref(h.proxy) })) }),
      };
      put('proxy', pairKey(p.name, r.draft.name), `proxy\u0000${p.name}`, r.version, r, pacedStringify(disk));
    }
    for (const g of ipGroups) put('ip_group', pairKey(p.name, g.id), `ip_group\u0000${p.name}`, g.version, g);
  }
  if (d.adminAccess !== undefined) put('admin_access', ADMIN_ACCESS_KEY, 'admin_access', d.adminAccess.version, d.adminAccess);
  return { rows, blobs };
}

/** The $blob references in a stored proxy row. */
export function blobRefs(json: unknown): string[] {
  const out: string[] = [];
  const r = json as { deployments?: Record<string, { proxy?: { $blob?: unknown } }>; history?: { proxy?: { $blob?: unknown } }[] };
  for (const dep of Object.values(r.deployments ?? {})) if (typeof dep.proxy?.$blob === 'string') out.push(dep.proxy.$blob);
  for (const h of r.history ?? []) if (typeof h.proxy?.$blob === 'string') out.push(h.proxy.$blob);
  return out;
}

/** A stored row's parsed JSON as a record: proxies get their deployed copies back from `blobs`. */
export function decodeRow(kind: Kind, key: string, v: unknown, blobs: ReadonlyMap<string, object>): object {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${kind} ${key}: not a JSON object`);
  if (kind !== 'proxy') return v;
  const r = v as ProxyRecord;
  const inflate = (where: string, proxy: unknown): ProxyRecord['draft'] => {
    const hash = (proxy as { $blob?: unknown } | null)?.$blob;
    const blob = typeof hash === 'string' ? blobs.get(hash) : undefined;
    if (blob === undefined) throw new Error(`proxy ${key}: ${where} references a missing blob ${JSON.stringify(hash)}`);
    return blob as ProxyRecord['draft'];
  };
  if (typeof r.deployments !== 'object' || r.deployments === null) throw new Error(`proxy ${key}: deployments is not an object`);
  for (const [env, dep] of Object.entries(r.deployments)) dep.proxy = inflate(`deployments.${env}`, dep.proxy);
  if (r.history !== undefined) r.history.forEach((h, i) => (h.proxy = inflate(`history[${i}]`, h.proxy)));
  return r;
}

/** The state held by a set of rows (any order) and audit records. Not frozen. */
export function assemble(head: { epoch: string; revision: number }, rows: Iterable<CachedRow>, audit: readonly AuditRecord[]): StoreData {
  const byPos = (a: CachedRow, b: CachedRow): number => a.pos - b.pos || (a.key < b.key ? -1 : 1);
  const lists = new Map<Kind, CachedRow[]>();
  for (const r of rows) {
    const list = lists.get(r.kind);
    if (list === undefined) lists.set(r.kind, [r]);
    else list.push(r);
  }
  for (const list of lists.values()) list.sort(byPos);
  const projects: ProjectRecord[] = (lists.get('project') ?? []).map((r) => ({ ...(r.value as Omit<ProjectRecord, 'proxies' | 'ipGroups'>), proxies: [], ipGroups: [] }));
  const byName = new Map(projects.map((p) => [p.name, p]));
  const owner = (r: CachedRow): ProjectRecord => {
    const [project] = splitPairKey(r.key);
    const p = byName.get(project);
    if (p === undefined) throw new Error(`${r.kind} ${r.key} belongs to a project that does not exist`);
    return p;
  };
  for (const r of lists.get('proxy') ?? []) owner(r).proxies.push(r.value as ProxyRecord);
  for (const r of lists.get('ip_group') ?? []) owner(r).ipGroups.push(r.value as IpGroupRecord);
  const data: StoreData = {
    format: STORE_FORMAT,
    epoch: head.epoch,
    revision: head.revision,
    environments: (lists.get('environment') ?? []).map((r) => r.value as EnvironmentRecord),
    projects,
    audit: [...audit].sort((a, b) => a.id - b.id),
  };
  const access = lists.get('admin_access')?.[0];
  if (access !== undefined) data.adminAccess = access.value as AdminAccessRecord;
  return data;
}

export interface RowWrite {
  readonly kind: Kind;
  readonly key: string;
  readonly pos: number;
  readonly version: number;
  readonly json: string;
}

export interface Diff {
  readonly inserts: RowWrite[];
  /** Guarded: only if the row still has `baseRowVersion`. */
  readonly updates: (RowWrite & { readonly baseRowVersion: number })[];
  readonly deletes: { readonly kind: Kind; readonly key: string; readonly baseRowVersion: number }[];
  /** Positions of every desired row (for the cache after commit). */
  readonly positions: Map<string, number>;
}

/** The statements that turn `base` rows into `next`. Unchanged rows are not touched. */
export function diff(base: ReadonlyMap<string, CachedRow>, next: Encoded): Diff {
  const positions = new Map<string, number>();
  const groups = new Map<string, string[]>();
  for (const [id, r] of next.rows) {
    const g = groups.get(r.group);
    if (g === undefined) groups.set(r.group, [id]);
    else g.push(id);
  }
  for (const ids of groups.values()) {
    // Keep a row's position while positions stay increasing; otherwise give it the next one.
    let prev = -1;
    for (const id of ids) {
      const b = base.get(id);
      const pos = b !== undefined && b.pos > prev ? b.pos : prev + 1;
      positions.set(id, pos);
      prev = pos;
    }
  }
  const inserts: RowWrite[] = [];
  const updates: (RowWrite & { baseRowVersion: number })[] = [];
  for (const [id, r] of next.rows) {
    const pos = positions.get(id)!;
    const b = base.get(id);
    const w = { kind: r.kind, key: r.key, pos, version: r.version, json: r.json };
    if (b === undefined) inserts.push(w);
    else if (b.pos !== pos || b.version !== r.version || b.json !== r.json) updates.push({ ...w, baseRowVersion: b.rowVersion });
  }
  const deletes = [...base.values()].filter((b) => !next.rows.has(rowId(b.kind, b.key))).map((b) => ({ kind: b.kind, key: b.key, baseRowVersion: b.rowVersion }));
  return { inserts, updates, deletes, positions };
}


/** A state an update function returned instead of mutating its draft (as the file store allows). */
export function looksLikeStoreData(value: unknown): value is StoreData {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return v.format === STORE_FORMAT && typeof v.epoch === 'string' && Array.isArray(v.environments) && Array.isArray(v.projects) && Array.isArray(v.audit);
}

/** Structural checks every written state must pass. */
export function checkState(d: StoreData): string | null {
  if (!looksLikeStoreData(d)) return 'not a store state (format, epoch, environments, projects, audit)';
  if (!Number.isSafeInteger(d.revision) || d.revision < 0) return `revision ${String(d.revision)} is not a non-negative integer`;
  for (const [i, p] of d.projects.entries()) {
    if (typeof p !== 'object' || p === null || !Array.isArray(p.proxies) || !Array.isArray(p.ipGroups)) return `projects[${i}] is not a project record`;
  }
  return null;
}

/** The blob hashes a state references. */
export function referencedBlobs(d: Readonly<StoreData>): Set<string> {
  const out = new Set<string>();
  for (const p of d.projects) {
    for (const r of p.proxies) {
      for (const dep of Object.values(r.deployments)) out.add(blobHash(dep.proxy) ?? sealBlob(dep.proxy));
      for (const h of r.history ?? []) out.add(blobHash(h.proxy) ?? sealBlob(h.proxy));
    }
  }
  return out;
}
