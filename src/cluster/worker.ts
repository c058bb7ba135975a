/**
 * A worker process of `workers: N`: a gateway with the traffic listener only. The primary owns the
 * store and the admin API; it sends this process its settings and every committed policy state
 * (protocol.ts), and the worker compiles and swaps each in itself, exactly as a single-process
 * gateway does (Gateway.apply), then answers with what it enforces. IP group expiry recompiles here
 * too, on this process's own timer.
 *
 * The traffic listener opens only after the first snapshot is in force, so the cluster never hands
 * this process a connection it could only answer with NOT_READY.
 */
import cluster from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { parseListen, type GatewayConfig } from '../config/schema.js';
import { exitOnFatalErrors, exitOnSignals, logShutdownFailure, type Exit } from '../lifecycle/process.js';
import { Gateway } from '../main.js';
import type { PolicyState } from '../policy/model.js';
import { stateHash } from '../policy/state-hash.js';
import { isToWorker, type Applied, type FromWorker } from './protocol.js';

export function runWorker(exit: Exit): void {
  let gw: Gateway | null = null;
  let config: GatewayConfig | null = null;
  /** The state in force (the last one that compiled). */
  let inForce: Applied | null = null;
  /** The newest state received and not applied yet: a burst of states compiles only the last. */
  let pending: PolicyState | null = null;

  const send = (m: FromWorker): void => {
    if (process.connected) process.send!(m);
  };

  const applyPending = (): void => {
    const state = pending;
    pending = null;
    if (state === null || gw === null || inForce === null) return;
    const r = gw.apply(state);
    if (r.ok) {
      inForce = { revision: state.revision, hash: stateHash(state) };
      send({ type: 'ipgate:applied', applied: inForce });
    } else {
      // Gateway.apply logged it and kept the last good snapshot.
      send({ type: 'ipgate:applied', applied: inForce, failed: { revision: state.revision, error: r.issues.map((i) => `${i.path}: ${i.message}`).join('; ') } });
    }
  };

  const start = async (c: GatewayConfig, state: PolicyState): Promise<void> => {
    config = c;
    const g = Gateway.forWorker({ config: c, workerId: cluster.worker?.id });
    gw = g;
    exitOnFatalErrors(g.log, exit);
    // A failure here is thrown: exitOnFatalErrors logs it, flushed, and exits 1, and the primary
    // reports that this worker exited before it was ready.
    const r = g.apply(state);
    // The primary compiled the same state before sending it; a worker that cannot is broken.
    if (!r.ok) throw new Error(`the initial policy state (revision ${state.revision}) does not compile in this worker`);
    inForce = { revision: state.revision, hash: stateHash(state) };
    const { host, port } = parseListen(c.listen)!;
    let address: AddressInfo;
    try {
      address = await g.dataPlane.listen(host, port);
    } catch (err) {
      throw new Error(`cannot open the traffic listener on ${c.listen}: ${(err as Error).message}`);
    }
    // States that arrived while the listener opened are applied first, so `ready` reports the newest.
    applyPending();
    send({ type: 'ipgate:ready', applied: inForce, address: { address: address.address, port: address.port, family: address.family } });
  };

  // SIGTERM comes from the primary's stop (pool.ts); a terminal's Ctrl-C sends SIGINT to every
  // process of the group. Either way this worker drains its own connections, as a single process does.
  exitOnSignals(
    async (signal) => {
      if (gw === null || config === null) return;
      gw.log.info({ event: 'shutdown', signal, drainTimeoutMs: config.drainTimeoutMs }, 'shutting down: draining requests in flight');
      await gw.close(config.drainTimeoutMs);
    },
    exit,
    (err) => {
      if (gw !== null) logShutdownFailure(gw.log, err);
    },
  );

  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return;
    switch (m.type) {
      case 'ipgate:init':
        if (gw === null) void start(m.config, m.state);
        return;
      case 'ipgate:state':
        // Deferred by one turn: messages that arrived together are all read first, and only the
        // newest is compiled.
        if (pending === null) setImmediate(applyPending);
        pending = m.state;
        return;
      case 'ipgate:collect': {
        const id = m.id;
        if (gw === null) return;
        void gw.metrics.registry.getMetricsAsJSON().then((metrics) => send({ type: 'ipgate:metrics', id, metrics }));
        return;
      }
    }
  });
  send({ type: 'ipgate:hello' });
}
