/**
 * Client-side time limits. A database that is down refuses connections at once, but one that is
 * paused or partitioned away answers nothing: without a deadline a query would wait for TCP to
 * give up, minutes later. Every database call of the cluster store is raced against one.
 */

/** Thrown when a deadline passes first. The operation itself may still finish later. */
export class DeadlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeadlineError';
  }
}

/**
 * Resolves or rejects like `work`, or rejects with DeadlineError after `ms`. `work` is not
 * cancelled (it cannot be, from outside); its late result is dropped and its late failure is
 * swallowed, so an abandoned query never becomes an unhandled rejection.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  work.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`${what}: no answer from PostgreSQL within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
