/**
 * Readiness for GET /readyz: ready only when a policy snapshot is in force and, if a store is
 * configured, the store is open. A gateway without a snapshot answers 503 to all traffic, so an
 * orchestrator must not route to it yet.
 */

export interface Readiness {
  readonly ready: boolean;
  /** Why not, for the 503 body; empty when ready. */
  readonly reasons: string[];
}

export interface ReadinessChecks {
  /** Is a policy snapshot in force? */
  readonly snapshotLoaded: () => boolean;
  /** Is the store open? null when no store is configured. */
  readonly storeOpen: (() => boolean) | null;
}

export function readiness(checks: ReadinessChecks): () => Readiness {
  return () => {
    const reasons: string[] = [];
    if (!checks.snapshotLoaded()) reasons.push('no policy snapshot is loaded');
    if (checks.storeOpen !== null && !checks.storeOpen()) reasons.push('the policy store is not open');
    return { ready: reasons.length === 0, reasons };
  };
}
