/**
 * The control-plane thread's side of `controlPlane: thread`: the Gateway running in this thread
 * serves no traffic; it sends every snapshot it enforces to the traffic thread (host.ts) and waits
 * for the swap, exactly as it waits for worker processes with `workers: N` (the same TrafficPlane).
 */
import type { AddressInfo } from 'node:net';
import { getHeapStatistics } from 'node:v8';
import type { MessagePort } from 'node:worker_threads';
import { Gauge, Registry } from 'prom-client';
import type { PoolOutcome, TrafficPlane } from '../cluster/traffic-plane.js';
import type { PolicyState } from '../policy/model.js';
import type { Snapshot } from '../policy/snapshot.js';
import { stateHash } from '../policy/state-hash.js';
import { snapshotToWire } from '../policy/wire.js';
import type { FromControl, ToControl } from './protocol.js';

/** A scrape goes on without the traffic thread's series if it has not answered by then. */
const COLLECT_TIMEOUT_MS = 2_000;

interface Waiter<T> {
  readonly resolve: (v: T) => void;
}

export class ThreadLink implements TrafficPlane {
  /**
   * This thread's own V8 heap; the traffic thread's registry comes through collect(). Node's
   * `nodejs_*` series describe the main thread's heap only, and with large lists this thread's
   * (the store and the compiles) is the larger one.
   */
  readonly registry = new Registry();
  private nextId = 0;
  private readonly installs = new Map<number, Waiter<Extract<ToControl, { type: 'installed' }>>>();
  private readonly scrapes = new Map<number, Waiter<unknown[][]>>();
  private applied: { revision: number; snapshotHash: string } | null = null;
  /** The id of the install `applied` describes: answers may come out of order, the newest install wins. */
  private appliedId = -1;
  private listening = false;

  constructor(private readonly port: MessagePort) {
    port.on('message', (m: ToControl) => this.onMessage(m));
    const heap = (name: string, help: string, read: (h: ReturnType<typeof getHeapStatistics>) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        // Read when scraped; getHeapStatistics() describes the calling thread's isolate.
        collect() {
          this.set(read(getHeapStatistics()));
        },
      });
    };
    heap('ipgate_control_plane_heap_used_bytes', "Bytes of the control-plane thread's V8 heap in use", (h) => h.used_heap_size);
    heap('ipgate_control_plane_heap_total_bytes', "Bytes the control-plane thread's V8 heap has reserved", (h) => h.total_heap_size);
  }

  send(m: FromControl): void {
    this.port.postMessage(m);
  }

  /** A log destination that hands each line to the traffic thread's destination. */
  readonly logStream = { write: (chunk: string): void => this.send({ type: 'log', chunk }) };

  private onMessage(m: ToControl): void {
    if (m.type === 'installed') {
      const w = this.installs.get(m.id);
      this.installs.delete(m.id);
      w?.resolve(m);
    } else if (m.type === 'metrics') {
      const w = this.scrapes.get(m.id);
      this.scrapes.delete(m.id);
      w?.resolve([m.metrics]);
    }
  }

  /** Record what the traffic thread enforces, unless a newer install was confirmed already. */
  private confirmed(id: number, state: PolicyState): void {
    if (id < this.appliedId) return;
    this.appliedId = id;
    this.applied = { revision: state.revision, snapshotHash: stateHash(state) };
  }

  private install(snapshot: Snapshot): Promise<Extract<ToControl, { type: 'installed' }>> {
    const id = this.nextId++;
    // Serialising here, in this thread, is the point: the traffic thread only deserialises a few
    // objects and shared buffers.
    const wire = snapshotToWire(snapshot);
    return new Promise((resolve) => {
      this.installs.set(id, { resolve });
      this.send({ type: 'install', id, snapshot: wire });
    });
  }

  async start(snapshot: Snapshot, state: PolicyState): Promise<AddressInfo> {
    const r = await this.install(snapshot);
    if (r.error !== undefined || r.address === undefined) throw new Error(r.error ?? 'the traffic listener did not open');
    this.confirmed(r.id, state);
    this.listening = true;
    return { address: r.address.address, port: r.address.port, family: r.address.family };
  }

  async enforce(snapshot: Snapshot, state: PolicyState): Promise<PoolOutcome> {
    const r = await this.install(snapshot);
    if (r.error !== undefined) {
      const failed = { revision: state.revision, error: `traffic thread: ${r.error}` };
      return { success: false, message: `revision ${state.revision} was not enforced: ${failed.error}`, failed };
    }
    this.confirmed(r.id, state);
    return { success: true, message: `Deployment successful: revision ${state.revision} is enforced` };
  }

  /** A compile failed in this thread; the traffic thread keeps its snapshot and counts the failure. */
  reloadFailed(): void {
    this.send({ type: 'reload-failed' });
  }

  report(): { revision: number; snapshotHash: string; failed: undefined } | null {
    return this.applied === null ? null : { ...this.applied, failed: undefined };
  }

  get liveCount(): number {
    return this.listening ? 1 : 0;
  }

  collect(): Promise<unknown[][]> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.scrapes.delete(id);
        resolve([]);
      }, COLLECT_TIMEOUT_MS);
      this.scrapes.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
      });
      this.send({ type: 'collect', id });
    });
  }

  /** The traffic thread drains its own listener (host.ts); nothing to stop from here. */
  async stop(): Promise<void> {}
}
