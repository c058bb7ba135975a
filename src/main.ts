/**
 * The composition root: builds every long-lived component from config, wires them, and owns
 * their lifecycle. Nothing else creates loggers, metrics, listeners or pools.
 */
import type { AddressInfo } from 'node:net';
import { parseListen, type GatewayConfig } from './config/schema.js';
import type { DataPlane } from './dataplane/server.js';
import { dataPlaneFor } from './dataplane/from-config.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { readiness } from './observability/readiness.js';
import { compileSnapshot, type CompileResult } from './policy/compile.js';
import type { PolicyState, ProjectDef } from './policy/model.js';
import type { DestinationStream } from 'pino';
import { Authenticator } from './controlplane/auth.js';
import { ipGroupRoutes } from './controlplane/admin/routes-ipgroups.js';
import { policyRoutes } from './controlplane/admin/routes-policies.js';
import { resourceRoutes } from './controlplane/admin/routes-resources.js';
import { AdminServer } from './controlplane/admin/server.js';
import { drainAdmin } from './controlplane/admin/drain.js';
import { auditRoutes } from './controlplane/admin/routes-audit.js';
import { nodeRoutes } from './controlplane/admin/routes-nodes.js';
import { accessRoutes } from './controlplane/admin/routes-access.js';
import { portableRoutes } from './controlplane/admin/routes-portable.js';
import { openapiRoutes } from './controlplane/admin/routes-openapi.js';
import { acquireStoreLock, releaseStoreLock } from './controlplane/store/lock.js';
import { compileForEnvironment, explainRoutes } from './controlplane/admin/routes-explain.js';
import { AdminService } from './controlplane/admin/service.js';
import { FileStore } from './controlplane/store/file-store.js';
import type { Store } from './controlplane/store/store.js';
import type { StoreData } from './controlplane/store/state.js';
import { openClusterStore } from './controlplane/store/pg/open-store.js';
import { registerClusterStoreMetrics } from './controlplane/store/pg/metrics.js';
import { seedStore, stateForEnvironment } from './controlplane/store/to-state.js';
import type { Snapshot } from './policy/snapshot.js';
import { systemClock, type Clock } from './clock.js';
import { stateHash } from './policy/state-hash.js';
import { ClusterRegistry } from './cluster/metrics.js';
import { WorkerPool, workerCount } from './cluster/pool.js';
import type { TrafficPlane } from './cluster/traffic-plane.js';
import type { ThreadLink } from './threaded/link.js';
import { recordInstall } from './observability/reload-events.js';
import { collectStartupGarbage } from './observability/startup-gc.js';

export interface GatewayOptions {
  readonly config: GatewayConfig;
  /** Log destination (tests); stdout otherwise. */
  readonly logStream?: DestinationStream | undefined;
  /** Clock for IP group expiry (tests inject a manual one); the system clock otherwise. */
  readonly clock?: Clock | undefined;
  /** Collect Node process metrics (off in tests, which start many gateways in one process). */
  readonly processMetrics?: boolean | undefined;
  /** Set in a worker process (src/cluster/worker.ts): every log line then carries `worker: id`. */
  readonly workerId?: number | undefined;
  /**
   * Set in the control-plane thread (src/threaded/control-entry.ts): traffic is served by the
   * process's main thread, which this gateway sends every snapshot it enforces.
   */
  readonly link?: ThreadLink | undefined;
}

/** The YAML projects as a policy state. Group ids default to their names. */
export function configToState(config: GatewayConfig, revision = 1): PolicyState {
  const projects: ProjectDef[] = config.projects.map((p) => ({
    name: p.name,
    description: p.description,
    ipGroups: p.ipGroups.map((g) => ({ ...g, id: g.id ?? g.name })),
    apiProxies: p.apiProxies.map((a) => ({
      ...a,
      // The config schema has already required policy.name.
      policies: a.policies.map((b) => ({ operationMetadata: b.operationMetadata, policy: { ...b.policy, name: b.policy.name! } })),
    })),
  }));
  return { revision, projects };
}

export function compileConfig(config: GatewayConfig, state: PolicyState, now?: number): CompileResult {
  return compileSnapshot(state, {
    environment: config.environment,
    upstreamDefaults: config.upstreamDefaults,
    scriptTimeoutMs: config.scriptTimeoutMs,
    now,
  });
}

