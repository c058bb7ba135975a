/**
 * The cluster store's schema, as numbered migrations that ipgate applies itself at startup.
 *
 * Several nodes may start at once against a new database: the migrations run in one transaction
 * that first takes a transaction-scoped advisory lock named after the schema, so exactly one node
 * creates the tables and the others then find them done. DDL is transactional in PostgreSQL, so a
 * node that dies half-way leaves nothing behind. A migration is never edited once released; a
 * change is a new, higher-numbered one.
 *
 * A database migrated by a newer ipgate (a version this one does not know) is refused: this node
 * would not understand the tables.
 */
import type { Sql, TransactionSql } from 'postgres';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** SQL with `@s` standing for the quoted schema name. */
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'cluster store',
    sql: `
-- One row: the global revision (incremented by every write, under this row's lock, so revision
-- order is commit order with no gaps; deliberately not a sequence) and the store's epoch.
create table @s.head (
  id boolean primary key default true check (id),
  revision bigint not null check (revision >= 0),
  epoch uuid not null,
  format integer not null,
  updated_at timestamptz not null default now()
);

-- Every addressable resource (see rows.ts). version is the resource's ETag; row_version guards
-- each UPDATE and DELETE, so a write based on a stale read changes nothing.
create table @s.resources (
  kind text not null check (kind in ('environment', 'project', 'proxy', 'ip_group', 'admin_access')),
  key text not null,
  pos bigint not null,
  version bigint not null,
  doc json not null,
  rev bigint not null,
  row_version bigint not null,
  primary key (kind, key)
);

-- Deployed copies of API proxies: immutable, named by the SHA-256 of their JSON text.
create table @s.blobs (
  hash text primary key check (hash ~ '^[0-9a-f]{64}$'),
  body text not null,
  created_at timestamptz not null default now()
);

create table @s.audit (
  id bigint primary key,
  revision bigint not null,
  doc json not null
);

-- Append-only: what each revision changed.
create table @s.change_log (
  revision bigint not null,
  seq integer not null,
  kind text not null,
  key text not null,
  op text not null check (op in ('insert', 'update', 'delete')),
  version bigint,
  at timestamptz not null default now(),
  primary key (revision, seq)
);

-- What each gateway node enforces. last_seen is the database's clock, so node clocks never matter.
create table @s.nodes (
  node_id text primary key,
  environment text not null,
  epoch uuid,
  revision bigint not null,
  snapshot_hash text not null,
  failed_revision bigint,
  failed_error text,
  heartbeat_ms integer not null,
  last_seen timestamptz not null default now()
);
create index on @s.nodes (environment);
`,
  },
  {
    version: 2,
    name: 'write ids',
    sql: `
-- A random id per write, kept per revision. Revision numbers can repeat with other content after
-- a restore to an earlier point followed by new writes; a node compares the id of the revision it
-- holds with the database's before it trusts an incremental read.
alter table @s.head add column write_id uuid not null default gen_random_uuid();
create table @s.revisions (
  revision bigint primary key,
  write_id uuid not null
);
insert into @s.revisions (revision, write_id) select revision, write_id from @s.head;
`,
  },
  {
    version: 3,
    name: 'ordered status reports',
    sql: `
-- Which process wrote a node's row, and its report number: a report that a cut-off connection
-- delivers late (after a newer one from the same process) must not overwrite the newer one.
alter table @s.nodes add column report_proc uuid, add column report_seq bigint not null default 0;
`,
  },
];

export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Brings `schema` to the latest version. Returns the versions applied now (empty when there was
 * nothing to do). `after` runs in the same transaction, still under the lock (the first node
 * seeds the head row there).
 */
export async function migrate(sql: Sql, schema: string, after?: (tx: TransactionSql) => Promise<void>): Promise<number[]> {
  const s = quoteIdent(schema);
  return (await sql.begin(async (tx) => {
    // hashtext is stable for a given name: every node of this schema contends for the same lock.
    await tx`select pg_advisory_xact_lock(hashtext(${'ipgate-migrate:' + schema}))`;
    await tx.unsafe(`create schema if not exists ${s}`);
    await tx.unsafe(`create table if not exists ${s}.migrations (version integer primary key, name text not null, applied_at timestamptz not null default now())`);
    const done = new Set((await tx.unsafe(`select version from ${s}.migrations`)).map((r) => Number(r.version)));
    const newest = Math.max(0, ...done);
    if (newest > LATEST_VERSION) {
      throw new Error(`schema ${schema} is at migration ${newest}, newer than this ipgate knows (${LATEST_VERSION}); upgrade ipgate`);
    }
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await tx.unsafe(m.sql.replaceAll('@s', s));
      await tx.unsafe(`insert into ${s}.migrations (version, name) values ($1, $2)`, [m.version, m.name]);
      applied.push(m.version);
    }
    if (after !== undefined) await after(tx);
    return applied;
  })) as number[];
}
