/**
 * observability/startup-gc.ts: the startup collection really frees the dead heap (the parse garbage
 * of a big config), logs what it did, and leaves no `gc` global in contexts created afterwards
 * (a SCRIPT policy's sandbox must not be able to force collections).
 */
import { spawnSync } from 'node:child_process';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { collectStartupGarbage } from '../../src/observability/startup-gc.js';
import { createLogger } from '../../src/observability/logger.js';

describe('collectStartupGarbage', () => {
  it('frees dead objects at once, logs startup_gc, and exposes gc to no later context', () => {
    const lines: Record<string, unknown>[] = [];
    const log = createLogger({ level: 'info', stream: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
    expect(runInNewContext('typeof gc')).toBe('undefined');
    // ~150 MB of small objects, then dropped: what a parsed 1M-entry config leaves behind.
    let garbage: { text: string; n: number }[] | null = Array.from({ length: 1_500_000 }, (_, i) => ({ text: `10.${i >>> 16}.${(i >>> 8) & 255}.${i & 255}/32`, n: i }));
    expect(garbage.length).toBe(1_500_000);
    garbage = null;
    const r = collectStartupGarbage(log);
    expect(r).not.toBeNull();
    expect(r!.heapUsedBefore - r!.heapUsedAfter).toBeGreaterThan(100 * 1024 * 1024);
    const line = lines.find((l) => l.event === 'startup_gc');
    expect(line).toMatchObject({ event: 'startup_gc', heapUsedBefore: r!.heapUsedBefore, heapUsedAfter: r!.heapUsedAfter });
    expect(runInNewContext('typeof gc')).toBe('undefined');
    expect(typeof (globalThis as { gc?: unknown }).gc).toBe('undefined');
  });

  it('under --freeze-flags-after-init skips the collection instead of aborting the process', () => {
    // Changing a frozen V8 flag fails a CHECK (exit 133), which no try/catch can stop. This runs
    // the built module (npm test builds dist/ first), as the gateway would.
    const r = spawnSync(
      process.execPath,
      ['--freeze-flags-after-init', '--input-type=module', '-e', "const m = await import('./dist/observability/startup-gc.js'); console.log(String(m.acquireGc()));"],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('null');
  });
});
