/**
 * A small TCP proxy on loopback that a test puts between one gateway node and PostgreSQL, to
 * cut that node off without touching the database or the other nodes:
 *
 * - stall(port): the same for one connection only (a half-open connection).
- pause(): stop moving bytes in both directions; connections stay open and new ones are accepted
 *   but go nowhere (a partition, or a database that hangs). resume() lets everything through.
 * - cut(): reset every connection and refuse new ones (a database that is down). restore() ends it.
 * - rewrite(from, to): replace a byte string in what the database sends to the node, with one of
 *   the same length so the protocol's framing stays valid (data corrupted on its way to one node).
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly #server: Server;
  readonly #pairs = new Set<{ client: Socket; upstream: Socket | null }>();
  #paused = false;
  #refusing = false;
  #rewrite: { from: Buffer; to: Buffer } | null = null;
  #waiting: (() => void)[] = [];
  port = 0;

  private constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    this.#server = createServer((client) => this.#accept(client));
  }

  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    const p = new TcpProxy(targetHost, targetPort);
    await new Promise<void>((resolve) => p.#server.listen(0, '127.0.0.1', resolve));
    p.port = (p.#server.address() as AddressInfo).port;
    return p;
  }

  #accept(client: Socket): void {
    if (this.#refusing) {
      client.resetAndDestroy();
      return;
    }
    const pair: { client: Socket; upstream: Socket | null } = { client, upstream: null };
    this.#pairs.add(pair);
    client.on('error', () => undefined);
    client.on('close', () => {
      pair.upstream?.destroy();
      this.#pairs.delete(pair);
    });
    const open = (): void => {
      if (client.destroyed) return;
      const upstream = connect(this.targetPort, this.targetHost);
      pair.upstream = upstream;
      upstream.on('error', () => client.destroy());
      upstream.on('close', () => client.destroy());
      let carry = Buffer.alloc(0);
      upstream.on('data', (chunk: Buffer) => {
        const rw = this.#rewrite;
        if (rw === null) {
          if (carry.length > 0) {
            client.write(carry);
            carry = Buffer.alloc(0);
          }
          client.write(chunk);
          return;
        }
        const buf = Buffer.concat([carry, chunk]);
        for (let i = buf.indexOf(rw.from); i !== -1; i = buf.indexOf(rw.from, i + rw.to.length)) rw.to.copy(buf, i);
        // Hold back a tail that may be the start of a match split across chunks.
        let keep = 0;
        for (let n = Math.min(rw.from.length - 1, buf.length); n > 0; n--) {
          if (buf.subarray(buf.length - n).equals(rw.from.subarray(0, n))) {
            keep = n;
            break;
          }
        }
        carry = Buffer.from(buf.subarray(buf.length - keep));
        client.write(buf.subarray(0, buf.length - keep));
      });
      client.on('data', (chunk: Buffer) => upstream.write(chunk));
      if (this.#paused) {
        client.pause();
        upstream.pause();
      }
    };
    if (this.#paused) {
      client.pause();
      this.#waiting.push(open);
    } else open();
  }

  pause(): void {
    this.#paused = true;
    for (const p of this.#pairs) {
      p.client.pause();
      p.upstream?.pause();
    }
  }

  resume(): void {
    this.#paused = false;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const open of waiting) open();
    for (const p of this.#pairs) {
      p.client.resume();
      p.upstream?.resume();
    }
  }

  /**
   * Silently stalls the one connection whose socket towards PostgreSQL has local port `port` (as
   * pg_stat_activity.client_port shows it): a half-open connection, while the others work.
   */
  stall(port: number): boolean {
    for (const p of this.#pairs) {
      if (p.upstream?.localPort === port) {
        p.client.pause();
        p.upstream.pause();
        return true;
      }
    }
    return false;
  }

  cut(): void {
    this.#refusing = true;
    this.#waiting = [];
    for (const p of this.#pairs) {
      p.client.resetAndDestroy();
      p.upstream?.destroy();
    }
    this.#pairs.clear();
  }

  restore(): void {
    this.#refusing = false;
  }

  rewrite(from: string, to: string): void {
    if (Buffer.byteLength(from) !== Buffer.byteLength(to)) throw new Error('rewrite: from and to must have the same length');
    this.#rewrite = { from: Buffer.from(from), to: Buffer.from(to) };
  }

  clearRewrite(): void {
    this.#rewrite = null;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
