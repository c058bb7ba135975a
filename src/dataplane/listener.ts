/**
 * The traffic listener: a node:http server, or a node:https one when TLS is configured, optionally
 * with PROXY protocol (v1 and v2) in front of the HTTP parser.
 *
 * The result is always an http.Server or https.Server instance that listens itself, so listen(),
 * close(), closeIdleConnections(), `listening` and address() behave exactly as Node documents.
 * Plain HTTP without PROXY protocol is the bare node:http server: no added cost per connection or
 * per request.
 *
 * PROXY protocol works per connection, before HTTP (or TLS) sees a byte:
 * - the server's own 'connection' listeners (Node's HTTP parser setup, or the TLS wrapper) are
 *   taken off and called only once the header has been read. Node's HTTP parser reads straight
 *   from the socket's handle, so a later 'connection' listener would be too late to strip the
 *   header;
 * - a connection from an address outside `trustedLoadBalancers` is closed at once: nobody else may
 *   choose the address ipgate believes;
 * - the header must arrive within `headerTimeoutMs` and be valid, otherwise the connection is
 *   closed (fail closed; a load balancer that forgets the header gets no service rather than
 *   being judged by its own address);
 * - bytes after the header are put back (unshift) for the HTTP parser or the TLS handshake;
 * - remoteAddress/remotePort/remoteFamily of the socket become the carried source, so client-IP
 *   resolution, X-Forwarded-For trust (relative to that address) and the X-Forwarded-For the
 *   gateway appends all see the client, not the balancer. A v2 LOCAL or v1 UNKNOWN header (health
 *   checks) keeps the real peer.
 *
 * TLS certificates are reloaded when their files change (see CertificateReloader).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { createServer as createHttpServer, type RequestListener, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { createSecureContext, type TLSSocket } from 'node:tls';
import type { Logger } from '../observability/logger.js';
import { parseClientIp, FAMILY_INVALID } from '../policy/ip-address.js';
import { parseIpEntry, type CidrPrefix } from '../policy/ip-entry.js';
import { parseProxyHeader, type HeaderProxied } from './proxy-protocol.js';

export interface TlsFiles {
  /** PEM certificate (chain), leaf first. */
  readonly certFile: string;
  /** PEM private key of the leaf certificate. */
  readonly keyFile: string;
}

export interface ProxyProtocolOptions {
  /** Addresses and CIDRs allowed to send a PROXY header (validated by the config schema). */
  readonly trustedLoadBalancers: readonly string[];
  /** Time allowed from accept until the whole header has arrived. */
  readonly headerTimeoutMs: number;
}

export interface ListenerOptions {
  /** node:http server options (also applied to node:https). */
  readonly http: ServerOptions;
  readonly tls: TlsFiles | null;
  readonly proxyProtocol: ProxyProtocolOptions | null;
  readonly log: Logger;
}

/**
 * Build the traffic server. Throws (so the gateway refuses to start) when the TLS files cannot be
 * read or do not form a usable certificate and key.
 */
export function createListener(opts: ListenerOptions, handler: RequestListener): Server {
  let server: Server;
  if (opts.tls === null) {
    server = createHttpServer(opts.http, handler);
  } else {
    const pair = loadKeyPair(opts.tls);
    const https = createHttpsServer({ ...opts.http, cert: pair.cert, key: pair.key }, handler);
    const reloader = new CertificateReloader(https, opts.tls, pair, opts.log);
    // Watch only while listening, so a server that never listened leaves no watcher behind.
    https.on('listening', () => reloader.start());
    https.on('close', () => reloader.stop());
    server = https;
  }
  if (opts.proxyProtocol !== null) new ProxyProtocolGate(server, opts.proxyProtocol, opts.tls !== null, opts.log).install();
  return server;
}

// ---- TLS -----------------------------------------------------------------------------------------

interface KeyPair {
  readonly cert: Buffer;
  readonly key: Buffer;
}

function loadKeyPair(files: TlsFiles): KeyPair {
  const read = (key: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`${key}: cannot read ${file}: ${(err as Error).message}`);
    }
  };
  const pair = { cert: read('tls.certFile', files.certFile), key: read('tls.keyFile', files.keyFile) };
  try {
    createSecureContext(pair);
  } catch (err) {
    throw new Error(`tls: ${files.certFile} and ${files.keyFile} are not a usable certificate and key: ${(err as Error).message}`);
  }
  return pair;
}

/** Describes a certificate for the log; never throws. */
function describeCert(cert: Buffer): Record<string, string> {
  try {
    const x = new X509Certificate(cert);
    return { subject: x.subject, validTo: x.validTo, fingerprint256: x.fingerprint256 };
  } catch {
    return {};
  }
}

/** Changes are picked up this long after the last file event, so a multi-step write is read once. */
const RELOAD_DEBOUNCE_MS = 200;

