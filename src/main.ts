/**
 * The composition root: builds every long-lived component from config, wires them, and owns
 * their lifecycle. Nothing else creates loggers, metrics, listeners or pools.
 */
import type { AddressInfo } from 'node:net';
import proxyaddr from 'proxy-addr';
import { parseListen, type GatewayConfig } from './config/schema.js';
import { DataPlane } from './dataplane/server.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { compileSnapshot, type CompileResult } from './policy/compile.js';
import type { PolicyState, ProjectDef } from './policy/model.js';
import type { DestinationStream } from 'pino';
import { Authenticator } from './controlplane/auth.js';
import { ipGroupRoutes } from './controlplane/admin/routes-ipgroups.js';
import { policyRoutes } from './controlplane/admin/routes-policies.js';
import { resourceRoutes } from './controlplane/admin/routes-resources.js';
import { AdminServer } from './controlplane/admin/server.js';
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
import { seedStore, stateForEnvironment } from './controlplane/store/to-state.js';
import type { Snapshot } from './policy/snapshot.js';
import { systemClock, type Clock } from './clock.js';
import { stateHash } from './policy/state-hash.js';

export interface GatewayOptions {
  readonly config: GatewayConfig;
  /** Log destination (tests); stdout otherwise. */
  readonly logStream?: DestinationStream | undefined;
  /** Clock for IP group expiry (tests inject a manual one); the system clock otherwise. */
  readonly clock?: Clock | undefined;
  /** Collect Node process metrics (off in tests, which start many gateways in one process). */
  readonly processMetrics?: boolean | undefined;
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
  private lockedStore: string | null = null;
  private admin: AdminServer | null = null;

  private constructor(
    readonly config: GatewayConfig,
    private readonly opts: GatewayOptions,
  ) {
    this.log = createLogger({ level: config.log.level, stream: opts.logStream });
    this.metrics = new Metrics({ processMetrics: opts.processMetrics ?? true });
    this.dataPlane = new DataPlane({
      trust: proxyaddr.compile(config.trustedProxies),
      limits: config.limits,
      log: this.log,
      metrics: this.metrics,
    });
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
      }
      const r = gw.apply(gw.state);
      if (!r.ok) {
        throw new Error('policy compile failed:\n' + r.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n'));
      }
      await gw.reportApplied();
      const { host, port } = parseListen(config.listen)!;
      gw.trafficAddr = await gw.dataPlane.listen(host, port);
      await gw.startAdmin();
      gw.log.info(
        {
          event: 'started',
          listen: `${gw.trafficAddr.address}:${gw.trafficAddr.port}`,
          admin: gw.adminAddr === null ? null : `${gw.adminAddr.address}:${gw.adminAddr.port}`,
          environment: config.environment,
          store: config.store.file,
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
    this.admin = new AdminServer({ routes, auth, log: this.log, trust: this.dataPlane.trust, access: () => service.accessList() });
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
      this.log.error({ event: 'compile_failed', revision: state.revision, issues: r.issues }, 'policy compile failed; keeping the last good snapshot');
      return r;
    }
    this.install(r.snapshot, state);
    return r;
  }

  /** Swap a compiled snapshot in (one assignment in the data plane). */
  install(snapshot: Snapshot, state: PolicyState): void {
    this.dataPlane.install(snapshot);
    this.state = state;
    this.scheduleExpiry(snapshot.nextExpiry);
    this.log.info({ event: 'snapshot_installed', revision: state.revision, stats: snapshot.stats }, 'policy snapshot installed');
  }

  /**
   * Enforce a committed state on this node, given its compiled snapshot, and record what this node
   * now enforces in the store (for deploymentResults and /apiops/nodes/).
   */
  async enforce(snapshot: Snapshot, state: PolicyState): Promise<{ success: boolean; message: string }> {
    this.install(snapshot, state);
    await this.reportApplied();
    return { success: true, message: `Deployment successful: revision ${state.revision} is enforced` };
  }

  private async reportApplied(failed?: { revision: number; error: string }): Promise<void> {
    if (this.store === null) return;
    await this.store
      .reportApplied({ environment: this.config.environment, revision: this.state.revision, snapshotHash: stateHash(this.state), failed })
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
      this.apply(this.state);
    });
  }

  async close(): Promise<void> {
    this.expiryTimer?.cancel();
    if (this.admin !== null) await this.admin.close();
    if (this.dataPlane.server.listening) await this.dataPlane.close();
    if (this.store !== null) await this.store.close();
    if (this.lockedStore !== null) releaseStoreLock(this.lockedStore);
    this.log.info({ event: 'stopped' }, 'ipgate stopped');
    this.log.flush();
  }
}
