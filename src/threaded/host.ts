/**
 * The traffic thread of `controlPlane: thread` (the default): the process's main thread serves
 * traffic and nothing else, while the control plane (admin API, store, validation, compile: the
 * same Gateway as ever, see control-entry.ts) runs in a worker thread of its own.
 *
 * WHY. An admin write of a 100,000-entry list costs hundreds of milliseconds of parsing,
 * validating, compiling and storing. On the traffic thread that time is a stall for every request
 * in flight. Here the traffic thread only rebuilds the compiled snapshot it is sent (its tries are
 * shared memory, see policy/wire.ts) and swaps it in, which costs the same whatever the list size.
 *
 * Fail closed: the listener opens only after the first snapshot is in force; a snapshot that cannot
 * be rebuilt is refused and the one in force stays; if the control-plane thread dies, traffic is
 * still served under the last snapshot and `onControlPlaneExit` decides (the CLI exits 1, so that a
 * supervisor restarts the process, as it would after a crash of a single-thread gateway).
 */
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { DestinationStream } from 'pino';
import { parseListen, type GatewayConfig } from '../config/schema.js';
import type { DataPlane } from '../dataplane/server.js';
import { dataPlaneFor } from '../dataplane/from-config.js';
import { createLogger, stdoutDestination, type Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { recordInstall } from '../observability/reload-events.js';
import { acquireGc, collectStartupGarbage } from '../observability/startup-gc.js';
import type { Snapshot } from '../policy/snapshot.js';
import { snapshotFromWire } from '../policy/wire.js';
import { ownTaskId } from './pacer.js';
import type { ControlThreadData, FromControl, ToControl, WireAddress } from './protocol.js';

export interface ThreadedGatewayOptions {
  readonly config: GatewayConfig;
  /** Log destination (tests); stdout otherwise. The control plane's lines go there too. */
  readonly logStream?: DestinationStream | undefined;
  /** Collect Node process metrics (off in tests, which start many gateways in one process). */
  readonly processMetrics?: boolean | undefined;
  /** The control-plane thread died (a bug): it has been logged; the caller decides what follows. */
  readonly onControlPlaneExit?: ((err: Error) => void) | undefined;
}

/**
 * The compiled control-plane entry. Under vitest the sources are TypeScript, which a worker thread
 * cannot load; `npm test` builds dist/ first, and the thread runs that build.
 */
function controlEntry(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return fileURLToPath(new URL('../../dist/threaded/control-entry.js', import.meta.url));
  return fileURLToPath(new URL('./control-entry.js', import.meta.url));
}

function toAddress(a: WireAddress): AddressInfo {
  return { address: a.address, port: a.port, family: a.family };
}

export class ThreadedGateway {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly dataPlane: DataPlane;
  private readonly dest: DestinationStream;
  private readonly worker: Worker;
  private trafficAddr: AddressInfo | null = null;
  private adminAddr: AddressInfo | null = null;
  /**
   * The first install opens the listener: the reason it could not, or null. Every install is
   * answered only once this has settled, so none is confirmed before traffic is served under it.
   */
  private listening: Promise<string | null> | null = null;
  /** Settles start(): the control plane is up, or why not. */
  private startup: { resolve: () => void; reject: (e: Error) => void } | null = null;
  /** Settles close()'s wait for the control plane: why it did not close cleanly, or null. */
  private closed: ((error: string | null) => void) | null = null;
  private stopping = false;
  /** The control-plane thread's uncaught error, reported once the thread has exited. */
  private threadError: Error | null = null;

  /**
   * The settings this thread uses. Without `projects`: the policies go to the control-plane thread,
   * and a large list held here too would only be more heap for this thread's GC to mark.
   */
  readonly config: GatewayConfig;

  /** Kept alone: the options also hold the full config, which this thread must not keep. */
  private readonly onControlPlaneExit: ((err: Error) => void) | undefined;

  private constructor(config: GatewayConfig, opts: ThreadedGatewayOptions) {
    this.config = { ...config, projects: [] };
    this.onControlPlaneExit = opts.onControlPlaneExit;
    this.dest = opts.logStream ?? stdoutDestination();
    this.log = createLogger({ level: config.log.level, stream: this.dest });
    this.metrics = new Metrics({ processMetrics: opts.processMetrics ?? true });
    this.dataPlane = dataPlaneFor(config, this.log, this.metrics);
    // Before the other thread exists: taking gc() sets a process-wide V8 flag for an instant.
    acquireGc();
    const data: ControlThreadData = { config, trafficTid: ownTaskId() };
    this.worker = new Worker(controlEntry(), { workerData: data, name: 'ipgate-control-plane' });
    this.worker.on('message', (m: FromControl) => this.onMessage(m));
    // 'error' comes before the thread's last messages (its last log lines) have all been
    // delivered; 'exit' comes after them. So the error is kept, and reported on 'exit'.
    this.worker.on('error', (err) => {
      this.threadError ??= err;
    });
    this.worker.on('exit', (code) => {
      const err = this.threadError ?? new Error(`the control-plane thread exited with code ${code}`);
      if (!this.stopping || this.startup !== null) this.died(err);
      this.closed?.(this.stopping && this.threadError !== null ? err.message : null);
    });
  }

  /**
   * Start the control-plane thread and resolve once it has opened the store, compiled, had this
   * thread enforce the first snapshot and open the traffic listener, and opened the admin API.
   * Rejects with the reason it could not (and then nothing is left running).
   */
  static async start(opts: ThreadedGatewayOptions): Promise<ThreadedGateway> {
    const gw = new ThreadedGateway(opts.config, opts);
    try {
      await new Promise<void>((resolve, reject) => {
        gw.startup = { resolve, reject };
      });
      return gw;
    } catch (err) {
      gw.stopping = true;
      await gw.worker.terminate();
      // A listen still in progress would otherwise open after this cleanup.
      if (gw.listening !== null) await gw.listening;
      if (gw.dataPlane.server.listening) await gw.dataPlane.close(0);
      throw err;
    }
  }

  get trafficAddress(): AddressInfo {
    return this.trafficAddr!;
  }

  get adminAddress(): AddressInfo {
    return this.adminAddr!;
  }

  private send(m: ToControl): void {
    this.worker.postMessage(m);
  }

  private onMessage(m: FromControl): void {
    switch (m.type) {
      case 'install':
        void this.install(m.id, m);
        return;
      case 'log':
        this.dest.write(m.chunk);
        return;
      case 'reload-failed':
        this.metrics.reloadFailed();
        return;
      case 'collect': {
        const id = m.id;
        // A failing collect callback must not become an unhandled rejection (a process exit).
        void this.metrics.registry.getMetricsAsJSON().then(
          (metrics) => this.send({ type: 'metrics', id, metrics }),
          (err: unknown) => {
            this.log.error({ event: 'metrics_failed', err: (err as Error).message }, 'could not collect the traffic metrics');
            this.send({ type: 'metrics', id, metrics: [] });
          },
        );
        return;
      }
      case 'ready':
        this.adminAddr = toAddress(m.admin);
        this.startup?.resolve();
        this.startup = null;
        return;
      case 'failed':
        this.startup?.reject(new Error(m.error));
        this.startup = null;
        return;
      case 'closed':
        this.closed?.(m.error ?? null);
        return;
    }
  }

  /** Rebuild and swap in a snapshot; the first one opens the traffic listener. Answers `installed`. */
  private async install(id: number, m: Extract<FromControl, { type: 'install' }>): Promise<void> {
    const installStart = performance.now();
    let snapshot: Snapshot;
    try {
      snapshot = snapshotFromWire(m.snapshot, { scriptTimeoutMs: this.config.scriptTimeoutMs });
    } catch (err) {
      this.metrics.reloadFailed();
      this.log.error({ event: 'install_failed', revision: m.snapshot.revision, err: (err as Error).message }, 'could not install a snapshot; keeping the one in force');
      this.send({ type: 'installed', id, error: (err as Error).message });
      return;
    }
    this.dataPlane.install(snapshot);
    recordInstall(this.log, this.metrics, snapshot, installStart);
    this.listening ??= this.openListener();
    const error = await this.listening;
    const a = this.trafficAddr;
    this.send({ type: 'installed', id, error: error ?? undefined, address: a === null ? undefined : { address: a.address, port: a.port, family: a.family } });
  }

  /** Open the traffic listener (after the first snapshot is in force); the reason it could not, or null. */
  private async openListener(): Promise<string | null> {
    const { host, port } = parseListen(this.config.listen)!;
    collectStartupGarbage(this.log);
    try {
      this.trafficAddr = await this.dataPlane.listen(host, port);
      return null;
    } catch (err) {
      return `cannot open the traffic listener on ${this.config.listen}: ${(err as Error).message}`;
    }
  }

  private died(err: Error): void {
    if (this.startup !== null) {
      this.startup.reject(err);
      this.startup = null;
      return;
    }
    if (this.stopping) return;
    this.stopping = true;
    this.log.fatal({ event: 'crash', kind: 'controlPlaneThread', err: err.stack ?? err.message }, 'the control-plane thread died');
    if (this.onControlPlaneExit !== undefined) {
      this.onControlPlaneExit(err);
      return;
    }
    // Nobody decides (an embedding without a handler): fail closed. With no control plane, IP
    // group expiry and every later change would silently stop, so stop taking traffic instead.
    void this.dataPlane.close(this.config.drainTimeoutMs);
  }

  /**
   * Graceful stop: the traffic listener and (in its thread) the admin API stop accepting at once;
   * requests in flight finish for up to `drainTimeoutMs`; then the store closes and the thread ends.
   */
  async close(drainTimeoutMs: number = this.config.drainTimeoutMs): Promise<void> {
    const alive = !this.stopping;
    this.stopping = true;
    const controlDone = alive
      ? new Promise<string | null>((resolve) => {
          this.closed = resolve;
          this.send({ type: 'close', drainTimeoutMs });
        })
      : null;
    const [controlError, traffic] = await Promise.all([controlDone, this.dataPlane.server.listening ? this.dataPlane.close(drainTimeoutMs) : null]);
    await this.worker.terminate();
    if (traffic?.timedOut === true) {
      this.log.warn({ event: 'drain_timeout', drainTimeoutMs, destroyedConnections: traffic.destroyed }, 'drain timeout reached; destroyed the connections still open');
    }
    // As inline: a failed close (the store's) is the caller's to report, and the exit code says so.
    if (controlError !== null) throw new Error(`the control plane did not close cleanly: ${controlError}`);
    this.log.info({ event: 'stopped', drained: traffic === null || !traffic.timedOut }, 'ipgate stopped');
    this.log.flush();
  }
}
