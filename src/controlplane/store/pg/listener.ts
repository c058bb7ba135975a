/**
 * LISTEN on the store's change channel, on a dedicated session-mode connection.
 *
 * The `postgres` client re-issues LISTEN by itself when the connection closes (a restart, or
 * pg_terminate_backend), and `onListen` runs after every (re)connection: the store then syncs,
 * because notifications sent while the listener was away are lost. What the client cannot see is
 * a connection that silently stopped delivering (a half-open TCP connection, a paused network):
 * every heartbeat therefore sends a notification to this node itself, and when two of them were
 * sent but not heard, the listener is torn down and rebuilt.
 */
import postgres, { type Options, type Sql } from 'postgres';
import type { Logger } from '../../../observability/logger.js';

export interface ListenerOptions {
  readonly url: string;
  readonly pg: Options<Record<string, postgres.PostgresType>>;
  readonly channel: string;
  /** Identifies this process's own heartbeat notifications. */
  readonly selfTag: string;
  readonly log: Logger;
  /** A change notification (its payload is the new revision). */
  readonly onChange: (payload: string) => void;
  /** LISTEN is (again) in place: anything may have been missed before it. */
  readonly onListen: () => void;
}

/** The payload of heartbeat number `seq` of the process tagged `tag`. */
export function heartbeatPayload(tag: string, seq: number): string {
  return `hb:${tag}:${seq}`;
}

export class ChangeListener {
  #sql: Sql | null = null;
  #starting: Promise<void> | null = null;
  #closed = false;
  /** Highest own heartbeat heard, and highest sent successfully. */
  #heard = 0;
  #sentOk = 0;
  #lastListenAt = 0;
  #lastHeardAt = 0;
  #rebuilds = 0;

  constructor(private readonly opts: ListenerOptions) {}

  /** Resolves once LISTEN is in place (rejects if the database cannot be reached). */
  start(): Promise<void> {
    if (this.#starting !== null) return this.#starting;
    const sql = postgres(this.opts.url, { ...this.opts.pg, max: 1, idle_timeout: 0, max_lifetime: 0 });
    this.#sql = sql;
    const started = sql
      .listen(
        this.opts.channel,
        (payload) => this.#onNotify(payload),
        () => {
          this.#lastListenAt = Date.now();
          if (this.#closed || this.#sql !== sql) return;
          this.opts.onListen();
        },
      )
      .then(() => undefined);
    this.#starting = started.catch((err: unknown) => {
      // Let the next check retry with a fresh client.
      if (this.#sql === sql) {
        this.#sql = null;
        this.#starting = null;
      }
      void sql.end({ timeout: 0 }).catch(() => undefined);
      throw err;
    });
    return this.#starting;
  }

  #onNotify(payload: string): void {
    if (payload.startsWith('hb:')) {
      const prefix = `hb:${this.opts.selfTag}:`;
      if (payload.startsWith(prefix)) {
        const seq = Number(payload.slice(prefix.length));
        if (seq > this.#heard) this.#heard = seq;
        this.#lastHeardAt = Date.now();
      }
      return;
    }
    this.opts.onChange(payload);
  }

  /** A heartbeat notification with `seq` was committed. */
  sent(seq: number): void {
    if (seq > this.#sentOk) this.#sentOk = seq;
  }

  /** Is the listener delivering? (It heard itself, or (re)connected, within `windowMs`.) */
  up(windowMs: number): boolean {
    const now = Date.now();
    return this.#sql !== null && (now - this.#lastHeardAt <= windowMs || now - this.#lastListenAt <= windowMs);
  }

  get rebuilds(): number {
    return this.#rebuilds;
  }

  /**
   * Called after each heartbeat: rebuilds a listener that missed two of its own heartbeats (or was
   * never started, or failed to start).
   */
  check(): void {
    if (this.#closed) return;
    if (this.#sql === null) {
      this.start().catch((err: unknown) => this.opts.log.warn({ event: 'store_listener_failed', err: (err as Error).message }, 'cannot LISTEN for store changes; retrying'));
      return;
    }
    if (this.#sentOk - this.#heard < 2) return;
    this.opts.log.warn({ event: 'store_listener_dead', sent: this.#sentOk, heard: this.#heard }, 'the store listener stopped delivering notifications; rebuilding it');
    this.#rebuilds++;
    const old = this.#sql;
    this.#sql = null;
    this.#starting = null;
    this.#heard = this.#sentOk;
    void old.end({ timeout: 0 }).catch(() => undefined);
    this.start().catch((err: unknown) => this.opts.log.warn({ event: 'store_listener_failed', err: (err as Error).message }, 'cannot LISTEN for store changes; retrying'));
  }

  async close(): Promise<void> {
    this.#closed = true;
    const sql = this.#sql;
    this.#sql = null;
    if (sql !== null) await sql.end({ timeout: 0 }).catch(() => undefined);
  }
}
