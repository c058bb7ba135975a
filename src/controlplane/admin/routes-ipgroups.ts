/**
 * Project IP groups and their entries:
 *   GET    /apiops/projects/{p}/ipGroups/                  list, with the policies referencing each group
 *   POST   /apiops/projects/{p}/ipGroups/{group}/          create an empty group named {group}
 *   GET    /apiops/projects/{p}/ipGroups/{group}/          one group, with its ETag
 *   DELETE /apiops/projects/{p}/ipGroups/{group}/          delete (409 while any policy references it)
 *   GET    /apiops/projects/{p}/ipGroups/{group}/ips/      entries, paginated (limit, cursor, next_page_uri)
 *   POST   /apiops/projects/{p}/ipGroups/{group}/ips/      add entries (duplicates ignored)
 *   PUT    /apiops/projects/{p}/ipGroups/{group}/ips/      replace the entries
 *   DELETE /apiops/projects/{p}/ipGroups/{group}/ips/      remove entries by IP text
 *
 * A group is addressed by id or by name (case-insensitively), resolved as the compiler resolves an
 * ipGroupIdList reference: an exact id first, then a name.
 *
 * IP groups are live: an entry write is enforced, without a deploy, in every environment where a
 * deployed copy of a proxy references the group. Those environments are the write's `deployed`
 * list, so the AdminService compiles each of them (refusing a change that does not compile) and
 * reports a deploymentResult per environment.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ipEntrySchema, ipGroupEntrySchema } from '../../config/schema.js';
import type { IpGroupEntry, PolicyBinding } from '../../policy/model.js';
import type { IpGroupRecord, ProjectRecord, StoreData } from '../store/state.js';
import { groupEntryIp } from '../store/to-state.js';
import { AdminError } from './errors.js';
import { keyCursorOf, nextPageUri, parseKeyCursor, parseLimit, type KeyCursor } from './pagination.js';
import type { Route, RouteReply } from './router.js';
import { describedSchema } from './routes-resources.js';
import { checkIfMatch, deploymentReply, etagOf, findProject, nextVersion, type AdminService, type RouteCaller } from './service.js';


/** createdBy and createdAt are the server's: the actor and the time of the write. */
const serverSet = z.never({ error: 'set by the server; remove it from the body' }).optional();

/** One entry as a client writes it: ipGroupEntrySchema without the server-set fields. */
const entryInputSchema = ipGroupEntrySchema.extend({ createdBy: serverSet, createdAt: serverSet });

export const entriesBodySchema = z.strictObject({ entries: z.array(entryInputSchema) });
export const removeBodySchema = z.strictObject({ entries: z.array(ipEntrySchema) });

type EntryInput = z.output<typeof entryInputSchema>;

export interface GroupReference {
  apiProxy: string;
  policy: string;
}

/** The group a reference (id, or name case-insensitively) resolves to: the compiler's rule. */
function resolveGroup(p: ProjectRecord, ref: string): IpGroupRecord | undefined {
  return p.ipGroups.find((g) => g.id === ref) ?? p.ipGroups.find((g) => g.name.toLowerCase() === ref.toLowerCase());
}

function findGroup(p: ProjectRecord, ref: string): IpGroupRecord {
  const g = resolveGroup(p, ref);
  if (g === undefined) throw new AdminError('NOT_FOUND', `no IP group ${JSON.stringify(ref)} in project ${p.name}`);
  return g;
}

function refersTo(p: ProjectRecord, policies: readonly PolicyBinding[], g: IpGroupRecord): PolicyBinding[] {
  return policies.filter((b) => (b.policy.ipGroupIdList ?? []).some((ref) => resolveGroup(p, ref) === g));
}

