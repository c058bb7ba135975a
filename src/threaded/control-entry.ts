/**
 * Entry point of the control-plane thread of `controlPlane: thread` (started by host.ts): the
 * whole Gateway (store, admin API, compile) in this thread, serving traffic through the main
 * thread via a ThreadLink. It ends when the main thread asks it to close, after the admin API has
 * drained and the store has closed.
 */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Counter } from 'prom-client';
import { Gateway } from '../main.js';
import { setPacer } from '../policy/pace.js';
import { ThreadLink } from './link.js';
import { createPacer, linuxProbe, ownTaskId, type PacerStats } from './pacer.js';
import type { ControlThreadData, ToControl } from './protocol.js';

const port = parentPort!;
const { config, trafficTid } = workerData as ControlThreadData;
const link = new ThreadLink(port);
let gateway: Gateway | null = null;
const niceness = lowerPriority(config.controlPlaneNice);
// Long work (a large write) gives the CPU back whenever the traffic thread waits for it: pacer.ts.
const probe = config.controlPlanePacing && trafficTid !== null ? linuxProbe(trafficTid) : null;
if (probe !== null) {
  const pacer = createPacer(probe);
  setPacer(pacer);
  pacingMetrics(pacer.stats);
}

port.on('message', (m: ToControl) => {
  if (m.type !== 'close') return;
  void (async () => {
    let error: string | undefined;
    try {
      await gateway?.close(m.drainTimeoutMs);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    } finally {
      stopPacing();
      link.send({ type: 'closed', error });
      // Nothing else may keep this thread alive once the gateway is closed.
      port.close();
    }
  })();
});

Gateway.start({ config, link, logStream: link.logStream, processMetrics: false }).then(
  (gw) => {
    gateway = gw;
    gw.log.info(
      { event: 'control_plane_thread', nice: niceness?.nice ?? 0, tid: niceness?.tid ?? ownTaskId(), pacing: probe !== null },
      niceness?.error ?? 'control-plane thread started',
    );
    const a = gw.adminAddress;
    link.send({ type: 'ready', admin: { address: a.address, port: a.port, family: a.family } });
  },
  (err: unknown) => {
    // The host terminates this thread next, which does not close raw file descriptors.
    stopPacing();
    link.send({ type: 'failed', error: err instanceof Error ? err.message : String(err) });
  },
);

function stopPacing(): void {
  setPacer(null);
  probe?.close();
}

/** The pacer's work at /metrics (through the link's registry, merged with the traffic thread's). */
function pacingMetrics(stats: PacerStats): void {
  const counter = (name: string, help: string, read: () => number): void => {
    let reported = 0;
    new Counter({
      name,
      help,
      registers: [link.registry],
      collect() {
        const now = read();
        this.inc(now - reported);
        reported = now;
      },
    });
  };
  counter('ipgate_control_plane_pacing_slices_total', 'Slices of long control-plane work (0.25 ms each) after which the pacer checked the traffic thread', () => stats.slices);
  counter('ipgate_control_plane_pacing_pauses_total', 'Pauses (1 ms each) the control-plane thread took because the traffic thread was waiting for its CPU', () => stats.pauses);
}

/**
 * Give this thread, not the process, a lower CPU priority: when both threads want the CPU (a large
 * write compiling while traffic saturates the core), the traffic thread wins. On Linux a thread is
 * a task with its own id, which /proc/thread-self names and setpriority() accepts; elsewhere this
 * is skipped. Raising one's own nice value needs no privilege.
 */
function lowerPriority(nice: number): { nice: number; tid: number; error: string | null } | null {
  if (process.platform !== 'linux' || nice === 0) return null;
  try {
    const tid = ownTaskId();
    if (tid === null) throw new Error('/proc/thread-self is not readable');
    setPriority(tid, nice);
    return { nice, tid, error: null };
  } catch (err) {
    return { nice: 0, tid: 0, error: `could not lower the control-plane thread's priority: ${(err as Error).message}` };
  }
}
