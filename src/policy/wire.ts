/**
 * A compiled Snapshot as structured-clonable data, so the control-plane thread can hand it to the
 * traffic thread (src/threaded/).
 *
 * The expensive parts cross for free or almost: the tries' typed arrays live in SharedArrayBuffers
 * (IpTrie.toWire), and a policy's entry texts travel as one string plus an offset array instead of
 * one string per entry (a 1,000,000-entry array of strings would cost the receiving thread tens
 * of milliseconds to deserialise; one string is a memcpy). What cannot be cloned is rebuilt by
 * fromWire in time proportional to the number of proxies and policies, never to the number of
 * entries: endpoint patterns and SCRIPT sources are compiled again from their source text, and
 * the route table is built again from the proxies.
 */
import { RouteTable } from '../dataplane/route-table.js';
import { compileEndpointPattern } from './endpoint-pattern.js';
import { IpTrie, type IpTrieWire } from './ip-trie.js';
import { pace } from './pace.js';
import { compileScriptSource } from './script-source.js';
import type { CompiledIpSource, CompiledPipeline, CompiledPolicy, CompiledProxy, EntryTexts, Snapshot, SnapshotStats } from './snapshot.js';

interface EntryTextsWire {
  /** Every entry text, concatenated. */
  readonly text: string;
  /** Entry i is text.slice(offsets[i], offsets[i + 1]). */
  readonly offsets: Int32Array;
}

type SourceWire = Omit<CompiledIpSource, 'script'>;

type PolicyWire = Omit<CompiledPolicy, 'trie' | 'entryText' | 'source' | 'endpoint'> & {
  readonly trie: IpTrieWire;
  readonly entryText: EntryTextsWire;
  readonly source: SourceWire;
  /** The endpoint pattern's source, or null for targetScope ALL. */
  readonly endpoint: string | null;
};

interface PipelineWire {
  readonly proxyWide: readonly PolicyWire[];
  readonly endpoint: readonly PolicyWire[];
}

type ProxyWire = Omit<CompiledProxy, 'request' | 'response' | 'error'> & {
  readonly request: PipelineWire | null;
  readonly response: PipelineWire | null;
  readonly error: PipelineWire | null;
};

export interface SnapshotWire {
  readonly revision: number;
  readonly environment: string;
  readonly proxies: readonly ProxyWire[];
  readonly stats: SnapshotStats;
  readonly nextExpiry: number;
}

/** Entry texts joined per piece in textsToWire. */
const TEXT_PIECE = 1024;

/** Entry texts from one string and its offsets: O(1) per at(), nothing split up front. */
class JoinedEntryTexts implements EntryTexts {
  constructor(readonly wire: EntryTextsWire) {}

  get length(): number {
    return this.wire.offsets.length - 1;
  }

  at(index: number): string | undefined {
    const o = this.wire.offsets;
    if (!Number.isInteger(index) || index < 0 || index >= o.length - 1) return undefined;
    return this.wire.text.slice(o[index]!, o[index + 1]!);
  }
}

function textsToWire(t: EntryTexts): EntryTextsWire {
  if (t instanceof JoinedEntryTexts) return t.wire;
  const offsets = new Int32Array(new SharedArrayBuffer(4 * (t.length + 1)));
  // The compiler's texts are an array: index it and join it directly (at() and a copy of 100,000
  // strings cost more than the rest of this function).
  const list: readonly string[] = Array.isArray(t) ? (t as readonly string[]) : Array.from({ length: t.length }, (_, i) => t.at(i)!);
  let at = 0;
  // Joined a piece at a time, each piece with a yield point (policy/pace.ts): one join of 100,000
  // strings is a few ms without one. Joining the pieces at the end is one flat copy.
  const pieces: string[] = [];
  for (let i = 0; i < list.length; i += TEXT_PIECE) {
    const end = Math.min(i + TEXT_PIECE, list.length);
    for (let j = i; j < end; j++) {
      at += list[j]!.length;
      offsets[j + 1] = at;
    }
    pieces.push(list.slice(i, end).join(''));
    pace(end - i);
  }
  return { text: pieces.length === 1 ? pieces[0]! : pieces.join(''), offsets };
}

function policyToWire(p: CompiledPolicy): PolicyWire {
  const { script: _runner, ...source } = p.source;
  return { ...p, trie: p.trie.toWire(), entryText: textsToWire(p.entryText), source, endpoint: p.endpoint === null ? null : p.endpoint.source };
}

function pipelineToWire(p: CompiledPipeline | null): PipelineWire | null {
  return p === null ? null : { proxyWide: p.proxyWide.map(policyToWire), endpoint: p.endpoint.map(policyToWire) };
}

export function snapshotToWire(s: Snapshot): SnapshotWire {
  return {
    revision: s.revision,
    environment: s.environment,
    stats: s.stats,
    nextExpiry: s.nextExpiry,
    proxies: s.proxies.map((p) => ({ ...p, request: pipelineToWire(p.request), response: pipelineToWire(p.response), error: pipelineToWire(p.error) })),
  };
}

/**
 * The same, with every shared array copied into a plain one: for another process (worker
 * processes, over the cluster's IPC channel), which cannot share memory with this one.
 */
export function snapshotToPortableWire(s: Snapshot): SnapshotWire {
  return unshare(snapshotToWire(s)) as SnapshotWire;
}

function unshare(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) {
    if (!(v.buffer instanceof SharedArrayBuffer)) return v;
    const Ctor = v.constructor as new (src: ArrayBufferView) => ArrayBufferView;
    return new Ctor(v);
  }
  if (Array.isArray(v)) return v.map(unshare);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = unshare(x);
    return out;
  }
  return v;
}

export interface FromWireOptions {
  /** The time limit SCRIPT sources were compiled with (config scriptTimeoutMs). */
  readonly scriptTimeoutMs: number;
}

function policyFromWire(w: PolicyWire, opts: FromWireOptions): CompiledPolicy {
  const src = w.source;
  const source: CompiledIpSource = { ...src, script: src.scriptSource === undefined ? null : compileScriptSource(src.scriptSource, opts.scriptTimeoutMs) };
  return {
    ...w,
    trie: IpTrie.fromWire(w.trie),
    entryText: new JoinedEntryTexts(w.entryText),
    source,
    endpoint: w.endpoint === null ? null : compileEndpointPattern(w.endpoint),
  };
}

function pipelineFromWire(w: PipelineWire | null, opts: FromWireOptions): CompiledPipeline | null {
  return w === null ? null : { proxyWide: w.proxyWide.map((p) => policyFromWire(p, opts)), endpoint: w.endpoint.map((p) => policyFromWire(p, opts)) };
}

/**
 * The Snapshot `w` describes. Throws if it cannot be rebuilt (it was compiled from the same
 * sources by the same code, so that is a bug, and the caller keeps the snapshot in force).
 */
export function snapshotFromWire(w: SnapshotWire, opts: FromWireOptions): Snapshot {
  const proxies: CompiledProxy[] = w.proxies.map((p) => ({
    ...p,
    request: pipelineFromWire(p.request, opts),
    response: pipelineFromWire(p.response, opts),
    error: pipelineFromWire(p.error, opts),
  }));
  const routes = new RouteTable(proxies.map((p) => ({ basePath: p.basePath, hosts: p.hosts, value: p })));
  return { revision: w.revision, environment: w.environment, routes, proxies, stats: w.stats, nextExpiry: w.nextExpiry };
}
