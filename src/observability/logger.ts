/**
 * The process logger: structured JSON on stdout, written asynchronously so logging never blocks
 * the event loop. Created once in the composition root and passed to every component.
 */
import { writeSync } from 'node:fs';
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
 * Lines are gathered into chunks of about this many characters before they reach the
 * destination. WHY: under a deny flood every request writes an access line, and pino's
 * destination (sonic-boom) pays per write() call: it measures the UTF-8 length of the line and of
 * the whole pending buffer (Buffer.byteLength, which flattens the string), and it makes a write(2)
 * through libuv's thread pool per batch. Bench scenario 8 measured ~18 µs of CPU per denied request
 * for the access log when lines went to sonic-boom one by one with 4 KB batches. Gathering them
 * here costs one string append per line, and sonic-boom sees one write per chunk.
 */
const BATCH_CHARS = 65_536;
/** A quiet log still reaches stdout within this long. */
const FLUSH_EVERY_MS = 100;

/** What LineBatcher needs of the destination behind it (sonic-boom's methods). */
interface FlushableDestination extends DestinationStream {
  /** The file descriptor written to (-1 until it is open). */
  readonly fd: number;
  flush(cb?: (err?: Error) => void): void;
  flushSync(): void;
}

/**
 * A destination that appends lines to one string and hands it on in chunks of BATCH_CHARS, every
 * FLUSH_EVERY_MS, on flush() and flushSync(), and when the process exits. Every logger of the
 * process writes through the same one, so lines keep their order.
 */
export class LineBatcher implements DestinationStream {
  private pending = '';

  constructor(
    private readonly out: FlushableDestination,
    private readonly batchChars = BATCH_CHARS,
  ) {}

  write(line: string): void {
    this.pending += line;
    if (this.pending.length >= this.batchChars) this.drain();
  }

  /** pino's logger.flush(cb) calls this. */
  flush(cb?: (err?: Error) => void): void {
    this.drain();
    this.out.flush(cb);
  }

  /**
   * Write everything now, synchronously (a crash, a failed shutdown, process exit: nothing runs
   * after this). The destination first writes what it holds; the pending lines then go straight to
   * its file descriptor, because handing them to its write() would start an asynchronous write
   * that the exiting process never finishes.
   */
  flushSync(): void {
    this.out.flushSync();
    if (this.pending.length === 0) return;
    const chunk = Buffer.from(this.pending, 'utf8');
    this.pending = '';
    writeAllSync(this.out.fd, chunk);
  }

  private drain(): void {
    if (this.pending.length === 0) return;
    const chunk = this.pending;
    this.pending = '';
    this.out.write(chunk);
  }
}

/** write(2) until all of `buf` is out; a non-blocking pipe that is full (EAGAIN) is retried a bounded number of times. */
function writeAllSync(fd: number, buf: Buffer): void {
  let off = 0;
  for (let again = 0; off < buf.length && again < 1000; ) {
    try {
      off += writeSync(fd, buf, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      again++;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

/** Every stdout batcher of the process, flushed synchronously at exit (pino flushes only its own destination). */
const batchers = new Set<LineBatcher>();
let exitHooked = false;

function flushAtExit(): void {
  for (const b of batchers) {
    try {
      b.flushSync();
    } catch {
      /* stdout not open yet or gone: nothing more can be written */
    }
  }
}

/** Stdout, batched and asynchronous; the destination of every logger of the process. */
export function stdoutDestination(): DestinationStream {
  const dest = pino.destination({ dest: 1, sync: false }) as unknown as FlushableDestination;
  const batcher = new LineBatcher(dest);
  batchers.add(batcher);
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', flushAtExit);
  }
  const timer = setInterval(() => {
    // flush() throws while the destination is still opening or after it has ended; both are harmless.
    try {
      batcher.flush();
    } catch {
      /* nothing to flush yet, or closed */
    }
  }, FLUSH_EVERY_MS);
  timer.unref();
  return batcher;
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
