/**
 * Drafts share the lists of the committed state instead of copying them (store/blobs.ts): a frozen
 * array of primitives cannot change, so a write's draft, the working copy and the deployed copy
 * hold one 100,000-entry list between them, and the audit hashes each list once. What must hold:
 * sharing never lets a draft change the committed state, and nothing else is shared.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendAudit } from '../../src/controlplane/admin/audit.js';
import { deployTo } from '../../src/controlplane/admin/routes-policies.js';
import { cloneDraft, cloneState, deepFreeze, freezeLeafArrays, isSharedLeafArray } from '../../src/controlplane/store/blobs.js';
import { FileStore } from '../../src/controlplane/store/file-store.js';
import type { StoreData } from '../../src/controlplane/store/state.js';

const AT = '2024-01-01T00:00:00.000Z';

function list(n: number, seed: number): string[] {
  return Array.from({ length: n }, (_, i) => `10.${seed}.${i >>> 8}.${i & 255}`);
}

function initial(ipList: string[]): StoreData {
  const draft = {
    name: 'api',
    basePath: '/api',
    upstream: { url: 'http://127.0.0.1:9' },
    policies: [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'allow', ipList } }],
  };
  return {
    format: 1,
    epoch: '5f0c6d1e-0000-4000-8000-000000000001',
    revision: 0,
    environments: [{ name: 'prod', createdAt: AT }],
    projects: [{ name: 'p', createdAt: AT, ipGroups: [], proxies: [{ draft, version: 1, deployments: {} }] }],
    audit: [],
  } as unknown as StoreData;
}

/** The working copy's list of the only proxy. */
const working = (d: Readonly<StoreData>): readonly string[] => (d.projects[0]!.proxies[0]!.draft.policies[0]!.policy as { ipList: string[] }).ipList;
const deployed = (d: Readonly<StoreData>): readonly string[] => (d.projects[0]!.proxies[0]!.deployments.prod!.proxy.policies[0]!.policy as { ipList: string[] }).ipList;

/** What PUT .../policies/allow/ does to the draft: replace the binding's list, deploy, audit. */
function replaceList(d: StoreData, next: string[]): void {
  const r = d.projects[0]!.proxies[0]!;
  const old = r.draft.policies[0]!;
  const b = { operationMetadata: old.operationMetadata, policy: { ...old.policy, ipList: next } };
  r.draft.policies[0] = b as typeof old;
  r.version++;
  deployTo(d, r, ['prod'], 'tester');
  appendAudit(d, { actor: 'tester', action: 'policy.update', project: 'p', proxy: 'api', target: 'p/api/policies/allow', before: old, after: b });
}

describe('cloneDraft and frozen lists', () => {
  it('shares a deep-frozen array of primitives and copies everything else', () => {
    const strings = deepFreeze(['10.0.0.1', '10.0.0.2']);
    const objects = deepFreeze([{ a: 1 }]);
    const empty = deepFreeze([] as string[]);
    const mutable = ['10.0.0.3'];
    const committed = deepFreeze({ strings, objects, empty, nested: { inner: deepFreeze(['a', 1, true, null]) } });
    const draft = cloneDraft({ ...committed, mutable });
    expect(draft.strings).toBe(strings);
    expect(draft.nested.inner).toBe(committed.nested.inner);
    expect(draft.nested).not.toBe(committed.nested);
    expect(draft.objects).not.toBe(objects);
    expect(draft.objects[0]).not.toBe(objects[0]);
    // An empty array may be appended to by a write (projects, proxies, entries): never shared.
    expect(draft.empty).not.toBe(empty);
    draft.empty.push('x');
    expect(empty).toEqual([]);
    expect(draft.mutable).not.toBe(mutable);
    expect(isSharedLeafArray(strings)).toBe(true);
    expect(isSharedLeafArray(objects)).toBe(false);
    expect(isSharedLeafArray(empty)).toBe(false);
  });

  it('an in-place change to a shared list throws instead of reaching the committed state', () => {
    const committed = deepFreeze({ ipList: ['10.0.0.1'] });
    const draft = cloneDraft(committed);
    expect(() => (draft.ipList as string[]).push('10.0.0.2')).toThrow(TypeError);
    expect(committed.ipList).toEqual(['10.0.0.1']);
  });

  it('freezeLeafArrays freezes the lists of a draft part and leaves its other arrays mutable', () => {
    const part = { policies: [{ policy: { ipList: ['10.0.0.1', '10.0.0.2'], methods: [] as string[] } }] };
    freezeLeafArrays(part);
    expect(Object.isFrozen(part.policies[0]!.policy.ipList)).toBe(true);
    expect(isSharedLeafArray(part.policies[0]!.policy.ipList)).toBe(true);
    expect(Object.isFrozen(part.policies)).toBe(false);
    expect(Object.isFrozen(part.policies[0]!.policy)).toBe(false);
    expect(Object.isFrozen(part.policies[0]!.policy.methods)).toBe(false);
  });
});

