/**
 * The control-plane store contract. The admin service, the composition root and the CLI talk to
 * this interface only; the embedded file store and the PostgreSQL cluster store implement it.
 *
 * One node of an environment may be one of many: besides reading and writing the state, a store
 * records which revision each node enforces and answers, for a write, whether every live node of
 * each target environment has applied it (deploymentResults are reports, not echoes).
 */
import type { StoreData } from './state.js';

/**
 * The store's database cannot be reached, or did not answer within the write timeout (the cluster
 * store's PostgreSQL is down or partitioned away). Nothing was written, unless `outcomeUnknown`:
 * then the commit was sent and its answer never came. The admin API answers 503.
 */
export class StoreUnavailableError extends Error {
  constructor(
    message: string,
    readonly outcomeUnknown = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreUnavailableError';
  }
}

/**
 * A version-guarded change matched zero rows: the resource was changed by another writer after it
 * was read. Nothing was written. The admin API answers 412, as for a stale If-Match.
 */
export class StoreConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreConflictError';
  }
}

export interface UpdateOptions {
  /**
   * Runs inside the serialised write on the finished next state (revision already set), before
   * anything is persisted. Throwing aborts the write: nothing is stored and the error reaches the
   * caller. The admin service compiles here, so a change that does not compile is never stored.
   */
  readonly check?: ((next: Readonly<StoreData>) => void) | undefined;
}

export interface UpdateResult<T> {
  readonly data: Readonly<StoreData>;
  readonly result: T;
}

/** What one node (all of its worker processes) enforces after trying to apply a revision. */
export interface ApplyReport {
  readonly environment: string;
  /** The revision the node enforces now (the last good one when `failed` is set). */
  readonly revision: number;
  /** A short hash of the enforced snapshot's input, equal on nodes that enforce the same thing. */
  readonly snapshotHash: string;
  /** Set when the node failed to compile or install `failed.revision`. */
  readonly failed?: { readonly revision: number; readonly error: string } | undefined;
}

export interface DeploymentResult {
  environmentName: string;
  success: boolean;
  message: string;
}

export interface NodeInfo {
  readonly nodeId: string;
  readonly environment: string;
  readonly revision: number;
  readonly snapshotHash: string;
  readonly lastSeen: string;
  /** live: seen recently; unreachable: not seen within three heartbeats. */
  readonly state: 'live' | 'unreachable';
  readonly failedRevision: number | null;
  readonly failedError: string | null;
}

export interface StoreHealth {
  /** Can this node write right now? */
  readonly writable: boolean;
  readonly detail: Record<string, unknown>;
}

export interface Store {
  /** For logs: the file path, or the database URL without credentials. */
  readonly description: string;
  /** The last committed state this node knows. Deep-frozen: never mutate it. */
  readonly data: Readonly<StoreData>;
  /**
   * Serialised read-modify-write of the whole state. `fn` gets a private draft of the newest state
   * and mutates it (or returns a complete replacement StoreData); the store sets revision to
   * previous + 1. Throwing aborts and nothing is written. The draft shares the committed state's
   * frozen parts (blobs.ts cloneDraft/cloneState): deployed copies, lists (non-empty arrays of
   * primitives) and audit records. Replace them; changing one in place throws a TypeError.
   */
  update<T>(fn: (draft: StoreData) => T, opts?: UpdateOptions): Promise<UpdateResult<T>>;
  /** Replaces everything (import). revision = previous + 1 unless keepRevision. */
  replace(next: StoreData, opts?: { keepRevision?: boolean }): Promise<Readonly<StoreData>>;
  /** Called with the new state whenever a write made elsewhere (another node) becomes visible. */
  onRemoteChange(listener: (data: Readonly<StoreData>) => void): void;
  /** Records what this node enforces now. */
  reportApplied(report: ApplyReport): Promise<void>;
  /**
   * The truthful result of deploying `revision` to each of `environments`. `own` is this node's
   * outcome for its own environment, known before the call. May wait (bounded) for other nodes.
   */
  deploymentResults(environments: readonly string[], revision: number, own: { environment: string; success: boolean; message: string }): Promise<DeploymentResult[]>;
  /** Every known gateway node, for GET /apiops/nodes/. */
  nodes(): Promise<NodeInfo[]>;
  health(): StoreHealth;
  /** Refuses new writes and waits for those already queued. */
  close(): Promise<void>;
}
