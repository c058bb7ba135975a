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

export function createLogger(opts: LoggerOptions): Logger {
  const stream = opts.stream ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid },
      redact: { paths: REDACTED, censor: '[redacted]' },
    },
    stream,
  );
}
