/**
 * A short, stable fingerprint of what a node enforces: two nodes with the same hash enforce the
 * same policy state. Reported to the store after every swap so divergence is visible.
 */
import { createHash } from 'node:crypto';
import type { PolicyState } from './model.js';

export function stateHash(state: PolicyState): string {
  // The revision is excluded: the hash names the content, which is what must converge.
  return createHash('sha256').update(JSON.stringify(state.projects)).digest('hex').slice(0, 16);
}