/**
 * Reloads the certificate and key when their files change: new connections get the new pair,
 * connections already open keep theirs.
 *
 * The directories are watched, not the files: tools replace certificates by renaming a new file
 * over the old one (certbot, cert-manager, Kubernetes secret volumes swap a symlink), which a watch
 * on the old file's inode would never see. Any event in either directory, after a debounce, reads
 * both files; identical contents do nothing. A pair that cannot be read, does not parse or does not
 * match (a half-written file, a new certificate whose key has not arrived yet) is logged as
 * `tls_reload_failed` and the running pair is kept; the next file event tries again.
 */
class CertificateReloader {
  private current: KeyPair;
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly server: HttpsServer,
    private readonly files: TlsFiles,
    initial: KeyPair,
    private readonly log: Logger,
  ) {
    this.current = initial;
  }

  start(): void {
    if (this.watchers.length > 0) return;
    const dirs = new Set([dirname(resolve(this.files.certFile)), dirname(resolve(this.files.keyFile))]);
    for (const dir of dirs) {
      try {
        // persistent: false, so the watch never keeps the process alive on its own.
        const w = watch(dir, { persistent: false }, () => this.schedule());
        w.on('error', (err) => this.log.error({ event: 'tls_reload_failed', dir, err: err.message }, 'TLS certificate directory watch failed; certificates are no longer reloaded from it'));
        this.watchers.push(w);
      } catch (err) {
        this.log.error({ event: 'tls_reload_failed', dir, err: (err as Error).message }, 'cannot watch the TLS certificate directory; certificates will not be reloaded');
      }
    }
    // Files replaced between startup and now are picked up too.
    this.schedule();
  }

  stop(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.reload();
    }, RELOAD_DEBOUNCE_MS);
    this.timer.unref();
  }

  private reload(): void {
    const { certFile, keyFile } = this.files;
    let next: KeyPair;
    try {
      next = { cert: readFileSync(certFile), key: readFileSync(keyFile) };
    } catch (err) {
      this.log.error({ event: 'tls_reload_failed', certFile, keyFile, err: (err as Error).message }, 'TLS certificate reload failed; keeping the current certificate');
      return;
    }
    if (next.cert.equals(this.current.cert) && next.key.equals(this.current.key)) return;
    try {
      // Validate first: setSecureContext must only ever see a pair that works.
      createSecureContext(next);
      this.server.setSecureContext({ cert: next.cert, key: next.key });
    } catch (err) {
      this.log.error({ event: 'tls_reload_failed', certFile, keyFile, err: (err as Error).message }, 'TLS certificate reload failed; keeping the current certificate');
      return;
    }
    this.current = next;
    this.log.info({ event: 'tls_reloaded', certFile, keyFile, ...describeCert(next.cert) }, 'TLS certificate reloaded');
  }
}

// ---- PROXY protocol ------------------------------------------------------------------------------

type ConnectionListener = (this: Server, socket: Socket) => void;

/** Installs PROXY protocol handling on a server's incoming connections. */
class ProxyProtocolGate {
  private readonly loadBalancers: readonly CidrPrefix[];
  private readonly inner: ConnectionListener[] = [];
  private readonly pending = new Set<HeaderReader>();
  private readonly words = new Uint32Array(4);
  /**
   * TLS only. The TLS server wraps the raw socket in a new TLSSocket, and the HTTP layer reads the
   * TLSSocket's address, so the header's verdict is kept here under the connection's real 4-tuple
   * until the handshake completes (null: LOCAL, keep the real peer). Removed when the raw socket
   * closes.
   */
  private readonly byTuple: Map<string, HeaderProxied | null> | null;

  constructor(
    private readonly server: Server,
    private readonly opts: ProxyProtocolOptions,
    tls: boolean,
    readonly log: Logger,
  ) {
    this.loadBalancers = opts.trustedLoadBalancers.map((text) => {
      const r = parseIpEntry(text);
      if (!r.ok || r.prefixes.length !== 1) throw new Error(`proxyProtocol.trustedLoadBalancers: ${text} is not an address or CIDR`);
      return r.prefixes[0]!;
    });
    this.byTuple = tls ? new Map() : null;
  }

  get headerTimeoutMs(): number {
    return this.opts.headerTimeoutMs;
  }

