/**
 * WebSocket forwarding. Only a GET with `Upgrade: websocket` is tunnelled (RFC 6455 §4.1): Node
 * hands this module every request that asks for an upgrade, with any method and any protocol, and
 * a policy scoped to GET must not be sidestepped by sending the same upgrade as a POST. The
 * REQUEST pipeline runs first, exactly as for a plain request; only then is the upstream handshake
 * made through undici's upgrade(). The RESPONSE pipeline runs on the upstream's 101 before a byte
 * of it reaches the client, and only then are the two sockets spliced together. An upgrade has no
 * body, so a BODY client-IP source is undeterminable here and fails closed.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Pool } from 'undici';
import { evaluatePipeline, type Rejection } from './decide.js';
import { upstreamRequestHeaders } from './headers.js';
import { RequestContext } from './request-context.js';
import type { DataPlane, RoutedRequest } from './server.js';
import { classifyUpstreamError } from './upstream-errors.js';
import { upstreamPath } from './upstream-path.js';

/** Why this upgrade request is not forwarded at all, or null for a GET WebSocket handshake. */
export function upgradeRefusal(req: IncomingMessage): string | null {
  const protocol = req.headers.upgrade;
  if (typeof protocol !== 'string' || protocol.trim().toLowerCase() !== 'websocket') {
    return `Upgrade to ${JSON.stringify(protocol ?? '')} is not forwarded: only WebSocket is`;
  }
  if (req.method !== 'GET') return `A WebSocket upgrade must be a GET request, not ${req.method ?? '(none)'}`;
  return null;
}

export function handleUpgrade(dp: DataPlane, route: RoutedRequest, pool: Pool, req: IncomingMessage, socket: Socket, head: Buffer, correlationId: string): void {
  const startedAt = performance.now();
  const proxy = route.proxy;
  const ctx = new RequestContext(dp, req, correlationId, route.path, route.relPath, route.search);
  socket.on('error', () => socket.destroy());

  const deny = (r: Rejection) => {
    dp.writeRawFault(socket, correlationId, r.code, r.status, r.faultString);
    dp.finished(ctx, proxy, r.status, 'denied', r, null, req, startedAt);
  };
  if (proxy.request !== null) {
    const r = evaluatePipeline(proxy.request, ctx);
    if (r !== null) {
      deny(r);
      return;
    }
  }

  pool
    .upgrade({
      path: upstreamPath(proxy, route.path, route.relPath, route.search),
      method: 'GET',
      protocol: 'websocket',
      headers: upstreamRequestHeaders(req, {
        peerAddress: req.socket.remoteAddress ?? '',
        peerTrusted: ctx.peerTrusted,
        encrypted: (req.socket as { encrypted?: boolean }).encrypted === true,
        correlationId,
      }),
    })
    .then(
      ({ headers, socket: upstream }) => {
        if (socket.destroyed) {
          upstream.destroy();
          return;
        }
        if (proxy.response !== null) {
          const r = evaluatePipeline(proxy.response, ctx);
          if (r !== null) {
            // The upstream accepted, but this client may not see a byte of the connection.
            upstream.destroy();
            deny(r);
            return;
          }
        }
        let text = 'HTTP/1.1 101 Switching Protocols\r\n';
        for (const name in headers) {
          const v = headers[name];
          if (v === undefined) continue;
          for (const one of Array.isArray(v) ? v : [v]) text += `${name}: ${one}\r\n`;
        }
        socket.write(text + `x-correlation-id: ${correlationId}\r\n\r\n`);
        if (head.length > 0) upstream.write(head);
        upstream.on('error', () => socket.destroy());
        socket.on('close', () => upstream.destroy());
        upstream.on('close', () => socket.destroy());
        upstream.pipe(socket);
        socket.pipe(upstream);
        dp.finished(ctx, proxy, 101, 'allowed', null, null, req, startedAt);
      },
      (err: unknown) => {
        const kind = classifyUpstreamError(err);
        if (kind === 'aborted') {
          socket.destroy();
          return;
        }
        dp.upstreamError(proxy, kind, err);
        if (proxy.error !== null) {
          const r = evaluatePipeline(proxy.error, ctx);
          if (r !== null) {
            deny(r);
            return;
          }
        }
        const timeout = kind === 'timeout';
        dp.writeRawFault(
          socket,
          correlationId,
          timeout ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNAVAILABLE',
          timeout ? 504 : 502,
          timeout ? `Upstream ${proxy.name} did not answer in time` : `Upstream ${proxy.name} refused the upgrade or is unavailable`,
        );
      },
    )
    // A bug in either callback would otherwise be an unhandled rejection, which ends the process.
    .catch((err: unknown) => dp.internalSocketError(socket, correlationId, err));
}
