/**
 * The control-plane thread's pacer (the yield points are in src/policy/pace.ts). After each slice
 * of work it asks whether the traffic thread is waiting for the CPU this thread holds, and if so
 * sleeps for a pause so that thread runs. It never sleeps otherwise: on an idle gateway, or with a
 * free CPU for each thread, a write runs at full speed.
 *
 * Under contention a write therefore runs in slices of SLICE_MS with PAUSE_MS between them (at
 * most a fifth of the CPU), and a request in flight waits for the control plane at most about one
 * slice at a time instead of a whole scheduler tick.
 */
import { closeSync, openSync, readlinkSync, readSync } from 'node:fs';
import type { Pacer } from '../policy/pace.js';

/** Work between two checks. Short enough to be invisible next to a request's own latency. */
export const SLICE_MS = 0.25;
/** The CPU given back each time the traffic thread waits. */
export const PAUSE_MS = 1;

export interface PacerProbe {
  now(): number;
  /** Is the traffic thread runnable and queued on the CPU this thread is running on? */
  trafficWaiting(): boolean;
  sleep(ms: number): void;
}

/** After the traffic thread last waited, work counts as contended for this long. */
export const CONTENDED_MS = 100;

/** What a pacer has done, for /metrics. */
export interface PacerStats {
  /** Slices of work completed (each followed by a check of the traffic thread). */
  slices: number;
  /** Pauses taken because the traffic thread was waiting. */
  pauses: number;
}

export function createPacer(probe: PacerProbe, sliceMs = SLICE_MS, pauseMs = PAUSE_MS): Pacer & { readonly stats: PacerStats } {
  let sliceStart = probe.now();
  let lastWait = -Infinity;
  const stats: PacerStats = { slices: 0, pauses: 0 };
  return {
    stats,
    check() {
      const now = probe.now();
      if (now - sliceStart < sliceMs) return;
      stats.slices++;
      if (probe.trafficWaiting()) {
        lastWait = now;
        stats.pauses++;
        probe.sleep(pauseMs);
      }
      sliceStart = probe.now();
    },
    get contended() {
      return probe.now() - lastWait < CONTENDED_MS;
    },
  };
}

/**
 * The calling thread's task id (Linux: every thread is a task, and /proc/thread-self names it);
 * null elsewhere.
 */
export function ownTaskId(): number | null {
  if (process.platform !== 'linux') return null;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) ? tid : null;
  } catch {
    return null;
  }
}

/** Field 3 (state) and field 39 (CPU) of a /proc/.../stat line: after the command name in parentheses. */
export function parseTaskStat(line: string): { state: string; cpu: number } | null {
  const close = line.lastIndexOf(')');
  if (close < 0) return null;
  const fields = line.slice(close + 2).split(' ');
  const state = fields[0];
  const cpu = Number(fields[36]);
  if (state === undefined || state === '' || !Number.isInteger(cpu)) return null;
  return { state, cpu };
}

/**
 * Linux: reads the traffic thread's task stat and this thread's own. The files stay open and are re-read from offset 0 (a few µs each).
 * Returns null where they cannot be read: no pacing then, as with the nice value.
 */
export function linuxProbe(trafficTid: number): (PacerProbe & { close(): void }) | null {
  if (process.platform !== 'linux') return null;
  let traffic: number;
  let own: number;
  try {
    traffic = openSync(`/proc/self/task/${trafficTid}/stat`, 'r');
  } catch {
    return null;
  }
  try {
    own = openSync('/proc/thread-self/stat', 'r');
  } catch {
    closeSync(traffic);
    return null;
  }
  const buf = Buffer.alloc(1024);
  const read = (fd: number): { state: string; cpu: number } | null => {
    const n = readSync(fd, buf, 0, buf.length, 0);
    return parseTaskStat(buf.toString('latin1', 0, n));
  };
  if (read(traffic) === null || read(own) === null) {
    closeSync(traffic);
    closeSync(own);
    return null;
  }
  const cell = new Int32Array(new SharedArrayBuffer(4));
  return {
    now: () => performance.now(),
    trafficWaiting: () => {
      const t = read(traffic);
      if (t === null || t.state !== 'R') return false;
      const me = read(own);
      return me !== null && me.cpu === t.cpu;
    },
    // Blocks this thread only (never the traffic thread): nothing else is waiting on the cell.
    sleep: (ms) => void Atomics.wait(cell, 0, 0, ms),
    close: () => {
      closeSync(traffic);
      closeSync(own);
    },
  };
}