export class Gateway {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly dataPlane: DataPlane;
  private state: PolicyState;
  private expiryTimer: { cancel(): void } | null = null;
  private readonly clock: Clock;
  private trafficAddr: AddressInfo | null = null;
  private adminAddr: AddressInfo | null = null;
  private store: Store | null = null;
  /** The store state this node last applied (or failed to): a newer one is applied by applyFromStore. */
  private appliedData: Readonly<StoreData> | null = null;
  private lockedStore: string | null = null;
  private admin: AdminServer | null = null;
  /**
   * With `workers`, the worker processes that serve traffic; in the control-plane thread, the
   * process's main thread. This gateway then only feeds them.
   */
  private workers: TrafficPlane | null = null;
  /** Did the traffic servers confirm the last state sent to them? (Always, without workers or a thread.) */
  private served = true;

  private constructor(
    readonly config: GatewayConfig,
    private readonly opts: GatewayOptions,
  ) {
    const log = createLogger({ level: config.log.level, stream: opts.logStream });
    this.log = opts.workerId === undefined ? log : log.child({ worker: opts.workerId });
    this.metrics = new Metrics({ processMetrics: opts.processMetrics ?? true });
    this.dataPlane = dataPlaneFor(config, this.log, this.metrics);
    this.state = configToState(config);
    this.clock = opts.clock ?? systemClock;
  }

  /**
   * Open (or seed) the store, compile what this node's environment enforces, then open the
   * listeners. Throws, and so refuses to start, on a corrupt store or a compile error: starting
   * with no policies would be allow-all.
   */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(opts.config, opts);
    const config = opts.config;
    try {
      if (config.store.file !== null) {
        // One process per store file: the lock keeps `ipgate import` from writing under a running gateway.
        acquireStoreLock(config.store.file);
        gw.lockedStore = config.store.file;
        const nodeId = config.nodeId;
        const existing = await FileStore.open(config.store.file, { nodeId });
        const store = existing ?? (await FileStore.create(config.store.file, seedStore(configToState(config), config.environment), { nodeId }));
        gw.store = store;
        if (!store.data.environments.some((e) => e.name === config.environment)) {
          await store.update((d) => {
            d.environments.push({ name: config.environment, createdAt: new Date().toISOString() });
          });
        }
        gw.state = stateForEnvironment(store.data, config.environment);
        gw.log.info({ event: 'store_opened', store: store.description, seeded: existing === null, revision: store.data.revision, epoch: store.data.epoch }, 'store opened');
      } else if (config.store.postgres !== null) {
        // The cluster store: the newest state, read after LISTEN; then every write made elsewhere.
        const store = await openClusterStore(config, gw.log, () => seedStore(configToState(config), config.environment));
        gw.store = store;
        registerClusterStoreMetrics(gw.metrics.registry, store);
        if (!store.data.environments.some((e) => e.name === config.environment) && store.health().writable) {
          await store.update((d) => {
            if (!d.environments.some((e) => e.name === config.environment)) d.environments.push({ name: config.environment, createdAt: new Date().toISOString() });
          });
        }
        gw.state = stateForEnvironment(store.data, config.environment);
        gw.appliedData = store.data;
        store.onRemoteChange(() => void gw.applyFromStore());
        gw.log.info({ event: 'store_opened', store: store.description, revision: store.data.revision, epoch: store.data.epoch }, 'store opened');
      }
      const r = gw.apply(gw.state);
      if (!r.ok) {
        throw new Error('policy compile failed:\n' + r.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n'));
      }
      const { host, port } = parseListen(config.listen)!;
      if (opts.link !== undefined) {
        // Control-plane thread: the main thread enforces the snapshot, then opens the listener.
        gw.workers = opts.link;
        gw.trafficAddr = await opts.link.start(r.snapshot, gw.state);
      } else if (config.workers === null) {
        collectStartupGarbage(gw.log);
        gw.trafficAddr = await gw.dataPlane.listen(host, port);
      } else {
        // Primary of a cluster: the workers listen on the traffic port (node:cluster shares it).
        // This process keeps the store, the admin API, and the snapshot it validates and explains with.
        gw.workers = new WorkerPool({ size: workerCount(config.workers), config, log: gw.log, onChange: () => void gw.reportApplied() });
        gw.trafficAddr = await gw.workers.start(r.snapshot, gw.state);
      }
      await gw.reportApplied();
      await gw.startAdmin();
      gw.log.info(
        {
          event: 'started',
          listen: `${gw.trafficAddr.address}:${gw.trafficAddr.port}`,
          admin: gw.adminAddr === null ? null : `${gw.adminAddr.address}:${gw.adminAddr.port}`,
          environment: config.environment,
          store: gw.store?.description ?? null,
          workers: gw.workers instanceof WorkerPool ? gw.workers.liveCount : null,
          revision: gw.state.revision,
          stats: r.snapshot.stats,
        },
        'ipgate started',
      );
      return gw;
    } catch (err) {
      await gw.close().catch(() => undefined);
      throw err;
    }
  }

