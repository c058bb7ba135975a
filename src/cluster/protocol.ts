/**
 * The messages between the primary process and its workers, over the cluster's IPC channel (JSON).
 *
 * A worker announces itself with `hello` once it listens for messages: Node drops a message that
 * arrives before a 'message' listener exists, and an ES module entry point attaches its listener
 * several ticks after the process starts. Only then does the primary send `init`.
 *
 * Every type is prefixed with `ipgate:`, so these never collide with another library's messages
 * on the same channel.
 */
import type { GatewayConfig } from '../config/schema.js';
import type { PolicyState } from '../policy/model.js';

/** Primary → worker. */
export type ToWorker =
  /** The gateway settings (without `projects`: policies come as states) and the state in force. */
  | { readonly type: 'ipgate:init'; readonly config: GatewayConfig; readonly state: PolicyState }
  /** A new committed state to enforce; answered with `applied`. */
  | { readonly type: 'ipgate:state'; readonly state: PolicyState }
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
  /** The first state is in force and the traffic listener is open: the worker may be sent traffic. */
  | { readonly type: 'ipgate:ready'; readonly applied: Applied; readonly address: { readonly address: string; readonly port: number; readonly family: string } }
  /**
   * The outcome of `state` messages. `applied` is what is in force now: the newest state received
   * when that compiled (a worker that received several states while busy applies only the newest),
   * otherwise the last good one, and then `failed` names the revision that did not compile.
   */
  | { readonly type: 'ipgate:applied'; readonly applied: Applied; readonly failed?: { readonly revision: number; readonly error: string } | undefined }
  /** The worker's registry as prom-client's getMetricsAsJSON() returns it. */
  | { readonly type: 'ipgate:metrics'; readonly id: number; readonly metrics: unknown[] };

const TO_WORKER: ReadonlySet<string> = new Set(['ipgate:init', 'ipgate:state', 'ipgate:collect']);
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
