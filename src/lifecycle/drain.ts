/**
 * Graceful drain of an HTTP listener, for SIGTERM/SIGINT:
 *
 * 1. stop accepting connections, and close the idle keep-alive ones;
 * 2. let every request already accepted finish, and tell its client the connection closes after
 *    it (`Connection: close`, RFC 9112 §9.6), so no client sends another request on a connection
 *    that is about to go away;
 * 3. close each connection as soon as it is idle;
 * 4. at the deadline, destroy whatever is left: upgraded (WebSocket) connections, which never end
 *    by themselves, and requests slower than the deadline.
 *
 * Node's own server.close() does only step 1: an in-flight response still says `keep-alive`, and
 * its connection then lingers for keepAliveTimeout, free to carry new requests.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';

export interface DrainOptions {
  /** Time allowed for in-flight requests; 0 destroys every connection at once. */
  readonly timeoutMs: number;
  /** The server's sockets; without a tracker, upgraded connections are not destroyed at the deadline. */
  readonly tracker?: ConnectionTracker | undefined;
  /**
   * Answers requests that arrive on an already-open connection after the drain began. Absent: they
   * are served as usual (a request that reached us is never dropped), with `Connection: close`.
   */
  readonly lateRequest?: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
}

export interface DrainResult {
  /** true when connections were still open at the deadline and were destroyed. */
  readonly timedOut: boolean;
  /** How many connections were destroyed at the deadline. */
  readonly destroyed: number;
}

/** How often, during a drain only, connections whose response had already started are checked for idleness. */
const IDLE_SWEEP_MS = 50;

/**
 * The server's open sockets. Created with the server, so a drain also knows connections accepted
 * long before it began. One listener per connection; nothing per request.
 */
export class ConnectionTracker {
  /** The sockets HTTP is spoken on: TCP sockets, or TLS sockets for an HTTPS server. */
  readonly sockets = new Set<Socket>();

  constructor(server: Server) {
    const track = (socket: Socket): void => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    };
    // Over TLS the HTTP parser runs on the TLS socket, which 'secureConnection' hands out.
    server.on(server instanceof TlsServer ? 'secureConnection' : 'connection', track);
  }
}

/**
 * The response a socket is currently answering, if any. Node keeps it as `_httpMessage` (null
 * between requests); there is no public accessor, and the lifecycle test fails if that changes.
 */
function currentResponse(socket: Socket): ServerResponse | null {
  return (socket as { _httpMessage?: ServerResponse | null })._httpMessage ?? null;
}

function markClose(_req: IncomingMessage, res: ServerResponse): void {
  res.shouldKeepAlive = false;
}

/** Drain `server` (see the file comment). Resolves when every connection is gone. */
export function drainServer(server: Server, opts: DrainOptions): Promise<DrainResult> {
  return new Promise((resolve) => {
    let settled = false;
    let sweep: NodeJS.Timeout | null = null;
    let deadline: NodeJS.Timeout | null = null;
    const settle = (r: DrainResult) => {
      if (settled) return;
      settled = true;
      if (sweep !== null) clearInterval(sweep);
      if (deadline !== null) clearTimeout(deadline);
      resolve(r);
    };

    if (opts.lateRequest !== undefined) {
      server.removeAllListeners('request');
      server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        res.shouldKeepAlive = false;
        opts.lateRequest!(req, res);
      });
    } else {
      server.prependListener('request', markClose);
    }
    if (opts.tracker !== undefined) {
      for (const socket of opts.tracker.sockets) {
        const res = currentResponse(socket);
        if (res !== null && !res.headersSent) res.shouldKeepAlive = false;
      }
    }

    if (!server.listening) {
      // Nothing to stop; the caller drains a listener it started.
      settle({ timedOut: false, destroyed: 0 });
      return;
    }
    // Stops accepting and (Node >= 19) closes idle connections; the callback runs once the last
    // connection has closed.
    server.close(() => settle({ timedOut: false, destroyed: 0 }));
    server.closeIdleConnections();
    // A response whose headers had already gone out said keep-alive: close its connection once idle.
    sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS);
    deadline = setTimeout(() => {
      const left = opts.tracker?.sockets.size ?? 0;
      server.closeAllConnections();
      if (opts.tracker !== undefined) for (const socket of opts.tracker.sockets) socket.destroy();
      settle({ timedOut: true, destroyed: left });
    }, opts.timeoutMs);
  });
}