  private async startAdmin(): Promise<void> {
    const c = this.config.admin;
    const workers = this.workers;
    const auth = c.tokens.length > 0 || c.jwt !== null ? await Authenticator.create({ tokens: c.tokens, jwt: c.jwt }) : null;
    const service = new AdminService({
      store: this.store,
      environment: this.config.environment,
      compile: (state) => compileConfig(this.config, state, this.now()),
      enforce: (snapshot, state) => this.enforce(snapshot, state),
      current: () => this.dataPlane.snapshot,
      frontsAdmin: (origin) => this.frontsAdmin(origin),
      trust: this.dataPlane.trust,
    });
    const compile = (state: PolicyState) => compileConfig(this.config, state, this.now());
    const routes = [
      ...resourceRoutes(service, c.bodyLimitBytes),
      ...policyRoutes(service, c.bodyLimitBytes),
      ...ipGroupRoutes(service, c.bodyLimitBytes),
      ...auditRoutes(service),
      ...nodeRoutes(service),
      ...accessRoutes(service, c.bodyLimitBytes),
      ...portableRoutes(service, c.bodyLimitBytes),
      ...explainRoutes(service, { trust: this.dataPlane.trust, snapshot: () => this.dataPlane.snapshot, compile: compileForEnvironment(service, compile) }, c.bodyLimitBytes),
    ];
    routes.push(...openapiRoutes(() => routes));
    this.admin = new AdminServer({
      routes,
      auth,
      log: this.log,
      trust: this.dataPlane.trust,
      access: () => service.accessList(),
      metrics: workers === null ? this.metrics.registry : new ClusterRegistry([this.metrics.registry, workers.registry], () => workers.collect()),
      // With workers, traffic is served only while at least one of them is live.
      ready: readiness({ snapshotLoaded: () => this.dataPlane.snapshot !== null && (workers === null || workers.liveCount > 0), storeOpen: this.config.store.file === null ? null : () => this.store !== null }),
    });
    const { host, port } = parseListen(c.listen)!;
    this.adminAddr = await this.admin.listen(host, port);
  }

  /** Is `origin` this node's admin listener? A wildcard or loopback bind is reachable on any loopback name. */
  private frontsAdmin(origin: string): boolean {
    const a = this.adminAddr;
    if (a === null) return false;
    const u = new URL(origin);
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    if (port !== a.port) return false;
    const host = u.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const loopback = host === 'localhost' || host.startsWith('127.') || host === '::1';
    const wildcard = a.address === '0.0.0.0' || a.address === '::';
    return host === a.address || (loopback && (wildcard || a.address.startsWith('127.') || a.address === '::1'));
  }

  /** A worker process's gateway (src/cluster/worker.ts): nothing is opened; the worker installs compiled snapshots into its data plane and opens its traffic listener. */
  static forWorker(opts: GatewayOptions): Gateway {
    return new Gateway(opts.config, opts);
  }

  get adminAddress(): AddressInfo {
    return this.adminAddr!;
  }

  get trafficAddress(): AddressInfo {
    return this.trafficAddr!;
  }

  /**
   * Compile `state` and, only if that succeeds, swap it in. A failed compile leaves the running
   * snapshot untouched: a bad change never weakens enforcement.
   */
  apply(state: PolicyState): CompileResult {
    const r = compileConfig(this.config, state, this.now());
    if (!r.ok) {
      this.metrics.reloadFailed();
      this.opts.link?.reloadFailed();
      this.log.error({ event: 'compile_failed', revision: state.revision, issues: r.issues }, 'policy compile failed; keeping the last good snapshot');
      return r;
    }
    this.install(r.snapshot, state);
    return r;
  }

  /** Swap a compiled snapshot in (one assignment in the data plane). */
  install(snapshot: Snapshot, state: PolicyState): void {
    const installStart = performance.now();
    this.dataPlane.install(snapshot);
    this.state = state;
    this.scheduleExpiry(snapshot.nextExpiry);
    // In the control-plane thread, the traffic thread records the install that serves traffic.
    if (this.opts.link === undefined) recordInstall(this.log, this.metrics, snapshot, installStart);
  }

