/**
 * The messages between the primary process and its workers, over the cluster's IPC channel
 * (Node's "advanced" serialization, so that the compiled snapshots' typed arrays cross as such).
 *
 * A worker announces itself with `hello` once it listens for messages: Node drops a message that
 * arrives before a 'message' listener exists, and an ES module entry point attaches its listener
 * several ticks after the process starts. Only then does the primary send `init`.
 *
 * Every type is prefixed with `ipgate:`, so these never collide with another library's messages
 * on the same channel.
 */
import type { GatewayConfig } from '../config/schema.js';
import type { SnapshotWire } from '../policy/wire.js';

/** Primary → worker. */
export type ToWorker =
  /**
   * The gateway settings (without `projects`: policies come as compiled snapshots) and the
   * snapshot in force, with the revision and state hash it enforces.
   */
  | { readonly type: 'ipgate:init'; readonly config: GatewayConfig; readonly snapshot: SnapshotWire; readonly applied: Applied }
  /** A newer compiled snapshot to enforce; answered with `applied`. */
  | { readonly type: 'ipgate:snapshot'; readonly snapshot: SnapshotWire; readonly applied: Applied }
  /** A metrics scrape; answered with `metrics` carrying the same id. */
  | { readonly type: 'ipgate:collect'; readonly id: number };

/** What a worker enforces: the revision and stateHash() of its state in force. */
export interface Applied {
  readonly revision: number;
  readonly hash: string;
}

/** Worker → primary. */
export type FromWorker =
  | { readonly type: 'ipgate:hello' }
  /** The first snapshot is in force and the traffic listener is open: the worker may be sent traffic. */
  | { readonly type: 'ipgate:ready'; readonly applied: Applied; readonly address: { readonly address: string; readonly port: number; readonly family: string } }
  /**
   * The outcome of `snapshot` messages. `applied` is what is in force now: the newest snapshot
   * received (a worker that received several while busy installs only the newest), or the last good
   * one if that could not be installed, and then `failed` names the revision and why.
   */
  | { readonly type: 'ipgate:applied'; readonly applied: Applied; readonly failed?: { readonly revision: number; readonly error: string } | undefined }
  /** The worker's registry as prom-client's getMetricsAsJSON() returns it. */
  | { readonly type: 'ipgate:metrics'; readonly id: number; readonly metrics: unknown[] };

const TO_WORKER: ReadonlySet<string> = new Set(['ipgate:init', 'ipgate:snapshot', 'ipgate:collect']);
const FROM_WORKER: ReadonlySet<string> = new Set(['ipgate:hello', 'ipgate:ready', 'ipgate:applied', 'ipgate:metrics']);

function typeOf(m: unknown): string {
  if (m === null || typeof m !== 'object') return '';
  const t = (m as { type?: unknown }).type;
  return typeof t === 'string' ? t : '';
}

/** Is `m` one of ours? Both ends are this program, so the type tag is the whole check. */
export function isToWorker(m: unknown): m is ToWorker {
  return TO_WORKER.has(typeOf(m));
}

export function isFromWorker(m: unknown): m is FromWorker {
  return FROM_WORKER.has(typeOf(m));
}
