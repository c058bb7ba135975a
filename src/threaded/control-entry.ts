/**
 * Entry point of the control-plane thread of `controlPlane: thread` (started by host.ts): the
 * whole Gateway (store, admin API, compile) in this thread, serving traffic through the main
 * thread via a ThreadLink. It ends when the main thread asks it to close, after the admin API has
 * drained and the store has closed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Gateway } from '../main.js';
import { ThreadLink } from './link.js';
import type { ControlThreadData, ToControl } from './protocol.js';

const port = parentPort!;
const { config } = workerData as ControlThreadData;
const link = new ThreadLink(port);
let gateway: Gateway | null = null;

port.on('message', (m: ToControl) => {
  if (m.type !== 'close') return;
  void (async () => {
    let error: string | undefined;
    try {
      await gateway?.close(m.drainTimeoutMs);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    } finally {
      link.send({ type: 'closed', error });
      // Nothing else may keep this thread alive once the gateway is closed.
      port.close();
    }
  })();
});

Gateway.start({ config, link, logStream: link.logStream, processMetrics: false }).then(
  (gw) => {
    gateway = gw;
    const a = gw.adminAddress;
    link.send({ type: 'ready', admin: { address: a.address, port: a.port, family: a.family } });
  },
  (err: unknown) => link.send({ type: 'failed', error: err instanceof Error ? err.message : String(err) }),
);
