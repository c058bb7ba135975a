/**
 * The API-proxy route table: which proxy serves a (Host, canonical path) pair.
 *
 * Rules:
 *  - basePath prefix on a path-segment boundary, longest wins: "/echo" serves "/echo", "/echo/"
 *    and "/echo/x" but not "/echoes"; "/api/v1" beats "/api"; "/" serves everything.
 *  - hosts: empty = any host. Otherwise case-insensitive exact names or a leading wildcard
 *    "*.example.com" (a.example.com, a.b.example.com; not example.com). The Host port and one
 *    trailing dot ("example.com.") are ignored. A route with hosts never matches a request whose
 *    Host is absent or doesn't match; at the same basePath it beats the host-less route. If the
 *    longest basePath has no route for the Host, shorter basePaths are tried.
 *  - Two routes with the same basePath whose host sets overlap (both host-less, the same name,
 *    a name and a wildcard covering it, or nested wildcards) are a configuration error, so at
 *    most one route can ever match a given (Host, basePath).
 *
 * Everything is indexed in the constructor. Per request (HOT PATH) match() walks the path once
 * with charCodeAt, hashing every "/"-bounded prefix on the fly and probing a Map keyed by that
 * hash (verified with startsWith), so it allocates nothing for the path; the Host is normalised
 * lazily, only if a candidate basePath has host-specific routes.
 */
import { canonicalizeTarget } from './canonical-path.js';

export interface RouteInput<T> {
  basePath: string;
  hosts: readonly string[];
  value: T;
}

export interface Route<T> {
  readonly value: T;
  readonly basePath: string;
  readonly basePathLength: number;
}

/** The routes sharing one basePath. */
interface Bucket<T> {
  readonly basePath: string;
  /** Exact lowercase host name → route. */
  readonly exact: Map<string, Route<T>>;
  /** Wildcard routes: suffix including its leading dot (".example.com"). */
  readonly wildcards: { suffix: string; route: Route<T> }[];
  /** The host-less route. */
  any: Route<T> | null;
  /** Next bucket whose basePath has the same hash (collision chain). */
  next: Bucket<T> | null;
}

const SLASH = 0x2f;
const COLON = 0x3a;
const DOT = 0x2e;

// FNV-1a over UTF-16 code units, truncated to 30 bits so the value stays a V8 small integer
// (no heap number per Map probe).
const HASH_SEED = 0x811c9dc5 & 0x3fffffff;
const HASH_MASK = 0x3fffffff;

function hashStep(h: number, c: number): number {
  return Math.imul(h ^ c, 0x01000193) & HASH_MASK;
}

/** @internal The hash match() computes for a path prefix; exported for tests (collision handling). */
export function pathPrefixHash(s: string): number {
  let h = HASH_SEED;
  for (let i = 0; i < s.length; i++) h = hashStep(h, s.charCodeAt(i));
  return h;
}

/** Why a basePath is invalid, or null. */
function basePathError(basePath: unknown): string | null {
  if (typeof basePath !== 'string' || basePath.length === 0 || basePath.charCodeAt(0) !== SLASH) return 'must start with "/"';
  if (basePath.length > 1 && basePath.charCodeAt(basePath.length - 1) === SLASH) return 'must not end with "/"';
  const c = canonicalizeTarget(basePath);
  if (!c.ok) return c.reason;
  if (c.search !== '') return 'must not contain "?"';
  if (c.path !== basePath) return `must be in canonical form (it would be ${JSON.stringify(c.path)})`;
  return null;
}

function isLabelChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
}

/** A lowercase dotted name with no empty labels. */
function validName(s: string): boolean {
  if (s.length === 0) return false;
  let labelLen = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      if (labelLen === 0) return false;
      labelLen = 0;
    } else if (isLabelChar(c)) {
      labelLen++;
    } else {
      return false;
    }
  }
  return labelLen > 0;
}

function validIpv6Literal(s: string): boolean {
  if (s.length < 4 || s.charCodeAt(0) !== 0x5b || s.charCodeAt(s.length - 1) !== 0x5d) return false;
  let colons = 0;
  for (let i = 1; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c === COLON) colons++;
    else if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || c === DOT)) return false;
  }
  return colons >= 2;
}

