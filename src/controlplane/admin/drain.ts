/**
 * Shutdown of the admin listener. It stops taking requests at once: a write that arrives while
 * traffic drains could not be enforced by a node that is going away, so it is refused with 503
 * (in the admin envelope) instead of being half-applied. Requests already running, such as a
 * deployment in progress, finish and get their true answer.
 */
import type { Server } from 'node:http';
import { drainServer, type DrainResult } from '../../lifecycle/drain.js';
import { AdminError } from './errors.js';

export function drainAdmin(server: Server, timeoutMs: number): Promise<DrainResult> {
  const body = new AdminError('SERVICE_UNAVAILABLE', 'the gateway is shutting down').toBody();
  return drainServer(server, {
    timeoutMs,
    lateRequest: (_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    },
  });
}
