/**
 * The cluster store's link to PostgreSQL, as gauges on the gateway's registry (served at /metrics).
 * They are read when scraped, so they cost nothing between scrapes. None of them feeds /readyz: a
 * node with a snapshot loaded stays ready while the database is away, and these say how stale it is.
 */
import { Gauge, type Registry } from 'prom-client';
import type { PgStore } from './pg-store.js';

export function registerClusterStoreMetrics(registry: Registry, store: PgStore): void {
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  gauge('ipgate_store_database_up', '1 when the last PostgreSQL call of the cluster store succeeded', () => (store.status().databaseUp ? 1 : 0));
  gauge('ipgate_store_listener_up', '1 when the LISTEN connection delivered (its own heartbeat) within three heartbeats', () => (store.status().listenerUp ? 1 : 0));
  gauge('ipgate_store_snapshot_staleness_seconds', 'Seconds since this node last confirmed it holds the newest revision in PostgreSQL', () => {
    const ms = store.status().stalenessMs;
    return Number.isFinite(ms) ? ms / 1000 : -1;
  });
  gauge('ipgate_store_revision', 'The store revision this node holds', () => store.status().revision);
  gauge('ipgate_store_listener_rebuilds', 'Times the LISTEN connection was found silently dead and rebuilt', () => store.status().listenerRebuilds);
}
