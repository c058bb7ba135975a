/**
 * The messages between the traffic thread (the process's main thread, host.ts) and the
 * control-plane thread (control-entry.ts) of `controlPlane: thread`, over the worker's port.
 *
 * Policy crosses only as compiled snapshots (policy/wire.ts): the traffic thread never parses,
 * validates or compiles anything, so an admin write of any size costs it one swap.
 */
import type { GatewayConfig } from '../config/schema.js';
import type { SnapshotWire } from '../policy/wire.js';

/** workerData of the control-plane thread. */
export interface ControlThreadData {
  readonly config: GatewayConfig;
  /** Linux: the traffic thread's task id, for the pacer (threaded/pacer.ts); null elsewhere. */
  readonly trafficTid: number | null;
}

export interface WireAddress {
  readonly address: string;
  readonly port: number;
  readonly family: string;
}

/** Control-plane thread → traffic thread. */
export type FromControl =
  /**
   * Enforce this snapshot; answered with `installed` carrying the same id. The first one also
   * opens the traffic listener (never before: no policy must never mean allow-all).
   */
  | { readonly type: 'install'; readonly id: number; readonly snapshot: SnapshotWire }
  /** A compile failed; the traffic thread counts it (ipgate_reload_failures_total). */
  | { readonly type: 'reload-failed' }
  /** Log lines of the control plane, for the process's one log destination. */
  | { readonly type: 'log'; readonly chunk: string }
  /** Started: the admin API listens. */
  | { readonly type: 'ready'; readonly admin: WireAddress }
  /** Could not start (the store, the first compile, the admin listener): the reason. */
  | { readonly type: 'failed'; readonly error: string }
  /** A scrape of the admin API's /metrics asks for the traffic thread's registry; answered with `metrics`. */
  | { readonly type: 'collect'; readonly id: number }
  /** Answer to `close`: the admin API drained and the store closed, or why the close failed. */
  | { readonly type: 'closed'; readonly error?: string | undefined };

/** Traffic thread → control-plane thread. */
export type ToControl =
  | { readonly type: 'installed'; readonly id: number; readonly error?: string | undefined; readonly address?: WireAddress | undefined }
  | { readonly type: 'metrics'; readonly id: number; readonly metrics: unknown[] }
  | { readonly type: 'close'; readonly drainTimeoutMs: number };
