/**
 * PostgreSQL for the cluster tests: the machine's server on 127.0.0.1:5432 (trust auth, database
 * `test`), or IPGATE_TEST_PG_URL. Each test file works in its own schema and drops it afterwards.
 *
 * Locally, a missing PostgreSQL skips the cluster tests with a loud message. With
 * IPGATE_TEST_PG_REQUIRED=1 (set by .ci/run) it fails them instead: CI must never skip them.
 */
import { randomBytes } from 'node:crypto';
import postgres, { type Sql } from 'postgres';
import { afterAll, it } from 'vitest';
import { PgStore, type PgStoreOptions } from '../../src/controlplane/store/pg/pg-store.js';

export const PG_URL = process.env.IPGATE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const PG_REQUIRED = process.env.IPGATE_TEST_PG_REQUIRED === '1';

/** null when reachable, else why not. */
export async function probePostgres(url: string = PG_URL): Promise<string | null> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => undefined });
  try {
    await sql`select 1`;
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

/** The loud message for a local run without PostgreSQL. */
export function warnSkipped(file: string, why: string): void {
  const bar = '!'.repeat(100);
  process.stderr.write(
    `\n${bar}\n!! ${file}: SKIPPED — PostgreSQL is not reachable at ${PG_URL} (${why}).\n` +
      `!! The cluster tests need it. Start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n` +
      `!! (CI sets IPGATE_TEST_PG_REQUIRED=1, which turns this skip into a failure.)\n${bar}\n\n`,
  );
}

/**
 * Whether a cluster test file can run. Without PostgreSQL it says so loudly and the file's tests
 * are skipped; with IPGATE_TEST_PG_REQUIRED=1 it registers a failing test instead.
 */
export async function postgresGate(file: string): Promise<boolean> {
  const why = await probePostgres();
  if (why === null) return true;
  if (PG_REQUIRED) {
    it(`PostgreSQL is reachable at ${PG_URL} (required: IPGATE_TEST_PG_REQUIRED=1)`, () => {
      throw new Error(`${file}: PostgreSQL is required but unreachable: ${why}`);
    });
  } else warnSkipped(file, why);
  return false;
}

export function uniqueSchema(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(3).toString('hex')}`;
}

/** An admin connection for the test's own queries (pg_terminate_backend, schema drops). */
export function adminSql(): Sql {
  return postgres(PG_URL, { max: 2, onnotice: () => undefined, connection: { application_name: 'ipgate-test' } });
}

export async function dropSchema(sql: Sql, schema: string): Promise<void> {
  await sql.unsafe(`drop schema if exists "${schema}" cascade`);
}

/**
 * PgStores for one test file: `fresh()` makes a schema name, `open()` opens a store on it with
 * short timeouts and the defaults given (every store seeded as `seed` says unless overridden).
 * Every store is closed and every schema dropped after the file's tests.
 */
export function pgStores(prefix: string, defaults: Partial<PgStoreOptions> & Pick<PgStoreOptions, 'seed'>): {
  readonly sql: Sql;
  fresh(): string;
  open(schema: string, over?: Partial<PgStoreOptions>): Promise<PgStore>;
} {
  const sql = adminSql();
  const schemas: string[] = [];
  const stores: PgStore[] = [];
  afterAll(async () => {
    for (const s of stores) await s.close().catch(() => undefined);
    for (const s of schemas) await dropSchema(sql, s).catch(() => undefined);
    await sql.end({ timeout: 2 });
  });
  return {
    sql,
    fresh(): string {
      const s = uniqueSchema(prefix);
      schemas.push(s);
      return s;
    },
    async open(schema: string, over: Partial<PgStoreOptions> = {}): Promise<PgStore> {
      const s = await PgStore.open({
        url: PG_URL,
        schema,
        connectTimeoutMs: 1000,
        writeTimeoutMs: 1500,
        statusWaitMs: 200,
        pollIntervalMs: 60_000,
        heartbeatMs: 60_000,
        snapshotCache: null,
        poolSize: 3,
        nodeId: `n-${stores.length}`,
        environment: 'production',
        role: 'tool',
        ...defaults,
        ...over,
      });
      stores.push(s);
      return s;
    },
  };
}