describe('cloneState: audit records', () => {
  it('shares the committed (frozen) audit records in a new array, copies records that are not frozen, and keeps the key order', () => {
    const rec = (id: number) => ({ id, time: AT, revision: id, actor: 'a', action: 'x', project: null, proxy: null, target: 't', before: null, after: { n: id } });
    const committed = deepFreeze({ ...initial(list(3, 0)), audit: [rec(1), rec(2)] });
    const draft = cloneState(committed);
    expect(Object.keys(draft)).toEqual(Object.keys(committed));
    expect(draft.audit).not.toBe(committed.audit);
    expect(draft.audit[0]).toBe(committed.audit[0]);
    expect(draft.projects).not.toBe(committed.projects);
    draft.audit.push(rec(3) as never);
    draft.audit.splice(0, 1);
    expect(committed.audit.map((r) => r.id)).toEqual([1, 2]);
    // A state handed in from outside (an import) is not frozen: its records are copied.
    const open = { ...initial(list(3, 0)), audit: [rec(1)] } as unknown as StoreData;
    expect(cloneState(open).audit[0]).not.toBe(open.audit[0]);
    expect(cloneState(open).audit[0]).toEqual(open.audit[0]);
    // Nor is a record its caller froze only at the top: what it holds could still change.
    const shallow = { ...initial(list(3, 0)), audit: [Object.freeze(rec(2))] } as unknown as StoreData;
    const copy = cloneState(shallow).audit[0] as unknown as { after: { n: number } };
    expect(copy).not.toBe(shallow.audit[0]);
    (shallow.audit[0] as unknown as { after: { n: number } }).after.n = 99;
    expect(copy.after.n).toBe(2);
    // deepFreeze does not make it shareable either: it stops at the frozen top.
    deepFreeze(shallow);
    expect(cloneState(shallow).audit[0]).not.toBe(shallow.audit[0]);
  });
});

