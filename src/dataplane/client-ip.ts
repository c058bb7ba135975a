/**
 * Client-IP resolution (policy.targetVariableForIP).
 *
 * HOT PATH for the default source. Security rules, each of which closes a known bypass:
 * - X-Forwarded-For is walked right to left, and only through hops the gateway trusts; the first
 *   untrusted address is the client. The leftmost entry is whatever the client typed, so it is never
 *   used unless every hop to its right is trusted.
 * - A non-IP element met during the walk ("unknown", "1.2.3.4:80", garbage) makes the address
 *   undeterminable: guessing past it would let a client smuggle an address in.
 * - Header/parameter/body/script sources are believed only from a trusted peer, unless the policy
 *   opts out explicitly (trustUntrustedPeers); otherwise the socket address is used.
 * - Resolution reads the headers as received, before hop-by-hop stripping, so
 *   `Connection: X-Forwarded-For` cannot hide a hop.
 */
import type { IncomingMessage } from 'node:http';
import { FAMILY_INVALID, formatIp, parseClientIp, type IpFamily } from '../policy/ip-address.js';
import { IpSourceKind, type CompiledIpSource } from '../policy/snapshot.js';
import { extractJsonString } from './json-path.js';

/** proxy-addr's compiled trust function: (address, hop index) → trusted. */
export type TrustFn = (addr: string, i: number) => boolean;

/** Distinct addresses remembered by a memoised trust function before it starts over. */
const TRUST_MEMO_MAX = 4096;

/**
 * proxy-addr's list-based trust ignores the hop index and re-parses the address with ipaddr.js on
 * every call; a gateway sees the same few peer addresses over and over, so the answers are
 * remembered. The memo is bounded (cleared when full), so addresses chosen by a client (X-Forwarded-For
 * elements) can only make it start over, never grow it.
 */
export function memoTrust(trust: TrustFn): TrustFn {
  let memo = new Map<string, boolean>();
  return (addr: string, i: number): boolean => {
    const known = memo.get(addr);
    if (known !== undefined) return known;
    const answer = trust(addr, i);
    if (memo.size >= TRUST_MEMO_MAX) memo = new Map();
    memo.set(addr, answer);
    return answer;
  };
}

export class ResolvedIp {
  family: IpFamily = FAMILY_INVALID;
  /** The address as it appeared (trimmed), for messages. */
  text = '';
  /** socket, xff, header, parameter, body, context, script. */
  label = '';
  /** Why the address is undeterminable, when family is 0. */
  reason = '';
  readonly words = new Uint32Array(4);

  fail(label: string, reason: string): this {
    this.family = FAMILY_INVALID;
    this.label = label;
    this.reason = reason;
    return this;
  }

  /** Canonical text (IPv4-mapped shown as IPv4), for faults and logs. */
  display(): string {
    return this.family === FAMILY_INVALID ? this.text : formatIp(this.family, this.words);
  }
}

/** Parse `text` as the client address into `out`, or mark it undeterminable. */
function accept(out: ResolvedIp, text: string, label: string): ResolvedIp {
  const fam = parseClientIp(text, out.words);
  out.text = text;
  out.label = label;
  if (fam === FAMILY_INVALID) {
    out.family = FAMILY_INVALID;
    out.reason = `${label} value ${JSON.stringify(text.length > 64 ? text.slice(0, 64) + '...' : text)} is not an IP address`;
  } else {
    out.family = fam;
    out.reason = '';
  }
  return out;
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * A field value without the optional whitespace around it (RFC 9110 §5.6.3: space and tab only).
 * Not String#trim, which also strips NBSP and other Unicode spaces: a value the X-Forwarded-For
 * walk rejects must not pass as a HEADER source.
 */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isSpace(s.charCodeAt(a))) a++;
  while (b > a && isSpace(s.charCodeAt(b - 1))) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/** Why a SCRIPT source failed. A script may throw anything, null and undefined included. */
function scriptFailure(err: unknown): string {
  const e = typeof err === 'object' && err !== null ? (err as { code?: unknown; message?: unknown }) : null;
  if (e?.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return 'script timed out';
  return `script threw: ${String(e !== null && e.message !== undefined ? e.message : err)}`;
}

/**
 * HOT PATH. Socket address, then X-Forwarded-For right to left through trusted hops.
 * `xff` is Node's joined header value: repeated header lines arrive as one comma-separated list in
 * their original order, which is exactly the list semantics RFC 9110 §5.3 gives them.
 */
export function resolveDefault(out: ResolvedIp, remoteAddress: string | undefined, xff: string | undefined, trust: TrustFn): ResolvedIp {
  if (remoteAddress === undefined) return out.fail('socket', 'the connection has no peer address');
  accept(out, remoteAddress, 'socket');
  if (out.family === FAMILY_INVALID || xff === undefined || !trust(remoteAddress, 0)) return out;
  let hop = 1;
  let end = xff.length;
  while (end > 0) {
    let start = xff.lastIndexOf(',', end - 1) + 1;
    let stop = end;
    end = start - 1;
    while (start < stop && isSpace(xff.charCodeAt(start))) start++;
    while (stop > start && isSpace(xff.charCodeAt(stop - 1))) stop--;
    if (start === stop) continue; // empty element: skipped (RFC 9110 §5.6.1 allows empty list elements)
    const element = xff.slice(start, stop);
    // Read the family from accept()'s result: TS would otherwise keep the narrowing from above.
    if (accept(out, element, 'xff').family === FAMILY_INVALID) return out;
    if (!trust(element, hop)) return out;
    hop++;
  }
  // Every hop was trusted: the leftmost address is the client.
  return out;
}

/** Counts header lines named `lname` in rawHeaders; returns the value when there is exactly one. */
function singleHeader(raw: readonly string[], lname: string): string | null | undefined {
  let found: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === lname.length && name.toLowerCase() === lname) {
      if (found !== undefined) return null;
      found = raw[i + 1]!;
    }
  }
  return found;
}