  /**
   * Enforce a committed state on this node, given its compiled snapshot, and record what this node
   * now enforces in the store (for deploymentResults and /apiops/nodes/).
   */
  async enforce(snapshot: Snapshot, state: PolicyState): Promise<{ success: boolean; message: string }> {
    const latest = this.store?.data;
    if (latest !== undefined && latest.revision !== state.revision) {
      // A newer write from another node arrived while this one finished (cluster store): enforce
      // the newest state, which includes this write, rather than swap an older one over it.
      // Success only if the traffic servers (workers, the traffic thread) confirmed it too.
      const served = await this.applyFromStore();
      return served && this.state.revision >= state.revision
        ? { success: true, message: `Deployment successful: revision ${this.state.revision}, which includes revision ${state.revision}, is enforced` }
        : { success: false, message: `revision ${latest.revision}, which includes revision ${state.revision}, failed here; revision ${this.state.revision} is still enforced` };
    }
    if (latest !== undefined) this.appliedData = latest;
    this.install(snapshot, state);
    if (this.workers !== null) {
      // Each worker compiles and swaps it in itself; success only once every one enforces it.
      const outcome = await this.workers.enforce(snapshot, state);
      this.served = outcome.success;
      await this.reportApplied(outcome.failed);
      return { success: outcome.success, message: outcome.message };
    }
    await this.reportApplied();
    return { success: true, message: `Deployment successful: revision ${state.revision} is enforced` };
  }

  /**
   * A write made on another node became visible (cluster store): compile what this node's
   * environment enforces at that revision, swap it in (in every worker too), and report it. A
   * compile failure keeps the last good snapshot and is reported as this node's failure of that
   * revision, with the compiler's message, so deploymentResults show FAILED and why. Resolves
   * with whether the traffic servers enforce what this node last applied.
   */
  private async applyFromStore(): Promise<boolean> {
    const data = this.store?.data;
    if (data === undefined || data === this.appliedData) return this.served;
    this.appliedData = data;
    const state = stateForEnvironment(data, this.config.environment);
    const r = this.apply(state);
    if (!r.ok) {
      await this.reportApplied({ revision: state.revision, error: 'compile failed: ' + r.issues.map((i) => `${i.path}: ${i.message}`).join('; ') });
      return false;
    }
    if (this.workers !== null) {
      const outcome = await this.workers.enforce(r.snapshot, state);
      this.served = outcome.success;
      await this.reportApplied(outcome.failed);
      return outcome.success;
    }
    await this.reportApplied();
    return true;
  }

  private async reportApplied(failed?: { revision: number; error: string }): Promise<void> {
    if (this.store === null) return;
    // With workers, the node enforces what its most stale live worker does; with none live, nothing.
    const w = this.workers === null ? null : this.workers.report();
    if (this.workers !== null && w === null) return;
    const applied = w ?? { revision: this.state.revision, snapshotHash: stateHash(this.state), failed: undefined };
    await this.store
      .reportApplied({ environment: this.config.environment, revision: applied.revision, snapshotHash: applied.snapshotHash, failed: failed ?? applied.failed })
      .catch((err: unknown) => this.log.warn({ event: 'status_report_failed', err: (err as Error).message }, 'could not record the enforced revision in the store'));
  }

  private now(): number {
    return this.clock.now();
  }

  /** Recompile when the earliest IP group entry expires, so it stops matching on time. */
  private scheduleExpiry(at: number): void {
    this.expiryTimer?.cancel();
    this.expiryTimer = null;
    if (!Number.isFinite(at)) return;
    this.expiryTimer = this.clock.at(at, () => {
      this.expiryTimer = null;
      const state = this.state;
      const r = this.apply(state);
      const workers = this.workers;
      // Traffic servers only install compiled snapshots: an expiry recompile is sent like any other.
      if (r.ok && workers !== null) {
        void workers.enforce(r.snapshot, state).then((o) => this.reportApplied(o.failed));
      }
    });
  }

  /**
   * Graceful stop (SIGTERM, SIGINT): both listeners stop accepting at once. The admin API refuses
   * further requests with 503 while the ones running finish; traffic requests in flight finish,
   * for up to `drainTimeoutMs`, after which their connections (and upgraded ones) are destroyed.
   * Then the upstream pools and the store close.
   */
  async close(drainTimeoutMs: number = this.config.drainTimeoutMs): Promise<void> {
    this.expiryTimer?.cancel();
    const [, traffic] = await Promise.all([
      this.admin !== null ? drainAdmin(this.admin.server, drainTimeoutMs) : null,
      this.dataPlane.server.listening ? this.dataPlane.close(drainTimeoutMs) : null,
      // Each worker drains its own connections, then exits.
      this.workers !== null ? this.workers.stop(drainTimeoutMs) : null,
    ]);
    if (traffic?.timedOut === true) {
      this.log.warn({ event: 'drain_timeout', drainTimeoutMs, destroyedConnections: traffic.destroyed }, 'drain timeout reached; destroyed the connections still open');
    }
    if (this.store !== null) await this.store.close();
    if (this.lockedStore !== null) releaseStoreLock(this.lockedStore);
    // In the control-plane thread, the traffic thread says when the process has stopped.
    if (this.opts.link === undefined) this.log.info({ event: 'stopped', drained: traffic === null || !traffic.timedOut }, 'ipgate stopped');
    this.log.flush();
  }
}