/** Policies referencing `g`, in a proxy's working copy or in any of its deployments. */
function referencesOf(p: ProjectRecord, g: IpGroupRecord): GroupReference[] {
  const out: GroupReference[] = [];
  const seen = new Set<string>();
  for (const r of p.proxies) {
    for (const policies of [r.draft.policies, ...Object.values(r.deployments).map((dep) => dep.proxy.policies)]) {
      for (const b of refersTo(p, policies, g)) {
        const key = `${r.draft.name}\n${b.policy.name.toLowerCase()}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ apiProxy: r.draft.name, policy: b.policy.name });
      }
    }
  }
  return out;
}

/** Environments enforcing `g`: those where a deployed copy of some proxy of the project references it. */
function liveEnvironments(p: ProjectRecord, g: IpGroupRecord): string[] {
  const envs = new Set<string>();
  for (const r of p.proxies) {
    for (const [env, dep] of Object.entries(r.deployments)) {
      if (refersTo(p, dep.proxy.policies, g).length > 0) envs.add(env);
    }
  }
  return [...envs].sort();
}

function groupView(g: IpGroupRecord): Record<string, unknown> {
  return { id: g.id, name: g.name, description: g.description ?? null, entryCount: g.entries.length, version: g.version };
}

/** Duplicate key: the IP's canonical text and the action (absent = the referencing policy's own action). */
function entryKey(e: Pick<IpGroupEntry, 'ip' | 'action'>): string {
  return `${groupEntryIp(e.ip)}\n${e.action ?? ''}`;
}

/**
 * The entries of a request body to store: those whose (address, action) is not in `keys` nor
 * earlier in the body, stamped with the actor and one time. Adds their keys to `keys`.
 */
function newEntries(list: readonly EntryInput[], keys: Set<string>, actor: string): IpGroupEntry[] {
  const at = new Date().toISOString();
  const out: IpGroupEntry[] = [];
  for (const e of list) {
    const key = entryKey(e);
    if (keys.has(key)) continue;
    keys.add(key);
    out.push(storedEntry(e, actor, at));
  }
  return out;
}

function storedEntry(e: EntryInput, actor: string, at: string): IpGroupEntry {
  const out: IpGroupEntry = { ip: groupEntryIp(e.ip) };
  if (e.action !== undefined) out.action = e.action;
  if (e.description !== undefined) out.description = e.description;
  if (e.metadata !== undefined) out.metadata = e.metadata;
  out.createdBy = actor;
  out.createdAt = at;
  if (e.expiresAt !== undefined) out.expiresAt = e.expiresAt;
  return out;
}

/** An entry as a cursor names it: its stored ip and action, unique in a group (see newEntries). */
function cursorKey(e: IpGroupEntry): string {
  return `${e.ip}\n${e.action ?? ''}`;
}

/**
 * Where the page after `c` starts: just after the entry it names. Between two pages, entries are
 * removed (moving later ones towards the front) or appended, so that entry is at or before the
 * position the cursor recorded. One no longer there is a 400: where it was cannot be known, and
 * a guess could skip entries.
 */
function resumeAt(entries: readonly IpGroupEntry[], c: KeyCursor): number {
  for (let i = Math.min(c.at, entries.length) - 1; i >= 0; i--) if (cursorKey(entries[i]!) === c.key) return i + 1;
  throw new AdminError('BAD_REQUEST', 'the entry this cursor names was removed after that page was read; list the entries again from the start', [
    { path: 'cursor', message: 'names an entry that is no longer in the group' },
  ]);
}

/** A new id: "ipg_" + 16 hex digits, not equal to any id or (lower-cased) name in the project. */
function newGroupId(p: ProjectRecord): string {
  for (;;) {
    const id = `ipg_${randomBytes(8).toString('hex')}`;
    if (!p.ipGroups.some((g) => g.id === id || g.name.toLowerCase() === id)) return id;
  }
}


export function ipGroupRoutes(svc: AdminService, bodyLimit: number): Route[] {
  const base = '/apiops/projects/:project/ipGroups/';
  const G = `${base}:group/`;
  const IPS = `${G}ips/`;
  const target = (c: { params: Readonly<Record<string, string>> }, suffix = '') => `${c.params.project}/ipGroups/${c.params.group}${suffix}`;

  /**
   * One entry write: find the group, check If-Match, change its entries, give it a new version, go live.
   * The reply is the change's result, the deployments and the group's new ETag.
   */
  const entryWrite = async <T extends object>(
    c: RouteCaller & { readonly ifMatch: string | undefined },
    action: string,
    change: (g: IpGroupRecord, d: StoreData) => { result: T; before: unknown; after: unknown },
  ): Promise<RouteReply> => {
    const out = await svc.writeProject(c, action, target(c, '/ips'), (d) => {
      const p = findProject(d, c.params.project!);
      const g = findGroup(p, c.params.group!);
      checkIfMatch(c.ifMatch, g.version);
      const m = change(g, d);
      g.version = nextVersion(d);
      return { result: { value: m.result, version: g.version }, deployed: liveEnvironments(p, g), before: m.before, after: m.after };
    });
    return { body: { ...out.result.value, ...deploymentReply(out.deploymentResults) }, etag: etagOf(out.result.version) };
  };

  return [
    {
      method: 'GET',
      path: base,
      handler: async (c) => {
        const p = findProject(svc.data(), c.params.project!);
        const list = p.ipGroups.map((g) => ({ ...groupView(g), referencedBy: referencesOf(p, g) }));
        return { body: { success: true, resultList: list, resultCount: list.length } };
      },
    },
    {
      method: 'GET',
      path: G,
      handler: async (c) => {
        const g = findGroup(findProject(svc.data(), c.params.project!), c.params.group!);
        return { body: { success: true, ipGroup: groupView(g) }, etag: etagOf(g.version) };
      },
    },
    {
      method: 'POST',
      path: G,
      write: true,
      handler: async (c) => {
        const body = await c.json(describedSchema, bodyLimit, true);
        const name = c.params.group!;
        const out = await svc.writeProject(c, 'ipGroup.create', target(c), (d) => {
          const p = findProject(d, c.params.project!);
          // Ids and names share one namespace (the compiler refuses a clash), names case-insensitively.
          const clash = p.ipGroups.find((g) => g.name.toLowerCase() === name.toLowerCase() || g.id.toLowerCase() === name.toLowerCase());
          if (clash !== undefined) throw new AdminError('CONFLICT', `an IP group ${JSON.stringify(clash.name)} (id ${clash.id}) already uses the name ${JSON.stringify(name)} in project ${p.name} (names are case-insensitive)`);
          const rec: IpGroupRecord = { id: newGroupId(p), name, description: body.description, entries: [], version: nextVersion(d) };
          p.ipGroups.push(rec);
          return { result: rec, deployed: [], before: null, after: { id: rec.id, name: rec.name, description: rec.description } };
        });
        return { status: 201, body: { success: true, id: out.result.id }, etag: etagOf(out.result.version) };
      },
    },
    {
      method: 'DELETE',
      path: G,
      write: true,
      handler: async (c) => {
        await svc.writeProject(c, 'ipGroup.delete', target(c), (d) => {
          const p = findProject(d, c.params.project!);
          const g = findGroup(p, c.params.group!);
          checkIfMatch(c.ifMatch, g.version);
          const refs = referencesOf(p, g);
          if (refs.length > 0) {
            throw new AdminError(
              'CONFLICT',
              `IP group ${g.name} (id ${g.id}) is referenced by ${refs.map((r) => `API proxy ${r.apiProxy} policy ${r.policy}`).join(', ')} (working copy or a deployment); remove those references and deploy first`,
            );
          }
          p.ipGroups.splice(p.ipGroups.indexOf(g), 1);
          return { result: null, deployed: [], before: { id: g.id, name: g.name, description: g.description, entryCount: g.entries.length }, after: null };
        });
        return { body: { success: true } };
      },
    },
    // ---- entries ----
    {
      method: 'GET',
      path: IPS,
      handler: async (c) => {
        const g = findGroup(findProject(svc.data(), c.params.project!), c.params.group!);
        const limit = parseLimit(c.query);
        const cursor = parseKeyCursor(c.query);
        const from = cursor === null ? 0 : resumeAt(g.entries, cursor);
        const entries = g.entries.slice(from, from + limit);
        const end = from + entries.length;
        const path = new URL(c.req.url ?? '/', 'http://admin.invalid').pathname;
        const next = end < g.entries.length ? nextPageUri(path, c.query, keyCursorOf({ at: end, key: cursorKey(g.entries[end - 1]!) })) : null;
        return {
          body: { success: true, entries, next_page_uri: next },
          etag: etagOf(g.version),
        };
      },
    },
    {
      method: 'POST',
      path: IPS,
      write: true,
      handler: async (c) => {
        const body = await c.json(entriesBodySchema, bodyLimit);
        return entryWrite(c, 'ipGroup.entries.add', (g) => {
          const added = newEntries(body.entries, new Set(g.entries.map(entryKey)), c.actor);
          g.entries.push(...added);
          return { result: { added: added.length, ignored: body.entries.length - added.length }, before: null, after: added };
        });
      },
    },
    {
      method: 'PUT',
      path: IPS,
      write: true,
      handler: async (c) => {
        const body = await c.json(entriesBodySchema, bodyLimit);
        return entryWrite(c, 'ipGroup.entries.replace', (g) => {
          const next = newEntries(body.entries, new Set(), c.actor);
          const before = g.entries;
          g.entries = next;
          return { result: { entryCount: next.length, ignored: body.entries.length - next.length }, before, after: next };
        });
      },
    },
    {
      method: 'DELETE',
      path: IPS,
      write: true,
      handler: async (c) => {
        const body = await c.json(removeBodySchema, bodyLimit);
        return entryWrite(c, 'ipGroup.entries.remove', (g) => {
          const wanted = new Set(body.entries.map(groupEntryIp));
          const matched = new Set<string>();
          const kept: IpGroupEntry[] = [];
          const removed: IpGroupEntry[] = [];
          for (const e of g.entries) {
            const ip = groupEntryIp(e.ip);
            if (wanted.has(ip)) {
              matched.add(ip);
              removed.push(e);
            } else kept.push(e);
          }
          g.entries = kept;
          // An IP text of the body that matched no entry (or repeats one already given) is ignored.
          const ignored = body.entries.length - matched.size;
          return { result: { removed: removed.length, ignored }, before: removed, after: null };
        });
      },
    },
  ];
}
