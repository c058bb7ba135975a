/** The data plane a config describes: one per gateway, whichever thread serves the traffic. */
import proxyaddr from 'proxy-addr';
import type { GatewayConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { memoTrust } from './client-ip.js';
import { DataPlane } from './server.js';

export function dataPlaneFor(config: GatewayConfig, log: Logger, metrics: Metrics): DataPlane {
  return new DataPlane({
    trust: memoTrust(proxyaddr.compile(config.trustedProxies)),
    limits: config.limits,
    log,
    metrics,
    accessLog: config.log,
    tls: config.tls,
    proxyProtocol: config.proxyProtocol,
  });
}
