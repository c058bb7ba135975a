/**
 * The cluster store: many gateway nodes, in several environments, share one PostgreSQL database.
 *
 * Writes. One transaction per write, in this order:
 *   1. UPDATE the one-row head: revision = revision + 1. The row lock serialises every writer of
 *      the cluster, so revision order is commit order, with no gaps (a sequence could commit out
 *      of order). After the lock, this transaction sees every earlier commit.
 *   2. The draft is made from the newest committed state (this node's copy when it is at the head's
 *      revision, otherwise read now, under the lock), so an If-Match checked inside the update
 *      function is checked against the truth: a stale ETag from any node is a 412.
 *   3. Changed rows only, each UPDATE/DELETE guarded by the row's version: zero rows is a 412.
 *   4. New blobs, audit rows, change-log rows, and pg_notify(channel, revision) — all committed
 *      together, so a notification never announces a revision that does not exist.
 *   5. History older than `historyRevisions` is deleted from `revisions` and `change_log` in the
 *      same transaction, so both tables stay bounded (see #trimHistory).
 *
 * Propagation. A node LISTENs before it reads the state, so nothing committed after the read can
 * be missed. A notification, a (re)connection of the listener, a heartbeat that sees a newer head,
 * and a periodic poll all request one sync; syncs (and writes) run one at a time, and requests that
 * arrive meanwhile fold into one more run. A sync reads head and rows in one REPEATABLE READ
 * transaction. A head with another epoch, or a lower revision, than this node holds means the
 * store was replaced or restored: everything is reloaded.
 *
 * PostgreSQL unreachable. Every database call has a client-side deadline. The last state stays in
 * memory (the gateway keeps enforcing it, never allow-all or deny-all); writes fail fast with
 * StoreUnavailableError (503); syncs retry on the next poll, heartbeat or reconnection.
 */
import { randomUUID } from 'node:crypto';
import postgres, { type Options, type Sql, type TransactionSql } from 'postgres';
import type { Logger } from '../../../observability/logger.js';
import { pacedStringify } from '../../../policy/pace.js';
import { blobJson, cloneState, deepFreeze, markStored } from '../blobs.js';
import { STORE_FORMAT, type AuditRecord, type StoreData } from '../state.js';
import {
  StoreConflictError,
  StoreUnavailableError,
  type ApplyReport,
  type DeploymentResult,
  type NodeInfo,
  type Store,
  type StoreHealth,
  type UpdateOptions,
  type UpdateResult,
} from '../store.js';
import { DeadlineError, sleep, withDeadline } from './deadline.js';
import { ChangeListener, heartbeatPayload } from './listener.js';
import { migrate, quoteIdent } from './migrations.js';
import { heartbeat, judge, nodeInfo, readNodes, writeStatus, type Self, type StatusRecord } from './node-status.js';
import { needsFullReload, readHead, readState, type Head, type StateCache } from './read-state.js';
import { checkState, diff, encode, looksLikeStoreData, type CachedRow, type Diff, type Encoded } from './rows.js';
import { readSnapshotCache, writeSnapshotCache } from './snapshot-cache.js';

export interface PgStoreSettings {
  /** postgres:// or postgresql:// URL. */
  readonly url: string;
  /** The schema holding the tables (created by the migrations). */
  readonly schema: string;
  readonly connectTimeoutMs: number;
  /** Longest an admin write may take, queueing included, before it answers 503. */
  readonly writeTimeoutMs: number;
  /** Longest a write waits for the other nodes to report the new revision. */
  readonly statusWaitMs: number;
  readonly pollIntervalMs: number;
  readonly heartbeatMs: number;
  /** Opt-in local snapshot cache file (see snapshot-cache.ts), or null. */
  readonly snapshotCache: string | null;
  readonly poolSize: number;
  /**
   * How many of the newest revisions `revisions` and `change_log` keep (the config key
   * store.postgres.historyRevisions; at least 2). Default DEFAULT_HISTORY_REVISIONS.
   */
  readonly historyRevisions?: number | undefined;
}

/** The default of store.postgres.historyRevisions (src/config/schema.ts), for callers that leave it out. */
export const DEFAULT_HISTORY_REVISIONS = 10_000;

/**
 * At most this many rows of each history table are deleted by one write, oldest first. In steady
 * state a write deletes one revision's rows. The cap bounds the cost of a backlog (a store
 * written before trimming existed, or historyRevisions lowered; an import writes a change-log row
 * per resource), which then drains over several writes: rows, not revisions, because a write that
 * had to delete millions of rows within store.postgres.writeTimeoutMs would fail, and so would
 * every write after it, each trying the same batch.
 */
export const TRIM_BATCH_ROWS = 20_000;

export interface PgStoreOptions extends PgStoreSettings {
  readonly nodeId: string;
  readonly environment: string;
  readonly log?: Logger | undefined;
  /** The first state of a store whose schema holds none yet (a gateway seeds from its config). */
  readonly seed?: (() => StoreData) | undefined;
  /** 'node': a gateway (LISTEN, heartbeats, status). 'tool': the CLI (read and write only). */
  readonly role: 'node' | 'tool';
}

