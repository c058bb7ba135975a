/**
 * Opening the configured store outside a running gateway (`ipgate export` and `ipgate import`),
 * and the cluster store for a gateway node. Both stores speak the same export YAML, so moving from
 * the file store to PostgreSQL (or back) is an export with one config and an import with the other.
 */
import type { GatewayConfig } from '../../../config/schema.js';
import type { Logger } from '../../../observability/logger.js';
import { FileStore } from '../file-store.js';
import { importState, type ExportDoc } from '../portable.js';
import type { StoreData } from '../state.js';
import { PgStore, type PgStoreSettings } from './pg-store.js';

type StoreConfig = Pick<GatewayConfig, 'store' | 'nodeId' | 'environment'>;

export function pgSettings(config: StoreConfig): PgStoreSettings | null {
  return config.store.postgres;
}

/** The cluster store for a gateway node: LISTEN, heartbeats, status. Seeds an empty store with `seed`. */
export function openClusterStore(config: StoreConfig, log: Logger, seed: () => StoreData): Promise<PgStore> {
  const settings = pgSettings(config);
  if (settings === null) throw new TypeError('store.postgres is not configured');
  return PgStore.open({ ...settings, nodeId: config.nodeId, environment: config.environment, log, seed, role: 'node' });
}

/** The whole state of the configured store, read without taking part in the cluster. */
export async function readConfiguredStore(config: StoreConfig): Promise<{ data: Readonly<StoreData>; description: string }> {
  const pg = pgSettings(config);
  if (pg !== null) {
    const store = await PgStore.open({ ...pg, nodeId: config.nodeId, environment: config.environment, role: 'tool' });
    try {
      return { data: store.data, description: store.description };
    } finally {
      await store.close();
    }
  }
  if (config.store.file === null) throw new Error('no store is configured: set store.file or store.postgres in the config, or IPGATE_STORE');
  // Read-only: a running gateway owns the file; a reader must not clean up after it.
  const store = await FileStore.open(config.store.file, { readOnly: true });
  if (store === null) throw new Error(`store ${config.store.file} does not exist`);
  return { data: store.data, description: config.store.file };
}

/**
 * `ipgate import` into the cluster store. Unlike the file store, running gateways need not stop:
 * the import is one write, and every node picks it up like any other. An empty schema is created
 * and seeded with the import (a new store epoch); an existing store keeps its epoch and audit and
 * continues its revisions. `validate` throws to refuse the import before anything is written.
 */
export async function importIntoCluster(config: StoreConfig, doc: ExportDoc, validate: (next: Readonly<StoreData>) => void): Promise<Readonly<StoreData>> {
  const pg = pgSettings(config);
  if (pg === null) throw new TypeError('store.postgres is not configured');
  const fresh = importState(null, doc, config.environment);
  validate(fresh);
  const store = await PgStore.open({ ...pg, nodeId: config.nodeId, environment: config.environment, role: 'tool', seed: () => ({ ...fresh, revision: 0 }) });
  try {
    const out = await store.update((d) => importState(d, doc, config.environment), { check: validate });
    return out.data;
  } finally {
    await store.close();
  }
}
