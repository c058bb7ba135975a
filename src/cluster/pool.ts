/**
 * The primary process's side of `workers: N`: it forks the worker processes that serve the traffic
 * port (node:cluster shares the port among them), feeds each the compiled snapshot in force, confirms
 * every deployment with all of them, replaces a worker that dies, and stops them on shutdown.
 *
 * A worker takes traffic only once it enforces a state: it opens its listener after its first
 * snapshot is in force (worker.ts), and the cluster hands connections only to workers that listen.
 * So a new or replacement worker never answers NOT_READY, and never enforces less than the state
 * it was started with.
 */
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, Registry } from 'prom-client';
import type { GatewayConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { PolicyState } from '../policy/model.js';
import { isFromWorker, type Applied, type FromWorker, type ToWorker } from './protocol.js';
import type { PoolOutcome, TrafficPlane } from './traffic-plane.js';
import type { Snapshot } from '../policy/snapshot.js';
import { stateHash } from '../policy/state-hash.js';
import { snapshotToPortableWire, type SnapshotWire } from '../policy/wire.js';

export type { PoolOutcome };

/**
 * How long every worker has to confirm a snapshot (receiving, rebuilding and swapping it) before a
 * deployment, or the startup, reports failure: generous, for a 1,000,000-entry snapshot (tens of
 * MB over the IPC channel) reaching N workers on busy cores.
 */
export const APPLY_TIMEOUT_MS = 60_000;
/** A scrape skips a worker that has not answered by then (one busy, or just killed). */
const COLLECT_TIMEOUT_MS = 2_000;
/** Restart delays for a worker that keeps dying young: 100 ms, doubling, at most 30 s. */
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 30_000;
/** A worker that ran this long before dying is replaced at once, and its slot's backoff resets. */
const HEALTHY_AFTER_MS = 30_000;
/** After the drain timeout, how long a stopping worker may take to exit before it is killed. */
const EXIT_GRACE_MS = 5_000;

/** `workers: auto` is one worker per CPU the process may use. */
export function workerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? availableParallelism() : setting;
}


interface Member {
  readonly worker: Worker;
  readonly id: number;
  readonly pid: number;
  readonly slot: number;
  readonly forkedAt: number;
  /** `init` was sent: the worker has a state and will answer every later one. */
  initSent: boolean;
  /** It enforces a state and listens: it may be sent traffic. */
  live: boolean;
  applied: Applied | null;
  failed: { readonly revision: number; readonly error: string } | null;
}

interface Deployment {
  readonly revision: number;
  /** Workers that had a state when this one was sent and have not answered for it yet. */
  readonly waiting: Set<Member>;
  readonly failures: string[];
  confirmed: number;
  readonly timer: NodeJS.Timeout;
  readonly resolve: (o: PoolOutcome) => void;
}

interface Collection {
  readonly waiting: Set<Member>;
  readonly results: unknown[][];
  readonly timer: NodeJS.Timeout;
  readonly resolve: (r: unknown[][]) => void;
}

export interface WorkerPoolOptions {
  readonly size: number;
  readonly config: GatewayConfig;
  readonly log: Logger;
  /** What this node enforces changed outside a deployment (a replacement went live, a late answer). */
  readonly onChange: () => void;
}

