/**
 * The process logger: structured JSON on stdout, written asynchronously so logging never blocks
 * the event loop. Created once in the composition root and passed to every component.
 */
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  readonly level: string;
  /** A destination for tests; stdout (async) otherwise. */
  readonly stream?: DestinationStream | undefined;
}

/**
 * Credentials never reach the log, should headers ever be logged: as `req.headers`/`res.headers`
 * (pino's conventions) or as a bare `headers` map. Explicit paths, not wildcards: fast-redact
 * compiles them into a few property checks per line instead of a walk over every key.
 */
const REDACTED = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'headers["set-cookie"]',
];

/**
 * Lines are gathered into writes of about this many bytes. An unbatched asynchronous destination
 * makes one write(2), through libuv's thread pool, per line: under a deny flood, where every
 * request writes an access line, that cost more than the rest of rejecting the request.
 */
const BATCH_BYTES = 4096;
/** A quiet log still reaches stdout within this long. */
const FLUSH_EVERY_MS = 100;

/** Stdout, batched and asynchronous; the destination of every logger of the process. */
export function stdoutDestination(): DestinationStream {
  const dest = pino.destination({ dest: 1, sync: false, minLength: BATCH_BYTES });
  const timer = setInterval(() => {
    // flush() throws while the destination is still opening or after it has ended; both are harmless.
    try {
      dest.flush();
    } catch {
      /* nothing to flush yet, or closed */
    }
  }, FLUSH_EVERY_MS);
  timer.unref();
  return dest;
}

export function createLogger(opts: LoggerOptions): Logger {
  const stream = opts.stream ?? stdoutDestination();
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid },
      redact: { paths: REDACTED, censor: '[redacted]' },
    },
    stream,
  );
}