/** Normalise a configured host entry: lowercase, one trailing dot dropped. Throws a reason string. */
function normalizeConfiguredHost(host: unknown): { exact: string } | { suffix: string } | string {
  if (typeof host !== 'string' || host.length === 0) return 'a host must be a non-empty string';
  let h = host.toLowerCase();
  if (h.length > 1 && h.charCodeAt(h.length - 1) === DOT) h = h.slice(0, -1);
  if (h.startsWith('*.')) {
    const suffix = h.slice(1);
    if (!validName(suffix.slice(1))) return `invalid wildcard host ${JSON.stringify(host)}`;
    return { suffix };
  }
  if (h.charCodeAt(0) === 0x5b) return validIpv6Literal(h) ? { exact: h } : `invalid IPv6 host ${JSON.stringify(host)}`;
  if (h.includes(':')) return `host ${JSON.stringify(host)} must not include a port`;
  if (!validName(h)) return `invalid host ${JSON.stringify(host)} (use a name such as api.example.com, or *.example.com)`;
  return { exact: h };
}

/** Do two normalised host entries admit a common request host? */
function hostsOverlap(a: { exact: string } | { suffix: string }, b: { exact: string } | { suffix: string }): boolean {
  if ('exact' in a) {
    if ('exact' in b) return a.exact === b.exact;
    return a.exact.length > b.suffix.length && a.exact.endsWith(b.suffix);
  }
  if ('exact' in b) return b.exact.length > a.suffix.length && b.exact.endsWith(a.suffix);
  return a.suffix.endsWith(b.suffix) || b.suffix.endsWith(a.suffix);
}

function describeHost(h: { exact: string } | { suffix: string }): string {
  return 'exact' in h ? h.exact : `*${h.suffix}`;
}

/**
 * Per request: the Host header reduced to the lowercase host name (port and one trailing dot
 * removed), or null when absent/empty. Allocates only when something must be removed or
 * lowercased.
 */
function normalizeRequestHost(host: string | undefined): string | null {
  if (host === undefined) return null;
  const len = host.length;
  let end = len;
  let upper = false;
  if (len > 0 && host.charCodeAt(0) === 0x5b) {
    // [IPv6]:port
    const close = host.indexOf(']');
    if (close < 0) return null;
    end = close + 1;
    for (let i = 1; i < close; i++) {
      const c = host.charCodeAt(i);
      if (c >= 0x41 && c <= 0x5a) upper = true;
    }
  } else {
    for (let i = 0; i < len; i++) {
      const c = host.charCodeAt(i);
      if (c === COLON) {
        end = i;
        break;
      }
      if (c >= 0x41 && c <= 0x5a) upper = true;
    }
    if (end > 1 && host.charCodeAt(end - 1) === DOT) end--; // "example.com." is example.com
  }
  if (end === 0) return null;
  const name = end === len ? host : host.slice(0, end);
  return upper ? name.toLowerCase() : name;
}

/** The route of one bucket for a normalised host (null: no host). HOT PATH. */
function pickRoute<T>(bucket: Bucket<T>, host: string | null): Route<T> | null {
  if (host !== null) {
    if (bucket.exact.size > 0) {
      const r = bucket.exact.get(host);
      if (r !== undefined) return r;
    }
    const w = bucket.wildcards;
    for (let i = 0; i < w.length; i++) {
      const e = w[i]!;
      if (host.length > e.suffix.length && host.endsWith(e.suffix)) return e.route;
    }
  }
  return bucket.any;
}

export class RouteTable<T> {
  /** basePath hash → bucket chain; the root "/" is kept apart in #root. */
  readonly #byHash = new Map<number, Bucket<T>>();
  #root: Bucket<T> | null = null;