/** Exactly one occurrence of `name` in the query string; null when repeated, undefined when absent. */
export function singleParam(search: string, name: string): string | null | undefined {
  if (search.length < 2) return undefined;
  let found: string | undefined;
  let i = 1;
  while (i < search.length) {
    let amp = search.indexOf('&', i);
    if (amp === -1) amp = search.length;
    const eq = search.indexOf('=', i);
    const keyEnd = eq !== -1 && eq < amp ? eq : amp;
    let key = search.slice(i, keyEnd);
    if (key.indexOf('%') !== -1 || key.indexOf('+') !== -1) {
      try {
        key = decodeURIComponent(key.replace(/\+/g, ' '));
      } catch {
        key = '';
      }
    }
    if (key === name) {
      if (found !== undefined) return null;
      const raw = keyEnd < amp ? search.slice(keyEnd + 1, amp) : '';
      try {
        found = decodeURIComponent(raw.replace(/\+/g, ' '));
      } catch {
        found = '\u0000invalid';
      }
    }
    i = amp + 1;
  }
  return found;
}

function queryObject(search: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  for (const [k, v] of new URLSearchParams(search)) {
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

export interface ResolveInput {
  readonly req: IncomingMessage;
  readonly search: string;
  readonly body: Buffer | null;
  /** Whether the socket peer is a trusted proxy (computed once per request by the caller). */
  readonly peerTrusted: boolean;
}

/** Resolve a non-default source (the caller resolves the default one). Untrusted peers fall back to their socket address. */
export function resolveSource(src: CompiledIpSource, input: ResolveInput, out: ResolvedIp): ResolvedIp {
  const req = input.req;
  if (src.kind === IpSourceKind.RemoteAddr) {
    const ra = req.socket.remoteAddress;
    return ra === undefined ? out.fail('context', 'the connection has no peer address') : accept(out, ra, 'context');
  }
  if (!input.peerTrusted && !src.trustUntrustedPeers) {
    const ra = req.socket.remoteAddress;
    return ra === undefined ? out.fail('socket', 'the connection has no peer address') : accept(out, ra, 'socket');
  }
  switch (src.kind) {
    case IpSourceKind.Header: {
      const v = singleHeader(req.rawHeaders, src.name);
      if (v === undefined) return out.fail('header', `header ${src.name} is missing`);
      if (v === null) return out.fail('header', `header ${src.name} was sent more than once`);
      return accept(out, trimOws(v), 'header');
    }
    case IpSourceKind.Parameter: {
      const v = singleParam(input.search, src.name);
      if (v === undefined) return out.fail('parameter', `query parameter ${src.name} is missing`);
      if (v === null) return out.fail('parameter', `query parameter ${src.name} was sent more than once`);
      return accept(out, v, 'parameter');
    }
    case IpSourceKind.Body: {
      if (input.body === null) return out.fail('body', 'the request has no body');
      const ct = req.headers['content-type'];
      if (ct === undefined || !isJsonContentType(ct)) return out.fail('body', 'the body is not JSON (content-type)');
      const r = extractJsonString(input.body, src.bodyPath);
      if (typeof r !== 'string') return out.fail('body', r.reason);
      return accept(out, r, 'body');
    }
    case IpSourceKind.Script: {
      let v: unknown;
      try {
        v = src.script!({ headers: req.headers, query: queryObject(input.search), remoteAddress: req.socket.remoteAddress ?? '' });
      } catch (err) {
        return out.fail('script', scriptFailure(err));
      }
      if (typeof v !== 'string') return out.fail('script', 'script did not return a string');
      return accept(out, trimOws(v), 'script');
    }
    default:
      // The default source is resolved (once) by the caller, never here; anything else fails closed.
      return out.fail('default', 'unsupported client IP source');
  }
}

function isJsonContentType(ct: string): boolean {
  const semi = ct.indexOf(';');
  const mt = (semi === -1 ? ct : ct.slice(0, semi)).trim().toLowerCase();
  return mt === 'application/json' || (mt.startsWith('application/') && mt.endsWith('+json'));
}
