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

export function createLogger(opts: LoggerOptions): Logger {
  const stream = opts.stream ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid },
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'], censor: '[redacted]' },
    },
    stream,
  );
}