export class WorkerPool implements TrafficPlane {
  /** The primary's own metrics about its workers; merged into /metrics (metrics.ts). */
  readonly registry = new Registry();
  private readonly members = new Map<number, Member>();
  private readonly deployments = new Set<Deployment>();
  private readonly collections = new Map<number, Collection>();
  private readonly restartTimers = new Set<NodeJS.Timeout>();
  /** Per slot: consecutive deaths of young workers, for the backoff. */
  private readonly youngDeaths: number[];
  private readonly workerConfig: GatewayConfig;
  private readonly restarts: Counter;
  /** The snapshot in force (in portable form) and what it enforces: sent to every new worker. */
  private current: { snapshot: SnapshotWire; applied: Applied } | null = null;
  private nextCollection = 0;
  private startup: { resolve: (a: AddressInfo) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;
  private address: AddressInfo | null = null;
  private stopping = false;
  private stopped: (() => void) | null = null;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.youngDeaths = new Array<number>(opts.size).fill(0);
    // Workers need the gateway settings, not the config's projects: their policy comes compiled.
    this.workerConfig = { ...opts.config, projects: [] };
    const registers = [this.registry];
    this.restarts = new Counter({ name: 'ipgate_worker_restarts_total', help: 'Worker processes forked to replace one that exited', registers });
    const members = this.members;
    new Gauge({
      name: 'ipgate_workers',
      help: 'Worker processes that enforce a snapshot and take traffic',
      registers,
      collect() {
        let n = 0;
        for (const m of members.values()) if (m.live) n++;
        this.set(n);
      },
    });
    // Workers run their own entry point, which takes its config from `init` rather than argv.
    // "advanced" serialization: compiled snapshots carry typed arrays, which JSON cannot.
    cluster.setupPrimary({ exec: fileURLToPath(new URL('./worker-entry.js', import.meta.url)), args: [], serialization: 'advanced' });
  }

