/**
 * Yield points for long control-plane work: a 100,000-entry write is validated, compiled,
 * serialised and hashed in loops over every entry, for over 100 ms of CPU.
 *
 * Why a nice value is not enough: Linux takes the CPU back from a running thread only at the
 * timer tick (every 4 ms with CONFIG_HZ=250), whatever the thread's priority. Each time the
 * control-plane thread got the CPU during a write it kept it for the rest of a tick, and every
 * request in flight on the traffic thread waited that long (measured with `perf sched`, see
 * bench/RESULTS.md). So the long loops call pace(), and the control-plane thread installs a pacer
 * (src/threaded/pacer.ts) that gives the CPU back after a short slice of work whenever the
 * traffic thread is waiting for it.
 *
 * Where no pacer is installed (the traffic thread, worker processes, the CLI, tests) pace() is one
 * compare.
 */

import { createHash } from 'node:crypto';

/** Units of work between two pacer calls: one unit is about one list entry's worth (~0.1-1 µs). */
const UNITS_PER_CHECK = 64;

/** What the control-plane thread installs (src/threaded/pacer.ts). */
export interface Pacer {
  /** Called at yield points: may sleep to give the CPU back. */
  check(): void;
  /** Has the traffic thread been waiting for the CPU lately? Only then is it worth pacing work that costs more when paced. */
  readonly contended: boolean;
}

let pacer: Pacer | null = null;
let budget = UNITS_PER_CHECK;

/** Install this thread's pacer (null removes it). Module state is per thread: each has its own. */
export function setPacer(p: Pacer | null): void {
  pacer = p;
}

/**
 * A yield point, cheap enough for every entry of a loop: the pacer itself runs once per
 * UNITS_PER_CHECK units. `units`: the work done since the last call, for coarser loops.
 */
export function pace(units = 1): void {
  if (pacer !== null && (budget -= units) <= 0) {
    budget = UNITS_PER_CHECK;
    pacer.check();
  }
}

/** JSON.stringify's replacer that only paces: the text is exactly JSON.stringify's. */
function pacingReplacer(_key: string, value: unknown): unknown {
  pace();
  return value;
}

/**
 * JSON.stringify(value), with a yield point per value while the traffic thread is contending for
 * the CPU. Otherwise it is the plain call: a replacer makes V8 leave its fast serialiser, which
 * costs about a third more CPU than the pauses save on an idle gateway.
 */
export function pacedStringify(value: unknown): string {
  return pacer?.contended === true ? JSON.stringify(value, pacingReplacer) : JSON.stringify(value);
}

/** Characters (or bytes) hashed between two yield points: about 0.1 ms of SHA-256. */
const HASH_PIECE = 65_536;

/** SHA-256 (hex) of a text's UTF-8 bytes or of a buffer, hashed in pieces with a yield point between them. */
export function pacedSha256(data: string | Uint8Array): string {
  const h = createHash('sha256');
  if (pacer === null || data.length <= HASH_PIECE) return h.update(data).digest('hex');
  let i = 0;
  while (i < data.length) {
    // A string is cut on UTF-16 units: a piece must not end between the two halves of a surrogate
    // pair, or each half would be encoded on its own (as U+FFFD) and the hash would change. A lone
    // high surrogate (not followed by a low one) is encoded as U+FFFD either way.
    let end = Math.min(i + HASH_PIECE, data.length);
    if (typeof data === 'string' && end < data.length && (data.charCodeAt(end - 1) & 0xfc00) === 0xd800 && (data.charCodeAt(end) & 0xfc00) === 0xdc00) end++;
    h.update(typeof data === 'string' ? data.slice(i, end) : data.subarray(i, end));
    pace(UNITS_PER_CHECK);
    i = end;
  }
  return h.digest('hex');
}