  install(): void {
    const server = this.server;
    const gate = this;
    this.inner.push(...(server.listeners('connection') as ConnectionListener[]));
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => this.accept(socket));
    if (this.byTuple !== null) server.prependListener('secureConnection', (socket: TLSSocket) => this.secured(socket));
    // server.close() calls closeIdleConnections(); a connection still waiting for its header is
    // idle (no request yet), so it is closed too instead of holding shutdown until its timeout.
    const closeIdle = server.closeIdleConnections;
    server.closeIdleConnections = function closeIdleConnections(this: Server): void {
      gate.closePending();
      closeIdle.call(this);
    };
  }

  private accept(socket: Socket): void {
    const peer = socket.remoteAddress;
    if (peer === undefined || !this.isLoadBalancer(peer)) {
      // Debug level: anyone who can reach the port can produce these.
      this.log.debug({ event: 'proxy_protocol_rejected', remoteAddress: peer ?? null, reason: 'source is not a trusted load balancer' }, 'connection closed');
      socket.destroy();
      return;
    }
    this.pending.add(new HeaderReader(this, socket));
  }

  private isLoadBalancer(address: string): boolean {
    const words = this.words;
    const family = parseClientIp(address, words);
    if (family === FAMILY_INVALID) return false;
    for (const p of this.loadBalancers) if (p.family === family && prefixContains(p, words)) return true;
    return false;
  }

  /** The reader has stopped reading (header complete, rejected, or the socket is gone). */
  settled(reader: HeaderReader): void {
    this.pending.delete(reader);
  }

  rejected(socket: Socket, reason: string): void {
    this.log.warn({ event: 'proxy_protocol_rejected', remoteAddress: socket.remoteAddress ?? null, reason }, 'connection closed: invalid PROXY protocol header');
    socket.destroy();
  }

  /** Give the socket, positioned after the header, to the server's own connection handling. */
  handOff(socket: Socket, header: HeaderProxied | null): void {
    if (this.byTuple !== null) {
      const key = tupleKey(socket);
      if (key === null) {
        socket.destroy();
        return;
      }
      this.byTuple.set(key, header);
      socket.once('close', () => this.byTuple!.delete(key));
    }
    if (header !== null) setPeer(socket, header);
    for (const l of this.inner) l.call(this.server, socket);
    // HTTP: data arriving from now on goes straight to the parser; resuming flushes what was put
    // back. TLS reads the put-back bytes itself (TLSSocket drains the raw socket's buffer).
    if (this.byTuple === null) socket.resume();
  }

  /** TLS: apply the header's source to the TLSSocket the HTTP layer will read. */
  private secured(socket: TLSSocket): void {
    const key = tupleKey(socket);
    const header = key === null ? undefined : this.byTuple!.get(key);
    if (header === undefined) {
      // Every connection passed the gate, so this cannot happen; if it does, do not let the
      // request be judged by the load balancer's address.
      this.log.error({ event: 'proxy_protocol_rejected', reason: 'PROXY header verdict lost before the TLS handshake completed' }, 'connection closed');
      socket.destroy();
      return;
    }
    if (header !== null) setPeer(socket, header);
  }

  closePending(): void {
    for (const r of this.pending) r.socket.destroy();
    this.pending.clear();
  }
}

/** Reads one connection's PROXY header. */
class HeaderReader {
  private received: Buffer | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly gate: ProxyProtocolGate,
    readonly socket: Socket,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    // An absolute deadline, not an idle timeout: dripping one byte at a time does not extend it.
    this.timer = setTimeout(this.onTimeout, gate.headerTimeoutMs);
  }

  private readonly onData = (chunk: Buffer): void => {
    const buf = this.received === null ? chunk : Buffer.concat([this.received, chunk]);
    const h = parseProxyHeader(buf);
    if (h.kind === 'incomplete') {
      this.received = buf;
      return;
    }
    this.detach();
    if (h.kind === 'invalid') {
      this.gate.rejected(this.socket, h.reason);
      return;
    }
    const socket = this.socket;
    socket.pause();
    if (buf.length > h.length) socket.unshift(buf.subarray(h.length));
    this.gate.handOff(socket, h.kind === 'proxy' ? h : null);
  };

  private readonly onEnd = (): void => {
    this.detach();
    this.gate.rejected(this.socket, 'connection ended before a complete PROXY protocol header');
  };

  private readonly onTimeout = (): void => {
    this.detach();
    this.gate.rejected(this.socket, `PROXY protocol header not complete within ${this.gate.headerTimeoutMs} ms`);
  };

  private readonly onError = (): void => {
    // ECONNRESET and the like: nothing to answer, nobody to tell.
    this.detach();
    this.socket.destroy();
  };

  private readonly onClose = (): void => {
    this.detach();
  };

  private detach(): void {
    clearTimeout(this.timer);
    const s = this.socket;
    s.off('data', this.onData);
    s.off('end', this.onEnd);
    s.off('error', this.onError);
    s.off('close', this.onClose);
    this.gate.settled(this);
  }
}

/** Make the carried source the socket's peer, as everything downstream reads it. */
function setPeer(socket: Socket, h: HeaderProxied): void {
  Object.defineProperty(socket, 'remoteAddress', { value: h.sourceAddress, configurable: true, enumerable: true });
  Object.defineProperty(socket, 'remotePort', { value: h.sourcePort, configurable: true, enumerable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: h.family, configurable: true, enumerable: true });
}

/** The connection's real endpoints (read before setPeer), or null once the socket is gone. */
function tupleKey(socket: Socket): string | null {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (localAddress === undefined || remoteAddress === undefined) return null;
  return `${localAddress} ${localPort} ${remoteAddress} ${remotePort}`;
}

/** Is `words` (as parseClientIp fills it, same family as p) inside prefix p? */
function prefixContains(p: CidrPrefix, words: Uint32Array): boolean {
  let bits = p.length;
  for (let i = 0; i < p.words.length && bits > 0; i++) {
    const mask = bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0;
    if (((words[i]! & mask) >>> 0) !== p.words[i]) return false;
    bits -= 32;
  }
  return true;
}
