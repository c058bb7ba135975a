/**
 * The process's lifecycle: a graceful stop on SIGTERM and SIGINT, and the last word on an error
 * nothing caught. Entry points install these and pass their own `exit`, so only entry points end
 * the process.
 */
import { pino } from 'pino';
import type { Logger } from '../observability/logger.js';

export type Exit = (code: number) => void;

/**
 * On the first SIGTERM or SIGINT run `stop` (the drain), then exit 0; if `stop` fails, report it
 * through `failed` and exit 1. A further signal during the drain changes nothing: the drain timeout
 * already bounds the wait. SIGHUP is reported through `ignored` and otherwise ignored: by default
 * it would end the process at once and drop every request in flight, and a closed terminal or a
 * habit of "SIGHUP reloads" sends it. (ipgate reloads policies without a signal.)
 */
export function exitOnSignals(stop: (signal: NodeJS.Signals) => Promise<void>, exit: Exit, failed?: (err: unknown) => void, ignored?: (signal: NodeJS.Signals) => void): void {
  process.on('SIGHUP', () => ignored?.('SIGHUP'));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    stop(signal).then(
      () => exit(0),
      (err: unknown) => {
        try {
          failed?.(err);
        } finally {
          exit(1);
        }
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * An uncaught exception or unhandled rejection leaves the process in an unknown state: log it as
 * `fatal`, flush the log synchronously (pino writes asynchronously, and the line would otherwise be
 * lost with the process), and exit 1 so that a supervisor restarts a clean process. Requests in
 * flight are lost; draining them would mean running on in that unknown state.
 */
export function exitOnFatalErrors(log: Logger, exit: Exit): void {
  const die = (kind: 'uncaughtException' | 'unhandledRejection', err: unknown) => {
    try {
      log.fatal({ event: 'crash', kind, err: err instanceof Error ? (err.stack ?? err.message) : String(err) }, `${kind}: exiting`);
      flushSync(log);
    } finally {
      exit(1);
    }
  };
  process.on('uncaughtException', (err) => die('uncaughtException', err));
  let scriptWarnedAt = -Infinity;
  process.on('unhandledRejection', (reason, promise) => {
    // A promise of another realm can only come from a SCRIPT client-IP source's node:vm context
    // (admin-authored code; its request already failed closed). Not a gateway bug, so it must not
    // take the gateway and every request in flight down. Warned about at most once a minute.
    if (!(promise instanceof Promise)) {
      const now = Date.now();
      if (now - scriptWarnedAt >= 60_000) {
        scriptWarnedAt = now;
        log.warn({ event: 'script_rejection', err: String(reason) }, 'a SCRIPT client-IP source left a rejected promise unhandled (ignored)');
      }
      return;
    }
    die('unhandledRejection', reason);
  });
}

/** Log why a shutdown failed, synchronously flushed: the process exits right after. */
export function logShutdownFailure(log: Logger, err: unknown): void {
  log.error({ event: 'shutdown_failed', err: err instanceof Error ? (err.stack ?? err.message) : String(err) }, 'shutdown failed');
  flushSync(log);
}

/** Write out what pino's asynchronous destination still buffers. */
function flushSync(log: Logger): void {
  const stream = (log as unknown as Record<symbol, { flushSync?: () => void } | undefined>)[pino.symbols.streamSym];
  try {
    stream?.flushSync?.();
  } catch {
    // Not open yet, or stdout is gone: nothing more can be written anyway.
  }
}
