/**
 * What every swap of a snapshot into a serving data plane records: the reload metrics and the
 * `snapshot_installed` log line. One place, for the single-thread gateway (main.ts) and the
 * traffic thread of `controlPlane: thread` (threaded/host.ts).
 */
import type { Snapshot } from '../policy/snapshot.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/**
 * A reload's duration is the compile (measured by the compiler) plus everything from
 * `installStart` on: binding, swapping in and, across threads, rebuilding the snapshot.
 */
export function recordInstall(log: Logger, metrics: Metrics, snapshot: Snapshot, installStart: number): void {
  const durationMs = snapshot.stats.compileMs + (performance.now() - installStart);
  metrics.snapshotInstalled(snapshot, durationMs / 1000);
  log.info(
    { event: 'snapshot_installed', revision: snapshot.revision, durationMs: Math.round(durationMs * 1000) / 1000, entries: snapshot.stats.entries, stats: snapshot.stats },
    'policy snapshot installed',
  );
}