  /**
   * Fork every worker with `state` and resolve, with the shared traffic address, once all of them
   * enforce it and listen. Rejects if one exits first (a port in use, a bad certificate: its log
   * says which) or does not get there within APPLY_TIMEOUT_MS.
   */
  start(snapshot: Snapshot, state: PolicyState): Promise<AddressInfo> {
    this.current = portable(snapshot, state);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.startFailed(new Error(`the workers did not all start within ${APPLY_TIMEOUT_MS / 1000} s`)), APPLY_TIMEOUT_MS);
      this.startup = { resolve, reject, timer };
      for (let slot = 0; slot < this.opts.size; slot++) this.fork(slot);
    });
  }

  /** Workers taking traffic now. */
  get liveCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.live) n++;
    return n;
  }

  /**
   * What this node enforces, for the store: the lowest revision among the live workers (a node is
   * only as current as its most stale worker) with that worker's state hash, and a revision some
   * live worker could not apply, if any. null when no worker is live.
   */
  report(): { revision: number; snapshotHash: string; failed: { revision: number; error: string } | undefined } | null {
    let low: Applied | null = null;
    let failed: { revision: number; error: string } | undefined;
    for (const m of this.members.values()) {
      if (!m.live || m.applied === null) continue;
      if (low === null || m.applied.revision < low.revision) low = m.applied;
      if (m.failed !== null) failed ??= { revision: m.failed.revision, error: `${describe(m)}: ${m.failed.error}` };
    }
    return low === null ? null : { revision: low.revision, snapshotHash: low.hash, failed };
  }

  /**
   * Send `state` to every worker and resolve once each has answered for it: success only when
   * every one enforces it. A worker that exits meanwhile is not waited for (its replacement starts
   * with `state`, and takes traffic only once it enforces it); one that neither answers nor exits
   * within APPLY_TIMEOUT_MS makes the deployment fail.
   */
  enforce(snapshot: Snapshot, state: PolicyState): Promise<PoolOutcome> {
    const current = portable(snapshot, state);
    this.current = current;
    const waiting = new Set<Member>();
    for (const m of this.members.values()) {
      if (m.initSent && this.send(m, { type: 'ipgate:snapshot', ...current })) waiting.add(m);
    }
    return new Promise((resolve) => {
      const d: Deployment = {
        revision: state.revision,
        waiting,
        failures: [],
        confirmed: 0,
        resolve,
        timer: setTimeout(() => {
          for (const m of d.waiting) d.failures.push(`${describe(m)}: did not confirm within ${APPLY_TIMEOUT_MS / 1000} s`);
          d.waiting.clear();
          this.settle(d);
        }, APPLY_TIMEOUT_MS),
      };
      this.deployments.add(d);
      this.progress(d);
    });
  }

  /**
   * Every live worker's registry (getMetricsAsJSON), for an aggregated scrape. A worker that does
   * not answer within COLLECT_TIMEOUT_MS is left out rather than failing the scrape.
   */
  collect(): Promise<unknown[][]> {
    const id = this.nextCollection++;
    const waiting = new Set<Member>();
    for (const m of this.members.values()) if (m.live && this.send(m, { type: 'ipgate:collect', id })) waiting.add(m);
    return new Promise((resolve) => {
      const c: Collection = { waiting, results: [], resolve, timer: setTimeout(() => this.collected(id), COLLECT_TIMEOUT_MS) };
      this.collections.set(id, c);
      if (waiting.size === 0) this.collected(id);
    });
  }

  /**
   * Graceful stop: SIGTERM to every worker, each of which drains its own connections (as a single
   * process does) and exits; resolves when all have exited. A worker still running
   * `drainTimeoutMs` + 5 s later is killed.
   */
  stop(drainTimeoutMs: number): Promise<void> {
    this.stopping = true;
    for (const t of this.restartTimers) clearTimeout(t);
    this.restartTimers.clear();
    if (this.startup !== null) this.startFailed(new Error('stopped while the workers were starting'));
    if (this.members.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => {
        for (const m of this.members.values()) {
          this.opts.log.warn({ event: 'worker_kill', workerId: m.id, workerPid: m.pid }, 'worker still running after the drain timeout; killing it');
          m.worker.process.kill('SIGKILL');
        }
      }, drainTimeoutMs + EXIT_GRACE_MS);
      this.stopped = () => {
        clearTimeout(kill);
        resolve();
      };
      for (const m of this.members.values()) m.worker.process.kill('SIGTERM');
    });
  }

  // ---- workers ---------------------------------------------------------------------------------

  private fork(slot: number): void {
    const worker = cluster.fork();
    const m: Member = { worker, id: worker.id, pid: worker.process.pid ?? 0, slot, forkedAt: Date.now(), initSent: false, live: false, applied: null, failed: null };
    this.members.set(m.id, m);
    worker.on('message', (msg: unknown) => {
      if (isFromWorker(msg)) this.onMessage(m, msg);
    });
    // A worker whose IPC channel broke is about to exit; 'exit' does the bookkeeping.
    worker.on('error', (err: Error) => this.opts.log.warn({ event: 'worker_ipc_error', workerId: m.id, workerPid: m.pid, err: err.message }, 'worker IPC error'));
    worker.on('exit', (code: number | null, signal: string | null) => this.onExit(m, code, signal));
  }

  private onMessage(m: Member, msg: FromWorker): void {
    switch (msg.type) {
      case 'ipgate:hello':
        // this.current is set before the first fork.
        m.initSent = this.send(m, { type: 'ipgate:init', config: this.workerConfig, ...this.current! });
        return;
      case 'ipgate:ready': {
        m.live = true;
        m.applied = msg.applied;
        this.address ??= { address: msg.address.address, port: msg.address.port, family: msg.address.family };
        this.opts.log.info({ event: 'worker_ready', workerId: m.id, workerPid: m.pid, revision: msg.applied.revision }, 'worker is enforcing and takes traffic');
        this.afterChange();
        if (this.startup !== null && this.liveCount === this.opts.size) {
          const s = this.startup;
          this.startup = null;
          clearTimeout(s.timer);
          s.resolve(this.address);
        }
        return;
      }
      case 'ipgate:applied':
        m.applied = msg.applied;
        m.failed = msg.failed ?? null;
        if (msg.failed !== undefined) {
          this.opts.log.error(
            { event: 'worker_apply_failed', workerId: m.id, workerPid: m.pid, revision: msg.failed.revision, enforced: msg.applied.revision, err: msg.failed.error },
            'a worker could not apply a revision; it keeps its last good snapshot',
          );
        }
        this.afterChange();
        return;
      case 'ipgate:metrics': {
        const c = this.collections.get(msg.id);
        if (c === undefined || !c.waiting.delete(m)) return;
        c.results.push(msg.metrics);
        if (c.waiting.size === 0) this.collected(msg.id);
        return;
      }
    }
  }

  private onExit(m: Member, code: number | null, signal: string | null): void {
    this.members.delete(m.id);
    for (const d of this.deployments) {
      if (d.waiting.delete(m)) this.progress(d);
    }
    for (const [id, c] of this.collections) {
      if (c.waiting.delete(m) && c.waiting.size === 0) this.collected(id);
    }
    if (this.stopping) {
      this.opts.log.info({ event: 'worker_exited', workerId: m.id, workerPid: m.pid, code, signal }, 'worker exited');
      if (this.members.size === 0) this.stopped?.();
      return;
    }
    this.opts.log.error({ event: 'worker_exited', workerId: m.id, workerPid: m.pid, code, signal, live: m.live }, 'worker exited unexpectedly');
    if (this.startup !== null) {
      this.startFailed(new Error(`worker ${m.id} (pid ${m.pid}) exited (${signal ?? `code ${code}`}) before it was ready; its log says why`));
      return;
    }
    // Young deaths in a row back off, so a worker that cannot start does not spin the CPU.
    const young = Date.now() - m.forkedAt < HEALTHY_AFTER_MS;
    const deaths = (this.youngDeaths[m.slot] = young ? this.youngDeaths[m.slot]! + 1 : 0);
    const delayMs = deaths <= 1 ? 0 : Math.min(RESTART_MIN_MS * 2 ** (deaths - 2), RESTART_MAX_MS);
    this.opts.log.info({ event: 'worker_restart', slot: m.slot, delayMs }, 'forking a replacement worker');
    const t = setTimeout(() => {
      this.restartTimers.delete(t);
      if (this.stopping) return;
      this.restarts.inc();
      this.fork(m.slot);
    }, delayMs);
    this.restartTimers.add(t);
    this.afterChange();
  }

  private startFailed(err: Error): void {
    const s = this.startup;
    if (s === null) return;
    this.startup = null;
    clearTimeout(s.timer);
    s.reject(err);
  }

  /** Re-check deployments after an answer; outside a deployment, tell the node its state moved. */
  private afterChange(): void {
    for (const d of this.deployments) this.progress(d);
    if (this.deployments.size === 0 && this.startup === null) this.opts.onChange();
  }

  private progress(d: Deployment): void {
    for (const m of d.waiting) {
      if (m.applied !== null && m.applied.revision >= d.revision) {
        d.waiting.delete(m);
        d.confirmed++;
      } else if (m.failed !== null && m.failed.revision >= d.revision) {
        d.waiting.delete(m);
        d.failures.push(`${describe(m)}: ${m.failed.error}`);
      }
    }
    if (d.waiting.size === 0) this.settle(d);
  }

  private settle(d: Deployment): void {
    if (!this.deployments.delete(d)) return;
    clearTimeout(d.timer);
    if (d.failures.length > 0) {
      const error = `revision ${d.revision} is not enforced by every worker: ${d.failures.join('; ')}`;
      d.resolve({ success: false, message: error, failed: { revision: d.revision, error } });
    } else if (d.confirmed === 0) {
      // Nobody enforces it yet; replacements start with it, but no worker has confirmed anything.
      const error = `no worker confirmed revision ${d.revision}: every worker exited during the deployment`;
      d.resolve({ success: false, message: error, failed: { revision: d.revision, error } });
    } else {
      d.resolve({ success: true, message: `Deployment successful: revision ${d.revision} is enforced by every worker (${d.confirmed})` });
    }
  }

  private collected(id: number): void {
    const c = this.collections.get(id);
    if (c === undefined) return;
    this.collections.delete(id);
    clearTimeout(c.timer);
    c.resolve(c.results);
  }

  /** false when the worker's channel is already closed (it is exiting). */
  private send(m: Member, msg: ToWorker): boolean {
    if (!m.worker.isConnected()) return false;
    try {
      m.worker.send(msg);
      return true;
    } catch {
      return false;
    }
  }
}

function describe(m: Member): string {
  return `worker ${m.id} (pid ${m.pid})`;
}

/**
 * A compiled snapshot as workers receive it. The primary compiles every state once (it must, to
 * validate the write); the workers only rebuild and swap it in, so a large write never stalls
 * their traffic for a compile.
 */
function portable(snapshot: Snapshot, state: PolicyState): { snapshot: SnapshotWire; applied: Applied } {
  return { snapshot: snapshotToPortableWire(snapshot), applied: { revision: state.revision, hash: stateHash(state) } };
}
