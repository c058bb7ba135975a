/**
 * A worker process of `workers: N`: a gateway with the traffic listener only. The primary owns the
 * store and the admin API, and compiles every committed state (it must, to validate the write); it
 * sends this process its settings and every compiled snapshot (protocol.ts, policy/wire.ts), which
 * the worker rebuilds and swaps in, then answers with what it enforces. So no worker stalls its
 * traffic to compile a large list, and IP group expiry comes from the primary like any change.
 *
 * The traffic listener opens only after the first snapshot is in force, so the cluster never hands
 * this process a connection it could only answer with NOT_READY.
 */
import cluster from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { parseListen, type GatewayConfig } from '../config/schema.js';
import { exitOnFatalErrors, exitOnSignals, logShutdownFailure, type Exit } from '../lifecycle/process.js';
import { Gateway } from '../main.js';
import { recordInstall } from '../observability/reload-events.js';
import { collectStartupGarbage } from '../observability/startup-gc.js';
import { snapshotFromWire, type SnapshotWire } from '../policy/wire.js';
import { isToWorker, type Applied, type FromWorker } from './protocol.js';

export function runWorker(exit: Exit): void {
  let gw: Gateway | null = null;
  let config: GatewayConfig | null = null;
  /** The state in force (the last one that compiled). */
  let inForce: Applied | null = null;
  /** The newest snapshot received and not installed yet: of a burst, only the last is installed. */
  let pending: { snapshot: SnapshotWire; applied: Applied } | null = null;

  const send = (m: FromWorker): void => {
    if (process.connected) process.send!(m);
  };

  /** Rebuild a compiled snapshot and swap it in; throws if it cannot be rebuilt (the one in force stays). */
  const install = (g: Gateway, c: GatewayConfig, wire: SnapshotWire): void => {
    const installStart = performance.now();
    const snapshot = snapshotFromWire(wire, { scriptTimeoutMs: c.scriptTimeoutMs });
    g.dataPlane.install(snapshot);
    recordInstall(g.log, g.metrics, snapshot, installStart);
  };

  const applyPending = (): void => {
    const next = pending;
    pending = null;
    if (next === null || gw === null || config === null || inForce === null) return;
    try {
      install(gw, config, next.snapshot);
      inForce = next.applied;
      send({ type: 'ipgate:applied', applied: inForce });
    } catch (err) {
      gw.metrics.reloadFailed();
      gw.log.error({ event: 'install_failed', revision: next.applied.revision, err: (err as Error).message }, 'could not install a snapshot; keeping the one in force');
      send({ type: 'ipgate:applied', applied: inForce, failed: { revision: next.applied.revision, error: (err as Error).message } });
    }
  };

  const start = async (c: GatewayConfig, snapshot: SnapshotWire, applied: Applied): Promise<void> => {
    config = c;
    const g = Gateway.forWorker({ config: c, workerId: cluster.worker?.id });
    gw = g;
    exitOnFatalErrors(g.log, exit);
    // A failure here is thrown: exitOnFatalErrors logs it, flushed, and exits 1, and the primary
    // reports that this worker exited before it was ready.
    install(g, c, snapshot);
    inForce = applied;
    const { host, port } = parseListen(c.listen)!;
    let address: AddressInfo;
    collectStartupGarbage(g.log);
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
    (signal) => gw?.log.warn({ event: 'signal_ignored', signal }, `${signal} ignored`),
  );

  process.on('message', (m: unknown) => {
    if (!isToWorker(m)) return;
    switch (m.type) {
      case 'ipgate:init':
        if (gw === null) void start(m.config, m.snapshot, m.applied);
        return;
      case 'ipgate:snapshot':
        // Deferred by one turn: messages that arrived together are all read first, and only the
        // newest is installed.
        if (pending === null) setImmediate(applyPending);
        pending = { snapshot: m.snapshot, applied: m.applied };
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
