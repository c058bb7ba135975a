/**
 * Where this node's traffic is served when it is not served by the control plane's own thread:
 * worker processes (pool.ts, `workers: N`) or the process's main thread while the control plane
 * runs in a thread of its own (src/threaded/link.ts, `controlPlane: thread`). The Gateway feeds
 * either one the same way: every committed snapshot, confirmed before a deployment reports success.
 */
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { PolicyState } from '../policy/model.js';
import type { Snapshot } from '../policy/snapshot.js';

/** This node's outcome of a deployment across its traffic servers, and what to record as failed. */
export interface PoolOutcome {
  readonly success: boolean;
  readonly message: string;
  readonly failed?: { readonly revision: number; readonly error: string } | undefined;
}

export interface TrafficPlane {
  /** Enforce the first snapshot and open the traffic listener; resolves with its address. */
  start(snapshot: Snapshot, state: PolicyState): Promise<AddressInfo>;
  /** Enforce a newer snapshot (of `state`); resolves once every traffic server does, or why not. */
  enforce(snapshot: Snapshot, state: PolicyState): Promise<PoolOutcome>;
  /** What is enforced, for the store: revision, state hash, a revision that failed; null if nothing serves. */
  report(): { revision: number; snapshotHash: string; failed: { revision: number; error: string } | undefined } | null;
  /** Traffic servers taking traffic now. */
  readonly liveCount: number;
  /** Metrics about the traffic servers themselves, merged into /metrics. */
  readonly registry: Registry;
  /** Every traffic server's registry (getMetricsAsJSON), for an aggregated scrape. */
  collect(): Promise<unknown[][]>;
  stop(drainTimeoutMs: number): Promise<void>;
}
