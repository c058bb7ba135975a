/**
 * A clock the test moves by hand: `advance` runs every timer that falls due, in time order, so
 * expiry is tested without sleeping and without racing the wall clock.
 */
import type { Clock } from '../../src/clock.js';

export class ManualClock implements Clock {
  private timers: { at: number; fn: () => void; live: boolean }[] = [];

  constructor(private t: number) {}

  now(): number {
    return this.t;
  }

  at(at: number, fn: () => void): { cancel(): void } {
    const timer = { at, fn, live: true };
    this.timers.push(timer);
    return { cancel: () => void (timer.live = false) };
  }

  /** Moves time forward by `ms`, firing due timers (each at its own time). Returns how many fired. */
  advance(ms: number): number {
    const end = this.t + ms;
    let fired = 0;
    for (;;) {
      const due = this.timers.filter((x) => x.live && x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      due.live = false;
      this.t = Math.max(this.t, due.at);
      due.fn();
      fired++;
    }
    this.timers = this.timers.filter((x) => x.live);
    this.t = end;
    return fired;
  }

  /** Timers armed and not yet fired or cancelled. */
  get pending(): number {
    return this.timers.filter((x) => x.live).length;
  }
}
