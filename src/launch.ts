/**
 * Which gateway a config starts: with `controlPlane: thread` (the default) and no `workers`, the
 * traffic thread of threaded/host.ts with the control plane in a thread of its own; otherwise the
 * single-thread (or cluster primary) Gateway of main.ts.
 */
import type { AddressInfo } from 'node:net';
import type { DestinationStream } from 'pino';
import type { Clock } from './clock.js';
import type { GatewayConfig } from './config/schema.js';
import type { DataPlane } from './dataplane/server.js';
import { Gateway } from './main.js';
import type { Logger } from './observability/logger.js';
import type { Metrics } from './observability/metrics.js';
import { ThreadedGateway } from './threaded/host.js';

/** What every running gateway offers its caller (the CLI, tests). */
export interface RunningGateway {
  readonly config: GatewayConfig;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly dataPlane: DataPlane;
  readonly trafficAddress: AddressInfo;
  readonly adminAddress: AddressInfo;
  close(drainTimeoutMs?: number): Promise<void>;
}

export interface LaunchOptions {
  readonly config: GatewayConfig;
  readonly logStream?: DestinationStream | undefined;
  /** A clock for IP group expiry (tests): needs `controlPlane: inline`, as a clock cannot cross threads. */
  readonly clock?: Clock | undefined;
  readonly processMetrics?: boolean | undefined;
  /** With the control plane in a thread: that thread died (it has been logged). */
  readonly onControlPlaneExit?: ((err: Error) => void) | undefined;
}

export function launchGateway(opts: LaunchOptions): Promise<RunningGateway> {
  const c = opts.config;
  if (c.controlPlane === 'thread' && c.workers === null) {
    if (opts.clock !== undefined) throw new Error('a clock can be injected only with controlPlane: inline');
    return ThreadedGateway.start(opts);
  }
  return Gateway.start(opts);
}