/** What /metrics and health() show about this node's link to the database. */
export interface PgStoreStatus {
  readonly databaseUp: boolean;
  readonly listenerUp: boolean;
  readonly revision: number;
  readonly epoch: string;
  /** Since this node last confirmed that it holds the database's newest revision. */
  readonly stalenessMs: number;
  readonly lastError: string | null;
  readonly listenerRebuilds: number;
}

const SILENT: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as unknown as Logger;

/** The URL without its password, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparseable url)';
  }
}

/** Errors that mean "the database cannot be reached or did not answer", not "the request is wrong". */
/** How long a write may wait for the store's lock: most of its time budget, not all of it. */
function lockBudget(ms: number): number {
  return Math.max(1, Math.floor(ms * 0.8));
}

/** PostgreSQL's lock_timeout (55P03): the database answered, a lock was held too long. */
function isLockTimeout(err: unknown): boolean {
  const e = err as { name?: string; code?: unknown } | null;
  return e?.name === 'PostgresError' && e.code === '55P03';
}

export function isUnavailable(err: unknown): boolean {
  if (err instanceof DeadlineError || err instanceof StoreUnavailableError) return true;
  const e = err as { name?: string; code?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (e?.name === 'PostgresError') {
    // 08: connection exceptions; 53: insufficient resources; 57P: shutdown / cannot connect now;
    // 55P03: lock timeout; 57014: statement timeout; 25P03: idle in transaction timeout;
    // 42P01/3F000: the schema or its tables are gone (a database being restored).
    return /^(08|53|57P)/.test(code) || ['55P03', '57014', '25P03', '42P01', '3F000'].includes(code);
  }
  return code.startsWith('CONNECT') || /^E[A-Z]+$/.test(code);
}

export class PgStore implements Store {
  readonly description: string;
  /** This process's id in its status rows, and the number of its last report (see node-status.ts). */
  readonly #proc = randomUUID();
  #reportSeq = 0;
  readonly #opts: PgStoreOptions;
  readonly #log: Logger;
  readonly #sql: Sql;
  readonly #s: string;
  readonly #channel: string;
  readonly #selfTag = randomUUID();
  #listener: ChangeListener | null = null;
  /** The rows this node holds, or null after a start from the snapshot cache (the next read is a full one). */
  #cache: StateCache | null;
  #data: Readonly<StoreData>;
  #migrated: boolean;
  #remote: ((data: Readonly<StoreData>) => void)[] = [];
  /** The end of the queue that runs writes and syncs one at a time. Never rejects. */
  #tail: Promise<unknown> = Promise.resolve();
  #syncWanted = false;
  #looping = false;
  #syncing: Promise<void> | null = null;
  /** After this node failed to apply a revision, the next newer one is read in full (heals a bad read). */
  #distrust = false;
  #closed = false;
  #timers: NodeJS.Timeout[] = [];
  #report: ApplyReport | null = null;
  #hbSeq = 0;
  #hbInFlight = false;
  #dbUp = false;
  #lastError: string | null = null;
  #confirmedAt = 0;
  #cacheWrite: Promise<void> = Promise.resolve();
  #cacheDirty = false;

  private constructor(opts: PgStoreOptions, sql: Sql, cache: StateCache | null, data: Readonly<StoreData>, migrated: boolean) {
    this.#opts = opts;
    this.#log = opts.log ?? SILENT;
    this.#sql = sql;
    this.#s = quoteIdent(opts.schema);
    this.#channel = `ipgate.${opts.schema}`;
    this.#cache = cache;
    this.#data = data;
    this.#migrated = migrated;
    this.description = `postgres:${redactUrl(opts.url)} schema ${opts.schema}`;
  }

  /** Client options shared by the pool and the listener. */
  static clientOptions(opts: PgStoreOptions, log: Logger, purpose: string): Options<Record<string, postgres.PostgresType>> {
    return {
      connect_timeout: opts.connectTimeoutMs / 1000,
      // Unnamed statements: no server-side plan cache to go stale when a schema is restored.
      prepare: false,
      fetch_types: false,
      idle_timeout: 60,
      onnotice: (n) => log.debug({ event: 'postgres_notice', message: n.message }, 'postgres notice'),
      // Names the node and the cluster in pg_stat_activity (PostgreSQL keeps 63 bytes of it).
      connection: { application_name: `ipgate ${purpose} ${opts.nodeId} ${opts.schema}`.slice(0, 63) },
    };
  }

  /**
   * Connects, applies the migrations (seeding an empty store with `seed`), then — for a gateway
   * node — LISTENs and only then reads the state. If the database cannot be reached and a snapshot
   * cache is configured, starts from the cache (writes answer 503 until the database is back);
   * otherwise throws StoreUnavailableError: a node never starts with no policies.
   */
  static async open(opts: PgStoreOptions): Promise<PgStore> {
    const history = opts.historyRevisions;
    if (history !== undefined && (!Number.isSafeInteger(history) || history < 2)) {
      // Below 2, a write would delete the previous revision's row, which the next write reads.
      throw new TypeError(`historyRevisions must be an integer of at least 2, not ${history}`);
    }
    const log = opts.log ?? SILENT;
    const sql = postgres(opts.url, { ...PgStore.clientOptions(opts, log, opts.role === 'node' ? 'node' : 'tool'), max: opts.poolSize });
    const bound = opts.connectTimeoutMs + opts.writeTimeoutMs;
    const placeholder = { format: STORE_FORMAT, epoch: '', revision: 0, environments: [], projects: [], audit: [] } as StoreData;
    const store = new PgStore(opts, sql, null, placeholder, false);
    try {
      await withDeadline(store.#migrate(), bound, 'migrations');
      if (opts.role === 'node') {
        store.#listener = store.#makeListener();
        await withDeadline(store.#listener.start(), bound, 'LISTEN');
      }
      const read = await withDeadline(store.#readLatest(null), bound, 'reading the store');
      if (read === null) throw new Error(`store schema ${opts.schema} holds no state`);
      store.#adopt(read, false);
      store.#markUp();
    } catch (err) {
      if (!isUnavailable(err)) {
        await store.#shutdown();
        throw err;
      }
      const why = `cannot reach PostgreSQL at ${redactUrl(opts.url)}: ${(err as Error).message}`;
      if (opts.role !== 'node' || opts.snapshotCache === null) {
        await store.#shutdown();
        throw new StoreUnavailableError(why, false, { cause: err });
      }
      let cached: StoreData;
      try {
        cached = await readSnapshotCache(opts.snapshotCache);
      } catch (cacheErr) {
        await store.#shutdown();
        throw new StoreUnavailableError(`${why}; and the snapshot cache cannot be used: ${(cacheErr as Error).message}`, false, { cause: err });
      }
      store.#data = cached;
      store.#markDown(err);
      log.warn(
        { event: 'store_started_from_cache', file: opts.snapshotCache, revision: cached.revision, epoch: cached.epoch, err: (err as Error).message },
        'PostgreSQL is unreachable: starting from the local snapshot cache; admin writes answer 503 until it is back',
      );
    }
    if (opts.role === 'node') store.#startLoops();
    return store;
  }

  get data(): Readonly<StoreData> {
    return this.#data;
  }

  // ---- reading ----------------------------------------------------------------------------------

  async #migrate(): Promise<void> {
    if (this.#migrated) return;
    const applied = await migrate(this.#sql, this.#opts.schema, async (tx) => {
      if ((await readHead(tx, this.#s)) !== null) return;
      if (this.#opts.seed === undefined) throw new Error(`store schema ${this.#opts.schema} holds no state yet, and nothing seeds it`);
      const first = this.#opts.seed();
      const problem = checkState(first);
      if (problem !== null) throw new TypeError(`refusing to seed the store: ${problem}`);
      await tx.unsafe(`insert into ${this.#s}.head (revision, epoch, format) values ($1, $2::uuid, $3)`, [first.revision, first.epoch, STORE_FORMAT]);
      await tx.unsafe(`insert into ${this.#s}.revisions (revision, write_id) select revision, write_id from ${this.#s}.head`);
      const enc = encode(first);
      await this.#persist(tx, null, enc, diff(new Map(), enc), first, first.revision);
      this.#log.info({ event: 'store_seeded', schema: this.#opts.schema, revision: first.revision, epoch: first.epoch }, 'new cluster store seeded');
    });
    if (applied.length > 0) this.#log.info({ event: 'store_migrated', schema: this.#opts.schema, applied }, 'cluster store schema migrated');
    this.#migrated = true;
  }

  /**
   * Head and rows in one REPEATABLE READ snapshot; null when this node already holds the head's
   * revision. `full`: read every row, not only those that differ from `have`.
   */
  async #readLatest(have: StateCache | null, full = false): Promise<(StateCache & { full: boolean; trimmed: boolean }) | null> {
    return (await this.#sql.begin('isolation level repeatable read read only', async (tx) => {
      const head = await readHead(tx, this.#s);
      if (head === null) throw new Error(`store schema ${this.#opts.schema} holds no state (no head row)`);
      if (have !== null && have.head.epoch === head.epoch && have.head.revision === head.revision && have.head.writeId === head.writeId) return null;
      return readState(tx, this.#s, head, full ? null : have);
    })) as (StateCache & { full: boolean; trimmed: boolean }) | null;
  }

  /** Makes `next` this node's state; `remote`: tell the listeners (a change made elsewhere). */
  #adopt(next: StateCache, remote: boolean): void {
    this.#cache = next;
    this.#data = next.data;
    this.#confirmedAt = Date.now();
    this.#saveCache();
    if (!remote) return;
    for (const l of this.#remote) {
      try {
        l(next.data);
      } catch (err) {
        this.#log.error({ event: 'store_listener_error', err: (err as Error).stack }, 'a store change listener threw');
      }
    }
  }

  onRemoteChange(listener: (data: Readonly<StoreData>) => void): void {
    this.#remote.push(listener);
  }

  /** Asks for a sync; one runs at a time, and requests made while one runs fold into one more. */
  requestSync(reason: string): void {
    // Before the loops start, open() is about to read (after LISTEN): nothing can be missed.
    if (this.#closed || !this.#looping) return;
    this.#syncWanted = true;
    if (this.#syncing !== null) return;
    this.#syncing = (async () => {
      while (this.#syncWanted && !this.#closed) {
        this.#syncWanted = false;
        await this.#enqueue(() => this.#syncOnce(reason)).catch((err: unknown) => {
          this.#markDown(err);
          this.#log.warn({ event: 'store_sync_failed', reason, err: (err as Error).message }, 'store sync failed; keeping the current state');
        });
      }
      this.#syncing = null;
    })();
  }

  /** Resolves when the syncs requested so far have run (tests, and orderly shutdown). */
  async settled(): Promise<void> {
    while (this.#syncing !== null) await this.#syncing;
  }

  async #syncOnce(reason: string): Promise<void> {
    const timeout = this.#opts.connectTimeoutMs + this.#opts.writeTimeoutMs;
    await withDeadline(this.#migrate(), timeout, 'migrations');
    const have = this.#cache;
    const read = await withDeadline(this.#readLatest(have, this.#distrust), timeout, 'store sync');
    this.#markUp();
    this.#confirmedAt = Date.now();
    if (read === null) return;
    const distrusted = this.#distrust;
    const full = distrusted || read.full;
    this.#distrust = false;
    const before = this.#data;
    if (full && have !== null && read.trimmed && !distrusted) {
      // Not a replaced store: this node was further behind than the history the store keeps.
      this.#log.info(
        { event: 'store_full_reload', reason: 'behind the kept history (store.postgres.historyRevisions)', from: { epoch: have.head.epoch, revision: have.head.revision }, to: read.head },
        'this node was further behind than the store keeps history for: reloaded everything',
      );
    } else if (full && have !== null) {
      const reason =
        have.head.epoch !== read.head.epoch
          ? 'epoch changed'
          : read.head.revision < have.head.revision
            ? 'revision went back'
            : distrusted
              ? 'after a failed apply'
              : 'history rewritten (restored to an earlier point, then written again)';
      this.#log.warn(
        { event: 'store_full_reload', reason, from: { epoch: have.head.epoch, revision: have.head.revision }, to: read.head },
        // A failed apply is this node's own trouble, not a replaced store: say which.
        reason === 'after a failed apply' ? 'reloaded everything after a failed apply' : 'store replaced or restored: reloaded everything',
      );
    }
    this.#adopt(read, true);
    this.#log.info({ event: 'store_synced', reason, full, from: before.revision, revision: read.head.revision }, 'store changes read');
  }

  // ---- writing ----------------------------------------------------------------------------------

  #enqueue<R>(job: () => Promise<R>): Promise<R> {
    const run = this.#tail.then(job);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  update<T>(fn: (draft: StoreData) => T, opts?: UpdateOptions): Promise<UpdateResult<T>> {
    return this.#write((base) => {
      const draft = cloneState(base) as StoreData;
      const result = fn(draft);
      const next = result !== (draft as unknown) && result !== (base as unknown) && looksLikeStoreData(result) ? (result as StoreData) : draft;
      return { next, result };
    }, opts?.check);
  }

  async replace(next: StoreData, opts?: { keepRevision?: boolean }): Promise<Readonly<StoreData>> {
    if (opts?.keepRevision === true) throw new TypeError('the cluster store numbers revisions itself: keepRevision is not supported');
    const out = await this.#write(() => ({ next: cloneState(next), result: null }));
    return out.data;
  }

  #write<T>(build: (base: Readonly<StoreData>) => { next: StoreData; result: T }, check?: (next: Readonly<StoreData>) => void): Promise<UpdateResult<T>> {
    if (this.#closed) return Promise.reject(new StoreUnavailableError(`store ${this.description} is closed`));
    const deadline = Date.now() + this.#opts.writeTimeoutMs;
    return this.#enqueue(async () => {
      const left = deadline - Date.now();
      if (left <= 0) throw new StoreUnavailableError(`the store did not get to this write within ${this.#opts.writeTimeoutMs} ms (earlier writes are waiting for PostgreSQL)`);
      try {
        const out = await this.#writeTx(build, check, left);
        this.#markUp();
        return out;
      } catch (err) {
        if (isLockTimeout(err)) {
          // PostgreSQL answered: it is up, and another node's write held the store's lock for the
          // whole time this one could wait. Say so, rather than that the database is away.
          this.#markUp();
          throw new StoreUnavailableError(`the store is busy: another write held its lock for longer than ${lockBudget(left)} ms (80% of what is left of store.postgres.writeTimeoutMs); nothing was written`, false, { cause: err });
        }
        if (err instanceof StoreUnavailableError || isUnavailable(err)) {
          this.#markDown(err);
          throw err instanceof StoreUnavailableError ? err : new StoreUnavailableError(`PostgreSQL is unavailable: ${(err as Error).message}`, false, { cause: err });
        }
        throw err;
      }
    });
  }

  async #writeTx<T>(build: (base: Readonly<StoreData>) => { next: StoreData; result: T }, check: ((next: Readonly<StoreData>) => void) | undefined, ms: number): Promise<UpdateResult<T>> {
    await this.#migrate();
    // Abandoning must be decided synchronously with the last check before COMMIT, so that a write
    // the caller was told failed can never commit afterwards.
    const state = { abandoned: false, committing: false };
    let newer: StateCache | null = null;
    const work = this.#sql.begin(async (tx) => {
      // A connection that came only after the deadline must not even take the head lock.
      if (state.abandoned) throw new DeadlineError('abandoned');
      // The lock wait gets most of the budget, not all of it: a lock held by another node's write
      // then ends as PostgreSQL's lock timeout, reported as "busy", before this deadline fires.
      await tx.unsafe(`set local lock_timeout = ${lockBudget(ms)}; set local statement_timeout = ${ms}; set local idle_in_transaction_session_timeout = ${ms + 1000}`);
      const [h] = await tx.unsafe(
        `update ${this.#s}.head set revision = revision + 1, write_id = gen_random_uuid(), updated_at = now() returning revision, epoch::text as epoch, write_id::text as write_id`,
      );
      if (h === undefined) throw new Error(`store schema ${this.#opts.schema} holds no state (no head row)`);
      const revision = Number(h.revision);
      const writeId = String(h.write_id);
      // The previous revision's write id: equal to this node's only if its state is that revision.
      const [prev] = await tx.unsafe(
        `insert into ${this.#s}.revisions (revision, write_id) values ($1, $2::uuid) on conflict (revision) do update set write_id = excluded.write_id
         returning (select write_id::text from ${this.#s}.revisions where revision = $1 - 1) as prev`,
        [revision, writeId],
      );
      const headBefore: Head = { epoch: String(h.epoch), revision: revision - 1, format: STORE_FORMAT, writeId: String(prev?.prev ?? '') };
      let base = this.#cache;
      if (base === null || base.head.epoch !== headBefore.epoch || base.head.revision !== headBefore.revision || base.head.writeId !== headBefore.writeId) {
        // Another node wrote since this node last read: the draft must start from the truth.
        base = await readState(tx, this.#s, headBefore, base);
        newer = base;
      }
      if (state.abandoned) throw new DeadlineError('abandoned');
      const { next, result } = build(base.data);
      next.revision = revision;
      check?.(next);
      const problem = checkState(next);
      if (problem !== null) throw new TypeError(`refusing to write an invalid store state: ${problem}`);
      const enc = encode(next);
      const d = diff(base.rows, enc);
      await this.#persist(tx, base, enc, d, next, revision);
      if (next.epoch !== headBefore.epoch) await tx.unsafe(`update ${this.#s}.head set epoch = $1::uuid`, [next.epoch]);
      await tx.unsafe('select pg_notify($1, $2)', [this.#channel, String(revision)]);
      if (state.abandoned) throw new DeadlineError('abandoned');
      state.committing = true;
      return { base, next, enc, d, result, revision, writeId };
    });
    let out: Awaited<typeof work>;
    try {
      out = await new Promise<Awaited<typeof work>>((resolve, reject) => {
        const timer = setTimeout(() => {
          state.abandoned = true;
          reject(
            state.committing
              ? new StoreUnavailableError(`PostgreSQL did not confirm the commit within ${ms} ms: the write may or may not have been applied; read it back before retrying`, true)
              : new StoreUnavailableError(`PostgreSQL did not answer within ${ms} ms; nothing was written`),
          );
        }, ms);
        work.then(
          (v) => {
            clearTimeout(timer);
            resolve(v);
          },
          (err: unknown) => {
            clearTimeout(timer);
            reject(state.committing && isUnavailable(err) ? new StoreUnavailableError(`the connection failed during COMMIT: the write may or may not have been applied (${(err as Error).message})`, true, { cause: err }) : err);
          },
        );
      });
    } catch (err) {
      // A refused write still taught this node the newest state: adopt it, so it gets enforced.
      const n = newer as StateCache | null;
      if (n !== null && !state.committing) this.#adopt(n, true);
      throw err;
    }
    const committed = afterCommit(out.base, out.enc, out.d, out.next, out.revision, out.writeId);
    this.#adopt(committed, false);
    return { data: committed.data, result: out.result };
  }

  /** Rows, blobs, audit and change log of one write (or the seed), inside its transaction. */
  async #persist(tx: TransactionSql, base: StateCache | null, enc: Encoded, d: Diff, next: StoreData, revision: number): Promise<void> {
    const s = this.#s;
    const guarded: { what: string; q: Promise<{ count: number }> }[] = [];
    for (const w of d.inserts) {
      guarded.push({
        what: `${w.kind} ${w.key} was created by another writer`,
        q: tx.unsafe(`insert into ${s}.resources (kind, key, pos, version, doc, rev, row_version) values ($1, $2, $3, $4, $5::text::json, $6, 1) on conflict do nothing`, [w.kind, w.key, w.pos, w.version, w.json, revision]),
      });
    }
    for (const w of d.updates) {
      guarded.push({
        what: `${w.kind} ${w.key} was changed by another writer`,
        q: tx.unsafe(`update ${s}.resources set pos = $3, version = $4, doc = $5::text::json, rev = $6, row_version = row_version + 1 where kind = $1 and key = $2 and row_version = $7`, [
          w.kind,
          w.key,
          w.pos,
          w.version,
          w.json,
          revision,
          w.baseRowVersion,
        ]),
      });
    }
    for (const w of d.deletes) {
      guarded.push({
        what: `${w.kind} ${w.key} was changed by another writer`,
        q: tx.unsafe(`delete from ${s}.resources where kind = $1 and key = $2 and row_version = $3`, [w.kind, w.key, w.baseRowVersion]),
      });
    }
    const others: Promise<unknown>[] = [];
    for (const [hash, value] of enc.blobs) {
      // The text is not kept in memory past this write: a retry serialises it again.
      const stored = base?.blobs.has(hash) === true;
      const json = stored ? null : blobJson(value);
      markStored(value);
      if (json !== null) others.push(tx.unsafe(`insert into ${s}.blobs (hash, body) values ($1, $2) on conflict do nothing`, [hash, json]));
    }
    const unreferenced = base === null ? [] : [...base.blobs.keys()].filter((h) => !enc.blobs.has(h));
    // Readers in an older snapshot still see these rows (MVCC): deleting them here is safe.
    if (unreferenced.length > 0) others.push(tx.unsafe(`delete from ${s}.blobs where hash in (select json_array_elements_text($1::text::json))`, [JSON.stringify(unreferenced)]));
    const keptAudit = new Set(next.audit.map((a) => a.id));
    for (const a of next.audit) {
      if (base?.audit.has(a.id) === true) continue;
      others.push(tx.unsafe(`insert into ${s}.audit (id, revision, doc) values ($1, $2, $3::text::json)`, [a.id, revision, pacedStringify(a)]));
    }
    const trimmed = base === null ? [] : [...base.audit.keys()].filter((id) => !keptAudit.has(id));
    if (trimmed.length > 0) others.push(tx.unsafe(`delete from ${s}.audit where id in (select (json_array_elements_text($1::text::json))::bigint)`, [JSON.stringify(trimmed)]));
    const log = [
      ...d.inserts.map((w) => ({ kind: w.kind, key: w.key, op: 'insert', version: w.version })),
      ...d.updates.map((w) => ({ kind: w.kind, key: w.key, op: 'update', version: w.version })),
      ...d.deletes.map((w) => ({ kind: w.kind, key: w.key, op: 'delete', version: null })),
    ].map((c, seq) => ({ ...c, seq }));
    if (log.length > 0) {
      others.push(
        tx.unsafe(
          `insert into ${s}.change_log (revision, seq, kind, key, op, version) select $1, seq, kind, key, op, version from json_to_recordset($2::text::json) as c(seq integer, kind text, key text, op text, version bigint)`,
          [revision, JSON.stringify(log)],
        ),
      );
    }
    others.push(...this.#trimHistory(tx, revision));
    // Issued together, they are pipelined on the transaction's connection.
    const results = await Promise.all(guarded.map((g) => g.q));
    await Promise.all(others);
    results.forEach((r, i) => {
      if (r.count !== 1) throw new StoreConflictError(guarded[i]!.what);
    });
  }

  /**
   * Deletes the history that `revision` pushes out of the newest `historyRevisions` revisions:
   * afterwards `revisions` and `change_log` hold only rows with revision > revision - historyRevisions
   * (once any backlog has drained, TRIM_BATCH_ROWS per table per write, oldest first). The row of
   * revision - 1 is always kept (historyRevisions >= 2): the next write reads it as the previous
   * revision's write id (this write read its own `prev` earlier in the transaction, before these
   * statements). A node holding a trimmed revision does one full read (read-state.ts
   * sameHistory). Deletes by primary key, in the write's transaction; readers in older snapshots
   * still see the rows (MVCC).
   */
  #trimHistory(tx: TransactionSql, revision: number): Promise<unknown>[] {
    const keep = this.#opts.historyRevisions ?? DEFAULT_HISTORY_REVISIONS;
    // The newest revision deleted; revision - 1 (and revision itself) stay, as keep >= 2.
    const cutoff = revision - keep;
    if (cutoff < 1) return [];
    const s = this.#s;
    return [
      tx.unsafe(`delete from ${s}.revisions where revision in (select revision from ${s}.revisions where revision <= $1 order by revision limit $2)`, [cutoff, TRIM_BATCH_ROWS]),
      tx.unsafe(
        `delete from ${s}.change_log where (revision, seq) in (select revision, seq from ${s}.change_log where revision <= $1 order by revision, seq limit $2)`,
        [cutoff, TRIM_BATCH_ROWS],
      ),
    ];
  }

  // ---- status -----------------------------------------------------------------------------------

  async reportApplied(report: ApplyReport): Promise<void> {
    this.#report = report;
    if (report.failed !== undefined && report.failed.revision > report.revision) this.#distrust = true;
    if (this.#opts.role !== 'node' || this.#closed) return;
    const status = this.#status();
    // With the database away, the next heartbeat that gets through writes it: do not wait here.
    if (status === null || !this.#dbUp) return;
    try {
      await withDeadline(writeStatus(this.#sql, this.#s, status), this.#opts.connectTimeoutMs + this.#opts.writeTimeoutMs, 'status report');
      this.#markUp();
    } catch (err) {
      // The next heartbeat writes it again.
      this.#markDown(err);
      throw err;
    }
  }

  #status(): StatusRecord | null {
    const report = this.#report;
    if (report === null || this.#data.epoch === '') return null;
    // Numbered when made: of two writes in flight, the later one made is the one that stands.
    return { nodeId: this.#opts.nodeId, epoch: this.#data.epoch, heartbeatMs: this.#opts.heartbeatMs, report, proc: this.#proc, seq: ++this.#reportSeq };
  }

  async deploymentResults(environments: readonly string[], revision: number, own: { environment: string; success: boolean; message: string }): Promise<DeploymentResult[]> {
    if (environments.length === 0) return [];
    const known = new Set(this.#data.environments.map((e) => e.name));
    const envs = environments.filter((e) => known.has(e));
    const self: Self = { nodeId: this.#opts.nodeId, environment: own.environment, outcome: own };
    const epoch = this.#data.epoch;
    const started = Date.now();
    const deadline = started + this.#opts.statusWaitMs;
    const verdicts = new Map<string, DeploymentResult>();
    let pause = 10;
    let failure: unknown = null;
    while (envs.length > 0) {
      let rows;
      try {
        rows = await withDeadline(readNodes(this.#sql, this.#s, envs), Math.max(100, Math.min(this.#opts.connectTimeoutMs, deadline - Date.now() + 100)), 'reading node status');
      } catch (err) {
        failure = err;
        break;
      }
      const now = Date.now();
      let open = false;
      for (const env of envs) {
        const v = judge(env, revision, epoch, rows, self, now - started);
        verdicts.set(env, { environmentName: v.environmentName, success: v.success, message: v.message });
        if (!v.decided) open = true;
      }
      if (!open || now >= deadline) break;
      await sleep(Math.min(pause, deadline - now));
      pause = Math.min(pause * 2, 100);
    }
    return environments.map((env): DeploymentResult => {
      if (!known.has(env)) return { environmentName: env, success: false, message: 'unknown environment' };
      const v = verdicts.get(env);
      if (v !== undefined) return v;
      const why = `the other nodes' status is unknown: PostgreSQL did not answer (${(failure as Error | null)?.message ?? 'no answer'})`;
      return env === own.environment ? { environmentName: env, success: false, message: `${own.message}; ${why}` } : { environmentName: env, success: false, message: why };
    });
  }

  async nodes(): Promise<NodeInfo[]> {
    try {
      const rows = await withDeadline(readNodes(this.#sql, this.#s), this.#opts.connectTimeoutMs + this.#opts.writeTimeoutMs, 'reading node status');
      return rows.map(nodeInfo);
    } catch (err) {
      if (isUnavailable(err)) throw new StoreUnavailableError(`node status is unavailable: ${(err as Error).message}`, false, { cause: err });
      throw err;
    }
  }

  /** This node's link to the database, for /metrics and health(). */
  status(): PgStoreStatus {
    return {
      databaseUp: this.#dbUp,
      listenerUp: this.#listener?.up(3 * this.#opts.heartbeatMs) ?? false,
      revision: this.#data.revision,
      epoch: this.#data.epoch,
      stalenessMs: this.#confirmedAt === 0 ? Number.POSITIVE_INFINITY : Date.now() - this.#confirmedAt,
      lastError: this.#lastError,
      listenerRebuilds: this.#listener?.rebuilds ?? 0,
    };
  }

  health(): StoreHealth {
    const st = this.status();
    return {
      writable: !this.#closed && st.databaseUp,
      detail: {
        kind: 'postgres',
        url: redactUrl(this.#opts.url),
        schema: this.#opts.schema,
        database: st.databaseUp ? 'up' : 'down',
        listener: st.listenerUp ? 'up' : 'down',
        revision: st.revision,
        epoch: st.epoch,
        stalenessMs: Number.isFinite(st.stalenessMs) ? st.stalenessMs : null,
        lastError: st.lastError,
      },
    };
  }

  #markUp(): void {
    if (!this.#dbUp) this.#log.info({ event: 'store_database_up', store: this.description }, 'PostgreSQL is reachable');
    this.#dbUp = true;
    this.#lastError = null;
  }

  #markDown(err: unknown): void {
    if (!isUnavailable(err)) return;
    const message = (err as Error).message;
    if (this.#dbUp) this.#log.warn({ event: 'store_database_down', store: this.description, err: message }, 'PostgreSQL is unreachable: enforcing the last good snapshot; admin writes answer 503');
    this.#dbUp = false;
    this.#lastError = message;
  }

  // ---- loops ------------------------------------------------------------------------------------

  #makeListener(): ChangeListener {
    return new ChangeListener({
      url: this.#opts.url,
      pg: PgStore.clientOptions(this.#opts, this.#log, 'listen'),
      channel: this.#channel,
      selfTag: this.#selfTag,
      log: this.#log,
      onChange: () => this.requestSync('notify'),
      onListen: () => this.requestSync('listen'),
    });
  }

  #startLoops(): void {
    this.#looping = true;
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      t.unref();
      this.#timers.push(t);
    };
    every(this.#opts.pollIntervalMs, () => this.requestSync('poll'));
    every(this.#opts.heartbeatMs, () => void this.#heartbeat());
    if (this.#listener === null) {
      // Started from the snapshot cache: LISTEN first, then the listener's onListen syncs.
      this.#listener = this.#makeListener();
      this.#listener.start().catch(() => undefined);
    }
    // A change committed after open()'s read but notified before the loops ran is caught here.
    this.requestSync('start');
    void this.#heartbeat();
  }

  async #heartbeat(): Promise<void> {
    if (this.#hbInFlight || this.#closed) return;
    this.#hbInFlight = true;
    const seq = ++this.#hbSeq;
    try {
      const head = await withDeadline(
        heartbeat(this.#sql, this.#s, this.#status(), this.#channel, heartbeatPayload(this.#selfTag, seq)),
        Math.max(this.#opts.heartbeatMs, this.#opts.connectTimeoutMs),
        'heartbeat',
      );
      this.#markUp();
      this.#listener?.sent(seq);
      const have = this.#cache;
      if (head !== null && have !== null && head.epoch === have.head.epoch && head.revision === have.head.revision && head.writeId === have.head.writeId) this.#confirmedAt = Date.now();
      else this.requestSync('heartbeat');
    } catch (err) {
      this.#markDown(err);
      if (!isUnavailable(err)) this.#log.warn({ event: 'store_heartbeat_failed', err: (err as Error).message }, 'heartbeat failed');
    } finally {
      this.#hbInFlight = false;
    }
    this.#listener?.check();
  }

  #saveCache(): void {
    const file = this.#opts.snapshotCache;
    if (file === null || this.#opts.role !== 'node') return;
    if (this.#cacheDirty) return;
    this.#cacheDirty = true;
    // One write at a time, of the newest state when it starts; bursts of changes fold into one.
    this.#cacheWrite = this.#cacheWrite.then(async () => {
      this.#cacheDirty = false;
      try {
        await writeSnapshotCache(file, this.#data);
      } catch (err) {
        this.#log.warn({ event: 'snapshot_cache_write_failed', file, err: (err as Error).message }, 'could not write the local snapshot cache');
      }
    });
  }

  /**
   * Stops the loops, waits (bounded) for queued writes and the cache file, removes this node's
   * status row (a node that left on purpose is not "unreachable"), and closes the connections.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    const bound = this.#opts.connectTimeoutMs + this.#opts.writeTimeoutMs;
    await withDeadline(this.#tail, bound, 'closing').catch(() => undefined);
    await this.#cacheWrite;
    if (this.#opts.role === 'node' && this.#dbUp) {
      await withDeadline(this.#sql.unsafe(`delete from ${this.#s}.nodes where node_id = $1`, [this.#opts.nodeId]), this.#opts.connectTimeoutMs, 'leaving').catch(() => undefined);
    }
    await this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#listener?.close();
    await this.#sql.end({ timeout: 0.5 }).catch(() => undefined);
  }
}

/** This node's rows after its own write committed: unchanged rows kept, written ones at `revision`. */
function afterCommit(base: StateCache, enc: Encoded, d: Diff, next: StoreData, revision: number, writeId: string): StateCache {
  const rows = new Map<string, CachedRow>();
  for (const [id, r] of enc.rows) {
    const b = base.rows.get(id);
    const pos = d.positions.get(id)!;
    if (b !== undefined && b.pos === pos && b.version === r.version && b.json === r.json) rows.set(id, b);
    else rows.set(id, { kind: r.kind, key: r.key, pos, version: r.version, json: r.json, rev: revision, rowVersion: (b?.rowVersion ?? 0) + 1, value: deepFreeze(r.value) });
  }
  const audit = new Map<number, { revision: number; record: AuditRecord }>();
  for (const a of next.audit) audit.set(a.id, base.audit.get(a.id) ?? { revision, record: a });
  const data = deepFreeze(next);
  return { head: { epoch: next.epoch, revision, writeId }, rows, audit, blobs: enc.blobs, data };
}

