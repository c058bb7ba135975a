/**
 * The compiled IR: the only thing the data plane and the control plane share.
 *
 * A Snapshot is built once per policy revision by compile.ts and never mutated afterwards. The data
 * plane holds one reference and replaces it in a single assignment on reload, so a request that
 * started under revision N finishes under revision N.
 */
import type { EndpointPattern } from './endpoint-pattern.js';
import type { IpTrie } from './ip-trie.js';
import type { RouteTable } from '../dataplane/route-table.js';

/** Where a policy reads the client address from. Compiled from targetVariableForIP. */
export enum IpSourceKind {
  /** Socket peer, then X-Forwarded-For walked right to left through trusted proxies. */
  Default = 0,
  /** The socket peer only (CONTEXT REMOTE_ADDR). */
  RemoteAddr = 1,
  Header = 2,
  Parameter = 3,
  Body = 4,
  Script = 5,
}

/** Runs a compiled SCRIPT source; returns the address text or undefined. Throws on error/timeout. */
export type ScriptRunner = (input: { headers: Record<string, string | string[] | undefined>; query: Record<string, string | string[]>; remoteAddress: string }) => unknown;

/** Read-only entry texts by id: only length and at() are used, so one string plus offsets can serve. */
export interface EntryTexts {
  readonly length: number;
  at(index: number): string | undefined;
}

export interface CompiledIpSource {
  readonly kind: IpSourceKind;
  /** Lower-cased header name (Header), parameter name (Parameter), or '' otherwise. */
  readonly name: string;
  /** Body path segments (Body), else empty. */
  readonly bodyPath: readonly string[];
  readonly script: ScriptRunner | null;
  /** The SCRIPT expression `script` was compiled from (so another thread can compile it again). */
  readonly scriptSource?: string | undefined;
  /** Believe a Header/Parameter/Body/Script value even from an untrusted socket peer. */
  readonly trustUntrustedPeers: boolean;
  /** Label used in logs and explain output: socket, xff, header, parameter, body, context, script. */
  readonly label: string;
}

export enum PolicyKind {
  Allow = 0,
  Block = 1,
}

/** HTTP methods as a bit mask so the endpoint check is a single AND. */
export const METHOD_BITS: Readonly<Record<string, number>> = {
  GET: 1,
  HEAD: 2,
  POST: 4,
  PUT: 8,
  DELETE: 16,
  PATCH: 32,
  OPTIONS: 64,
};
export const ALL_METHODS = 0x7fffffff;

export interface CompiledPolicy {
  readonly projectName: string;
  readonly proxyName: string;
  readonly name: string;
  readonly kind: PolicyKind;
  /** false = dry run: decide, log, count, but never block. */
  readonly enforce: boolean;
  readonly trie: IpTrie;
  /** Entry text by entry id, for logs and explain. A string[] fits; the traffic thread gets EntryTexts (wire.ts). */
  readonly entryText: EntryTexts;
  readonly source: CompiledIpSource;
  /** null for targetScope ALL. */
  readonly endpoint: EndpointPattern | null;
  /** Method mask for ENDPOINT scope; ALL_METHODS for ALL. */
  readonly methods: number;
  readonly rejectStatus: number;
  /** Overrides the default faultString prefix, or null. */
  readonly rejectMessage: string | null;
  /** Number of compiled CIDR prefixes (after range/wildcard decomposition). */
  readonly prefixCount: number;
  /** Earliest expiresAt among entries, epoch ms, or Infinity. The reloader recompiles then. */
  readonly nextExpiry: number;
}

/** Policies of one pipeline: proxy-wide ones first, then endpoint ones, each in `order`. */
export interface CompiledPipeline {
  readonly proxyWide: readonly CompiledPolicy[];
  readonly endpoint: readonly CompiledPolicy[];
}

export interface CompiledUpstream {
  /** scheme://host:port, the undici pool key. */
  readonly origin: string;
  /** Path prefix of the upstream URL without trailing slash ('' for none). */
  readonly pathPrefix: string;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
}

export interface CompiledProxy {
  readonly projectName: string;
  readonly name: string;
  readonly basePath: string;
  readonly hosts: readonly string[];
  readonly upstream: CompiledUpstream;
  /** null when the pipeline has no active policy, so the hot path skips it. */
  readonly request: CompiledPipeline | null;
  readonly response: CompiledPipeline | null;
  readonly error: CompiledPipeline | null;
  /** True when some policy reads the client address from the JSON body. */
  readonly needsBody: boolean;
  /** Position in Snapshot.proxies; the data plane indexes its upstream pools with it. */
  readonly index: number;
}

export interface SnapshotStats {
  readonly proxies: number;
  readonly policies: number;
  readonly entries: number;
  readonly prefixes: number;
  readonly trieNodes: number;
  readonly trieBytes: number;
  readonly compileMs: number;
}

export interface Snapshot {
  readonly revision: number;
  readonly environment: string;
  readonly routes: RouteTable<CompiledProxy>;
  readonly proxies: readonly CompiledProxy[];
  readonly stats: SnapshotStats;
  /** Earliest entry expiry across all policies (epoch ms), or Infinity. */
  readonly nextExpiry: number;
}
