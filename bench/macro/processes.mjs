/**
 * Child processes of the benchmark: started pinned to a CPU (taskset execs node, so the pid is
 * node's own), watched until they are ready, measured through /proc, and stopped by their pid.
 */
import { execFileSync, spawn } from 'node:child_process';
import { openSync, readFileSync, closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Spawn `node <args>` pinned to `cpu` (null: unpinned). stdout goes to `logFile` when given
 * (the gateway's JSON log: a file, like a production log sink, instead of a pipe this process
 * would have to drain), else it is piped.
 */
export function spawnNode(cpu, args, { env = process.env, logFile = null } = {}) {
  const cmd = cpu === null ? process.execPath : 'taskset';
  const argv = cpu === null ? args : ['-c', cpu, process.execPath, ...args];
  const out = logFile === null ? 'pipe' : openSync(logFile, 'w');
  const child = spawn(cmd, argv, { env, stdio: ['ignore', out, 'pipe'] });
  if (typeof out === 'number') closeSync(out);
  // All of stdout is kept (it is a few lines), so no line can be missed between two waits.
  child.out = '';
  if (child.stdout !== null) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      child.out += d;
    });
  }
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-8192);
  });
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.stderrTail = () => stderr;
  return child;
}

/** Resolve with the first match of `re` in everything the child wrote to stdout; reject if it exits first. */
export function waitForLine(child, re, timeoutMs = 30_000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = re.exec(child.out);
      if (m === null) return false;
      cleanup();
      resolve(m);
      return true;
    };
    const onExit = (code) => {
      if (!check()) fail(new Error(`exited with ${code} before it printed ${re}: ${child.stderrTail()}`));
    };
    const fail = (err) => {
      cleanup();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no output matching ${re} within ${timeoutMs} ms`)), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout.off('data', check);
      child.off('close', onExit);
    };
    // Registered after spawnNode's own listener, so child.out already holds the new data.
    child.stdout.on('data', check);
    // 'close', not 'exit': it comes after the last stdout data.
    child.once('close', onExit);
    check();
  });
}

/**
 * Wait for the gateway's `"event":"started"` log line in `logFile` and return it parsed.
 * Polls the file: the gateway logs asynchronously (pino) to a file descriptor we do not read.
 */
export async function waitForStartedLog(child, logFile, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let exited = null;
  child.exited.then((e) => (exited = e));
  for (;;) {
    let text = '';
    try {
      text = readFileSync(logFile, 'utf8');
    } catch {
      // not created yet
    }
    for (const line of text.split('\n')) {
      if (!line.includes('"event":"started"')) continue;
      return JSON.parse(line);
    }
    if (exited !== null) throw new Error(`gateway exited (${exited.code ?? exited.signal}) before it was ready:\n${child.stderrTail()}\n${text.slice(-4096)}`);
    if (Date.now() > deadline) throw new Error(`gateway not ready after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Clock ticks per second of /proc/<pid>/stat times. */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** user+system CPU seconds a process has used so far, from /proc/<pid>/stat; null where unavailable. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** read-type and write-type system calls a process has made so far (/proc/<pid>/io); null where unavailable. */
export function syscalls(pid) {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name) => Number(new RegExp(`${name}: (\\d+)`).exec(io)?.[1] ?? NaN);
    return { reads: field('syscr'), writes: field('syscw') };
  } catch {
    return null;
  }
}

/** Resident set size in MiB from /proc/<pid>/status; null where unavailable. */
export function rssMiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? null : Math.round(Number(m[1]) / 1024);
  } catch {
    return null;
  }
}

/** SIGTERM (graceful: the gateway and --cpu-prof need it), then SIGKILL after `graceMs`. */
export async function stop(child, graceMs = 15_000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const r = await child.exited;
  clearTimeout(timer);
  return r;
}
