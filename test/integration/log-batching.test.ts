/**
 * The process log's stdout destination (observability/logger.ts, built into dist/ by npm test)
 * gathers lines into large chunks before they reach pino's destination. A real child process writes
 * to a real stdout pipe, and every line must arrive, in order:
 * - when the process ends by itself;
 * - when it calls process.exit() right after logging (the pending chunk is written synchronously
 *   at exit; without that, the lines still gathered would be lost);
 * - while it keeps running and logs only one line (the periodic flush gets it out in time).
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const LOGGER = resolve('dist/observability/logger.js');

function child(body: string) {
  const script = `import { createLogger } from ${JSON.stringify(LOGGER)};\nconst log = createLogger({ level: 'info' });\n${body}`;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((done) => proc.on('close', (code) => done(code)));
  return { proc, exited, out: () => out, err: () => err };
}

/** The `seq` field of every JSON line with event "line". */
function seqs(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as { event?: string; seq?: number })
    .filter((l) => l.event === 'line')
    .map((l) => l.seq!);
}

const N = 20_000;
// ~150 bytes a line: 3 MB in all, dozens of chunks, and far more than a pipe buffer holds.
const WRITE_N = `for (let i = 0; i < ${N}; i++) log.info({ event: 'line', seq: i, pad: 'x'.repeat(60) }, 'a log line');`;

describe('stdout log batching', () => {
  it('delivers every line in order when the process ends by itself', async () => {
    const c = child(WRITE_N);
    expect(await c.exited).toBe(0);
    expect(c.err()).toBe('');
    expect(seqs(c.out())).toEqual(Array.from({ length: N }, (_, i) => i));
  });

  it('delivers every line in order when the process exits right after logging', async () => {
    const c = child(`${WRITE_N}\nprocess.exit(3);`);
    expect(await c.exited).toBe(3);
    expect(c.err()).toBe('');
    expect(seqs(c.out())).toEqual(Array.from({ length: N }, (_, i) => i));
  });

  it('gets a lone line out while the process keeps running', async () => {
    const c = child(`log.info({ event: 'line', seq: 7 }, 'only line');\nsetTimeout(() => {}, 20_000);`);
    try {
      const deadline = Date.now() + 5000;
      while (seqs(c.out()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(seqs(c.out())).toEqual([7]);
    } finally {
      c.proc.kill('SIGKILL');
      await c.exited;
    }
  });
});
