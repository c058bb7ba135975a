/**
 * A short, stable fingerprint of what a node enforces: two nodes with the same hash enforce the
 * same policy state. Reported to the store after every swap so divergence is visible.
 */
import type { PolicyState } from './model.js';
import { pacedSha256, pacedStringify } from './pace.js';

export function stateHash(state: PolicyState): string {
  // The revision is excluded: the hash names the content, which is what must converge.
  return pacedSha256(pacedStringify(state.projects)).slice(0, 16);
}
