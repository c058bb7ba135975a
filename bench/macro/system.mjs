/**
 * What the benchmark ran on (CPU, Node, commit) and which CPU each process is pinned to.
 *
 * Pinning plan. The process under test (the gateway, the baseline forwarder, or the upstream in
 * scenario 1) always gets a CPU of its own, because the targets are ratios between those
 * processes and they must see the same hardware. The load generator and the upstream share
 * what is left:
 * - 3 or more usable CPUs: under test on the 1st, upstream on the 2nd, load generator (and this
 *   orchestrator) on the 3rd;
 * - 2 CPUs: under test on the 1st; upstream, load generator and orchestrator on the 2nd;
 * - 1 CPU, or no taskset: nothing is pinned, and the output says so.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** CPUs this process may run on, from `taskset -pc` (respects cgroup/container masks); null if unknown. */
function allowedCpus() {
  try {
    const out = execFileSync('taskset', ['-pc', String(process.pid)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const list = out.slice(out.lastIndexOf(':') + 1).trim();
    const cpus = [];
    for (const part of list.split(',')) {
      const [a, b] = part.split('-').map(Number);
      for (let c = a; c <= (b ?? a); c++) cpus.push(c);
    }
    return cpus;
  } catch {
    return null;
  }
}

/** @returns {{ pinned: boolean, note: string, sut: string|null, upstream: string|null, load: string|null }} */
export function pinningPlan() {
  const probe = spawnSync('taskset', ['-c', '0', 'true'], { stdio: 'ignore' });
  if (probe.error !== undefined || probe.status !== 0) {
    return { pinned: false, note: 'taskset not available: processes are NOT pinned, so they compete for CPUs', sut: null, upstream: null, load: null };
  }
  const cpus = allowedCpus() ?? [];
  if (cpus.length < 2) {
    return { pinned: false, note: `only ${cpus.length} usable CPU: processes are NOT pinned and share it`, sut: null, upstream: null, load: null };
  }
  const [sut, second, third] = cpus.map(String);
  if (third !== undefined) {
    return { pinned: true, note: `taskset: process under test on CPU ${sut}, upstream on CPU ${second}, load generator and orchestrator on CPU ${third}`, sut, upstream: second, load: third };
  }
  return { pinned: true, note: `taskset: process under test on CPU ${sut}; upstream, load generator and orchestrator share CPU ${second} (2 usable CPUs)`, sut, upstream: second, load: second };
}

/** Pin this orchestrator (and so the load generator's parent) to `cpu`. */
export function pinSelf(cpu) {
  if (cpu !== null) execFileSync('taskset', ['-pc', cpu, String(process.pid)], { stdio: 'ignore' });
}

function git(args) {
  try {
    return execFileSync('git', args, { cwd: repo, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export function machineInfo() {
  const cpus = os.cpus();
  const commit = git(['rev-parse', 'HEAD']);
  const dirty = commit !== null && git(['status', '--porcelain', '--untracked-files=no']) !== '';
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuCount: cpus.length,
    memoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    commit: commit ?? 'unknown (not a git checkout)',
    // Uncommitted changes to tracked files: the numbers are not exactly those of `commit`.
    dirty,
  };
}
