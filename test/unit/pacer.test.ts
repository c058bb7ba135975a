/**
 * threaded/pacer.ts: when the control-plane thread gives the CPU back. It must sleep only after a
 * full slice of work and only while the traffic thread waits for the CPU it holds: pacing an idle
 * gateway's write would only slow it down.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { CONTENDED_MS, createPacer, linuxProbe, parseTaskStat, type PacerProbe } from '../../src/threaded/pacer.js';

function fakeProbe(waiting: () => boolean) {
  const p = { t: 0, sleeps: [] as number[] };
  const probe: PacerProbe = {
    now: () => p.t,
    trafficWaiting: waiting,
    sleep: (ms) => {
      p.sleeps.push(ms);
      p.t += ms;
    },
  };
  return { p, probe };
}

describe('createPacer', () => {
  it('sleeps after a full slice, and only while the traffic thread waits', () => {
    let waiting = true;
    const { p, probe } = fakeProbe(() => waiting);
    const pacer = createPacer(probe, 0.25, 1);
    expect(pacer.contended).toBe(false);
    p.t = 0.2;
    pacer.check(); // inside the slice: nothing
    expect(p.sleeps).toEqual([]);
    p.t = 0.3;
    pacer.check(); // slice over, traffic waiting: pause
    expect(p.sleeps).toEqual([1]);
    expect(pacer.contended).toBe(true);
    p.t += 0.1;
    pacer.check(); // a new slice began after the pause
    expect(p.sleeps).toEqual([1]);
    waiting = false;
    p.t += 5;
    pacer.check(); // slice over, nobody waiting: go on at full speed
    expect(p.sleeps).toEqual([1]);
    p.t += CONTENDED_MS;
    expect(pacer.contended).toBe(false); // no wait seen for CONTENDED_MS
    waiting = true;
    p.t += 0.26;
    pacer.check();
    expect(p.sleeps).toEqual([1, 1]);
  });
});

describe('parseTaskStat', () => {
  it('reads the state and CPU after a command name holding spaces and parentheses', () => {
    const rest = Array.from({ length: 50 }, (_, i) => String(i + 4));
    rest[0] = 'R'; // field 3
    rest[36] = '1'; // field 39
    expect(parseTaskStat(`42 (we (ir) d) name) ${rest.join(' ')}`)).toEqual({ state: 'R', cpu: 1 });
    // This thread, running: /proc/thread-self names it whichever thread the test runs on.
    expect(parseTaskStat(readFileSync('/proc/thread-self/stat', 'utf8'))).toMatchObject({ state: 'R' });
    expect(parseTaskStat('garbage')).toBeNull();
  });
});

/** The CPUs a thread may run on (taskset's list form). */
const affinity = (tid: number): string => execFileSync('taskset', ['-pc', String(tid)], { encoding: 'utf8' }).trim().split(': ')[1]!;
const pin = (tid: number, cpus: string): void => void execFileSync('taskset', ['-pc', cpus, String(tid)], { stdio: 'ignore' });

describe('linuxProbe on real threads', () => {
  it('sees a busy thread on this CPU waiting, and a sleeping one not', async () => {
    const self = Number(readlinkSync('/proc/thread-self').split('/').pop());
    const before = affinity(self);
    // A thread of this process that spins while control[0] is 1 and sleeps while it is 0.
    const control = new Int32Array(new SharedArrayBuffer(8));
    const other = new Worker(
      `const { workerData, parentPort } = require('node:worker_threads');
       const c = workerData;
       parentPort.postMessage(Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop()));
       for (;;) {
         if (Atomics.load(c, 1) === 1) break;
         if (Atomics.load(c, 0) === 1) { for (let i = 0; i < 1e5; i++); } else Atomics.wait(c, 0, 0, 10000);
       }`,
      { eval: true, workerData: control },
    );
    const tid = await new Promise<number>((resolve) => other.once('message', resolve));
    const cpu = before.split(/[,-]/)[0]!;
    let probe: ReturnType<typeof linuxProbe> = null;
    try {
      pin(self, cpu);
      pin(tid, cpu);
      probe = linuxProbe(tid);
      expect(probe).not.toBeNull();
      const sample = (ms: number): number => {
        let seen = 0;
        const end = performance.now() + ms;
        while (performance.now() < end) if (probe!.trafficWaiting()) seen++;
        return seen;
      };
      Atomics.store(control, 0, 1);
      Atomics.notify(control, 0);
      // Both threads want the one CPU: whenever this one runs, the other is queued on it.
      expect(sample(300)).toBeGreaterThan(0);
      Atomics.store(control, 0, 0);
      await new Promise((r) => setTimeout(r, 100));
      // Blocked (its wait's 10 s timeout cannot end within the sample): never runnable.
      expect(sample(200)).toBe(0);
    } finally {
      probe?.close();
      pin(self, before);
      Atomics.store(control, 1, 1);
      Atomics.notify(control, 0);
      await other.terminate();
    }
  });
});