describe('audit summaries of long lists', () => {
  const audit = (d: StoreData, before: unknown, after: unknown): void =>
    appendAudit(d, { actor: 'tester', action: 'x', project: null, proxy: null, target: 't', before, after });
  const sha = (v: unknown): string => createHash('sha256').update(JSON.stringify(v)).digest('hex');

  it('a frozen list is serialised and hashed once, however many records summarise it', () => {
    const d = initial([]);
    const frozen = deepFreeze(list(300, 4));
    audit(d, null, { ipList: frozen });
    audit(d, { ipList: frozen }, null);
    const [r1, r2] = d.audit as unknown as { before: { ipList: unknown } | null; after: { ipList: unknown } | null }[];
    expect(r1!.after!.ipList).toEqual({ items: 300, sha256: sha(frozen) });
    // The same summary object: remembered, not recomputed.
    expect(r2!.before!.ipList).toBe(r1!.after!.ipList);
  });

  it('a list of strings is frozen by its first summary, so a write that does not deploy is cached too', () => {
    const d = initial([]);
    const fresh = list(300, 5);
    audit(d, null, { ipList: fresh });
    expect(Object.isFrozen(fresh)).toBe(true);
    expect(() => (fresh as string[]).push('192.0.2.1')).toThrow(TypeError);
    audit(d, { ipList: fresh }, null);
    const [r1, r2] = d.audit as unknown as { before: { ipList: unknown } | null; after: { ipList: unknown } | null }[];
    expect(r2!.before!.ipList).toBe(r1!.after!.ipList);
  });

  it('a long list of objects (IP group entries) stays mutable and is summarised afresh every time', () => {
    const d = initial([]);
    const entries = Array.from({ length: 150 }, (_, i) => ({ value: `10.0.0.${i}` }));
    audit(d, null, { entries });
    expect(Object.isFrozen(entries)).toBe(false);
    entries[0]!.value = '192.0.2.1';
    audit(d, { entries }, null);
    const [r1, r2] = d.audit as unknown as { before: { entries: unknown } | null; after: { entries: unknown } | null }[];
    expect(r1!.after!.entries).not.toEqual(r2!.before!.entries);
    expect(r2!.before!.entries).toEqual({ items: 150, sha256: sha(entries) });
  });
});

describe('a policy write through the file store', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ipgate-share-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('holds one copy of a list for the working and deployed copies, shares it with the next draft, and hashes it once for the audit', async () => {
    const store = await FileStore.create(join(dir, 's.json'), initial(list(300, 0)));
    try {
      const a = list(300, 1);
      await store.update((d) => replaceList(d, a));
      const first = store.data;
      expect(working(first)).toEqual(a);
      // One array: the working copy and the deployed copy (a sealed blob) share it.
      expect(deployed(first)).toBe(working(first));
      expect(Object.isFrozen(working(first))).toBe(true);

      let seen: readonly string[] | undefined;
      const b = list(300, 2);
      await store.update((d) => {
        seen = working(d);
        // The audit records are shared too (a write only appends and trims them).
        expect(d.audit[0]).toBe(first.audit[0]);
        // The draft's other parts are private copies: the write may change them.
        expect(d.projects[0]!.proxies[0]!.draft.policies).not.toBe(first.projects[0]!.proxies[0]!.draft.policies);
        replaceList(d, b);
      });
      expect(seen).toBe(working(first));
      // The first write's list is untouched, and so is the first committed state.
      expect(working(first)).toEqual(a);
      expect(working(store.data)).toEqual(b);

      // The audit summarises a long list by size and hash (see the audit test below for its cache).
      const [r1, r2] = store.data.audit.slice(-2) as { before: { policy: { ipList: unknown } }; after: { policy: { ipList: unknown } } }[];
      const sha = createHash('sha256').update(JSON.stringify(a)).digest('hex');
      expect(r1!.after.policy.ipList).toEqual({ items: 300, sha256: sha });
      expect(r2!.before.policy.ipList).toEqual({ items: 300, sha256: sha });
      expect(r2!.after.policy.ipList).toEqual({ items: 300, sha256: createHash('sha256').update(JSON.stringify(b)).digest('hex') });
    } finally {
      await store.close();
    }
  });

  it('a store read back from disk shares its lists with drafts too, and writes the same file as before', async () => {
    const path = join(dir, 's.json');
    const created = await FileStore.create(path, initial(list(300, 0)));
    await created.update((d) => replaceList(d, list(300, 3)));
    await created.close();
    const store = (await FileStore.open(path))!;
    try {
      const loaded = working(store.data);
      expect(isSharedLeafArray(loaded)).toBe(true);
      let seen: readonly string[] | undefined;
      await store.update((d) => {
        seen = working(d);
        d.environments.push({ name: 'staging', createdAt: AT });
      });
      expect(seen).toBe(loaded);
      const again = (await FileStore.open(path))!;
      expect(working(again.data)).toEqual(list(300, 3));
      expect(again.data.environments.map((e) => e.name)).toEqual(['prod', 'staging']);
      await again.close();
    } finally {
      await store.close();
    }
  });
});
