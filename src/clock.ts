/**
 * Time as a dependency. The gateway reads the clock for IP group expiry (compile-time "now" and
 * the timer that recompiles when the earliest entry expires); tests inject a manual clock so that
 * expiry is proven without waiting or racing the wall clock.
 */
export interface Clock {
  now(): number;
  /** Calls `fn` once the clock reaches `at` (ms since the epoch). */
  at(at: number, fn: () => void): { cancel(): void };
}

/** setTimeout's limit; longer waits re-arm. */
const MAX_DELAY = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  at(at, fn) {
    let timer: NodeJS.Timeout;
    const arm = (): void => {
      const delay = at - Date.now();
      if (delay <= 0) {
        fn();
        return;
      }
      timer = setTimeout(arm, Math.min(delay, MAX_DELAY));
      timer.unref();
    };
    timer = setTimeout(arm, Math.min(Math.max(at - Date.now(), 0), MAX_DELAY));
    timer.unref();
    return { cancel: () => clearTimeout(timer) };
  },
};