  /** Throws TypeError naming the basePath on a duplicate (same basePath with an overlapping host set) or invalid basePath. */
  constructor(routes: readonly RouteInput<T>[]) {
    const byPath = new Map<string, { bucket: Bucket<T>; hostSets: ({ exact: string } | { suffix: string })[][] }>();
    for (const input of routes) {
      const basePath = input.basePath;
      const why = basePathError(basePath);
      if (why !== null) throw new TypeError(`Invalid basePath ${JSON.stringify(basePath)}: ${why}`);

      const hosts: ({ exact: string } | { suffix: string })[] = [];
      for (const raw of input.hosts ?? []) {
        const h = normalizeConfiguredHost(raw);
        if (typeof h === 'string') throw new TypeError(`Invalid hosts for basePath ${JSON.stringify(basePath)}: ${h}`);
        if (!hosts.some((x) => describeHost(x) === describeHost(h))) hosts.push(h);
      }

      let entry = byPath.get(basePath);
      if (entry === undefined) {
        entry = { bucket: { basePath, exact: new Map(), wildcards: [], any: null, next: null }, hostSets: [] };
        byPath.set(basePath, entry);
      }
      const route: Route<T> = Object.freeze({ value: input.value, basePath, basePathLength: basePath.length });
      const bucket = entry.bucket;

      if (hosts.length === 0) {
        if (bucket.any !== null) throw new TypeError(`Duplicate route for basePath ${JSON.stringify(basePath)}: two routes without hosts`);
        bucket.any = route;
        continue;
      }
      for (const other of entry.hostSets) {
        for (const a of hosts) {
          for (const b of other) {
            if (hostsOverlap(a, b)) {
              throw new TypeError(
                `Duplicate route for basePath ${JSON.stringify(basePath)}: hosts ${describeHost(a)} and ${describeHost(b)} overlap`,
              );
            }
          }
        }
      }
      entry.hostSets.push(hosts);
      for (const h of hosts) {
        if ('exact' in h) bucket.exact.set(h.exact, route);
        else bucket.wildcards.push({ suffix: h.suffix, route });
      }
    }

    for (const { bucket } of byPath.values()) {
      // Overlaps are rejected, so at most one wildcard can match; longest first is just tidy.
      bucket.wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
      if (bucket.basePath === '/') {
        this.#root = bucket;
        continue;
      }
      const h = pathPrefixHash(bucket.basePath);
      bucket.next = this.#byHash.get(h) ?? null;
      this.#byHash.set(h, bucket);
    }
  }

  /**
   * HOT PATH. host: the raw Host header (may include :port, may be an [IPv6]:port literal, may be
   * undefined). path: canonical path.
   *
   * One forward pass over the path: at every segment boundary (each "/" after the first char, and
   * the end) the running hash of the prefix is looked up; a hit is verified with startsWith. As
   * the pass moves forward, each accepted match is longer than the previous one, so the last one
   * wins. The root route is the fallback.
   */
  match(host: string | undefined, path: string): Route<T> | null {
    const len = path.length;
    if (len === 0 || path.charCodeAt(0) !== SLASH) return null;
    let best: Route<T> | null = null;
    let hostKey: string | null = null;
    let hostDone = false;
    const byHash = this.#byHash;
    if (byHash.size > 0) {
      let h = HASH_SEED;
      for (let i = 0; i <= len; i++) {
        const c = i < len ? path.charCodeAt(i) : SLASH;
        if (c === SLASH && i > 0) {
          let bucket: Bucket<T> | null = byHash.get(h) ?? null;
          while (bucket !== null) {
            if (bucket.basePath.length === i && path.startsWith(bucket.basePath)) {
              if (!hostDone && (bucket.exact.size > 0 || bucket.wildcards.length > 0)) {
                hostKey = normalizeRequestHost(host);
                hostDone = true;
              }
              const r = pickRoute(bucket, hostKey);
              if (r !== null) best = r;
              break;
            }
            bucket = bucket.next;
          }
        }
        if (i < len) h = hashStep(h, c);
      }
    }
    if (best !== null) return best;
    const root = this.#root;
    if (root === null) return null;
    if (!hostDone && (root.exact.size > 0 || root.wildcards.length > 0)) hostKey = normalizeRequestHost(host);
    return pickRoute(root, hostKey);
  }
}

/** The path relative to the route's basePath: "/echo/a" under "/echo" → "/a"; "/echo" → "/". */
export function relativePath(route: Route<unknown>, path: string): string {
  const n = route.basePathLength;
  if (n === 1) return path; // root basePath
  if (path.length <= n) return '/';
  return path.slice(n);
}
