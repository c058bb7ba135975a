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

export interface GatewayOptions {
  readonly config: GatewayConfig;
  /** Log destination (tests); stdout otherwise. */
  readonly logStream?: DestinationStream | undefined;
  /** Clock for IP group expiry (tests). */
  readonly now?: (() => number) | undefined;
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
  private expiryTimer: NodeJS.Timeout | null = null;
  private trafficAddr: AddressInfo | null = null;

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
  }

  /** Compile the config's policies, then open the traffic listener. Throws on a compile error. */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(opts.config, opts);
    const r = gw.apply(gw.state);
    if (!r.ok) {
      throw new Error('policy compile failed:\n' + r.issues.map((i) => `  ${i.path}: ${i.message}`).join('\n'));
    }
    const { host, port } = parseListen(opts.config.listen)!;
    gw.trafficAddr = await gw.dataPlane.listen(host, port);
    gw.log.info(
      { event: 'started', listen: `${gw.trafficAddr.address}:${gw.trafficAddr.port}`, environment: opts.config.environment, revision: gw.state.revision, stats: r.snapshot.stats },
      'ipgate started',
    );
    return gw;
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
    this.dataPlane.install(r.snapshot);
    this.state = state;
    this.scheduleExpiry(r.snapshot.nextExpiry);
    this.log.info({ event: 'snapshot_installed', revision: state.revision, stats: r.snapshot.stats }, 'policy snapshot installed');
    return r;
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** Recompile when the earliest IP group entry expires, so it stops matching on time. */
  private scheduleExpiry(at: number): void {
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    if (!Number.isFinite(at)) return;
    const delay = Math.min(Math.max(at - this.now(), 0), 2 ** 31 - 1);
    this.expiryTimer = setTimeout(() => this.apply(this.state), delay);
    this.expiryTimer.unref();
  }

  async close(): Promise<void> {
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    await this.dataPlane.close();
    this.log.info({ event: 'stopped' }, 'ipgate stopped');
    this.log.flush();
  }
}
