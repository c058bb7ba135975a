/**
 * targetEndpoint patterns: which requests an ENDPOINT-scoped policy applies to.
 *
 * A pattern is written relative to the API proxy's basePath and matched against the canonical
 * path (see dataplane/canonical-path.ts) relative to that basePath:
 *
 *   /orders          literal segments: exact but for ASCII case; a trailing slash on the request
 *                    is tolerated ("/orders/" matches), more segments are not ("/orders/1").
 *   /orders/{id}     {name}: exactly one non-empty segment.
 *   /orders/*        *: exactly one non-empty segment (an anonymous {name}).
 *   /orders/**       final ** : zero or more segments ("/orders", "/orders/", "/orders/1/items").
 *   /                the root only.
 *   /**              everything.
 *
 * Invalid: not starting with "/", empty segments ("//", or a trailing "/"), "." / ".." segments,
 * "**" anywhere but the end, "*" or braces inside a longer segment, "{}", unbalanced braces,
 * parameter names other than [A-Za-z0-9_-]+ or repeated, and '%', '?', '#', '\', ';', whitespace,
 * control or non-ASCII characters (canonical paths never contain the raw forms, and a pattern is
 * compared with the canonical path literally, so a '%' could never mean what the author intended).
 * Characters a canonical path always escapes (double quote, < > [ ] ^ | and the backquote; see
 * policy/path-spelling.ts) are written raw in a pattern and compared in their escaped spelling.
 *
 * WHY case does not count: some backends route without regard to case (ASP.NET, IIS, anything on a
 * case-insensitive file system), so "/ADMIN" would reach the endpoint a pattern "/admin" guards.
 * An endpoint policy only ever restricts, so covering more spellings can only restrict more.
 *
 * Compilation allocates; matching (per request) walks the path with indexOf/startsWith and never
 * allocates.
 */
import { canonicalSpelling } from './path-spelling.js';

export interface EndpointPattern {
  readonly source: string;
  /** HOT PATH: does this canonical path (relative to the proxy basePath, always starting with "/") match? */
  matches(relPath: string): boolean;
}

interface Parsed {
  /** One entry per segment: the literal text, or null for a one-segment wildcard ({name} or *). */
  segments: (string | null)[];
  /** Ends with "/**". */
  globstar: boolean;
}

function isParamNameChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2d;
}

/** Every "{" is closed by a "}" before the next "{" (no nesting), and no stray "}". */
function bracesBalanced(seg: string): boolean {
  let open = false;
  for (let i = 0; i < seg.length; i++) {
    const c = seg.charCodeAt(i);
    if (c === 0x7b) {
      if (open) return false;
      open = true;
    } else if (c === 0x7d) {
      if (!open) return false;
      open = false;
    }
  }
  return !open;
}

/** Parse and validate; a string is the reason the pattern is invalid. Compile time only. */
function parse(pattern: string): Parsed | string {
  if (typeof pattern !== 'string') return 'must be a string';
  if (pattern.length === 0) return 'must not be empty';
  if (pattern.charCodeAt(0) !== 0x2f) return 'must start with "/"';

  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charCodeAt(i);
    if (c === 0x25) return 'percent-encoding ("%") is not allowed; write the decoded character or use {param}';
    if (c === 0x3f) return '"?" is not allowed (patterns match the path, not the query)';
    if (c === 0x23) return '"#" is not allowed';
    if (c === 0x5c) return 'backslash is not allowed';
    if (c === 0x3b) return '";" is not allowed (requests with path parameters are rejected, so it could never match)';
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c) return 'whitespace is not allowed';
    if (c < 0x20 || c === 0x7f) return 'control characters are not allowed';
    if (c > 0x7f) return 'non-ASCII characters are not allowed';
  }

  if (pattern === '/') return { segments: [], globstar: false };

  const raw = pattern.slice(1).split('/');
  const segments: (string | null)[] = [];
  const names = new Set<string>();
  let globstar = false;
  for (let k = 0; k < raw.length; k++) {
    const seg = raw[k]!;
    const last = k === raw.length - 1;
    if (seg === '') return last ? 'trailing slash is not allowed (a pattern already matches with or without one)' : 'empty segment ("//") is not allowed';
    if (seg === '.' || seg === '..') return '"." and ".." segments are not allowed';
    if (seg === '**') {
      if (!last) return '"**" is only allowed as the final segment';
      globstar = true;
      continue;
    }
    if (seg === '*') {
      segments.push(null);
      continue;
    }
    if (seg.includes('*')) return '"*" must be a whole segment ("*" or a final "**")';
    const open = seg.indexOf('{');
    const close = seg.indexOf('}');
    if (open < 0 && close < 0) {
      // Compared with the canonical path, so spelled as it spells them ('"' is "%22"); lower case,
      // as matches() folds the path's ASCII letters.
      segments.push(canonicalSpelling(seg).toLowerCase());
      continue;
    }
    if (open !== 0 || close !== seg.length - 1 || seg.lastIndexOf('{') !== 0) {
      return bracesBalanced(seg) ? `a {parameter} must be a whole segment, not part of "${seg}"` : `unbalanced braces in segment "${seg}"`;
    }
    const name = seg.slice(1, -1);
    if (name === '') return 'empty parameter name "{}"';
    for (let i = 0; i < name.length; i++) {
      if (!isParamNameChar(name.charCodeAt(i))) return `invalid parameter name "${name}" (use letters, digits, "_" or "-")`;
    }
    if (names.has(name)) return `duplicate parameter name "${name}"`;
    names.add(name);
    segments.push(null);
  }
  return { segments, globstar };
}

/** HOT PATH. relPath[pos, pos + lit.length) equals `lit` (lower case) but for ASCII case. */
function equalsFolded(relPath: string, pos: number, lit: string): boolean {
  if (relPath.startsWith(lit, pos)) return true; // the common spelling: already lower case
  for (let i = 0; i < lit.length; i++) {
    let c = relPath.charCodeAt(pos + i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lit.charCodeAt(i)) return false;
  }
  return true;
}

class CompiledEndpointPattern implements EndpointPattern {
  readonly source: string;
  readonly #segments: readonly (string | null)[];
  readonly #globstar: boolean;

  constructor(source: string, parsed: Parsed) {
    this.source = source;
    this.#segments = parsed.segments;
    this.#globstar = parsed.globstar;
  }

  /** HOT PATH: segment walk with indexOf/startsWith; no regex, no split, no allocation. */
  matches(relPath: string): boolean {
    const segments = this.#segments;
    const n = segments.length;
    const len = relPath.length;
    if (len === 0 || relPath.charCodeAt(0) !== 0x2f) return false;
    if (n === 0) return this.#globstar || len === 1; // "/**" matches everything, "/" only the root
    let pos = 1; // start of the current path segment
    let end = 0; // end (exclusive) of the last matched segment
    for (let k = 0; k < n; k++) {
      if (pos > len) return false; // the path ran out of segments
      end = relPath.indexOf('/', pos);
      if (end < 0) end = len;
      const segLen = end - pos;
      if (segLen === 0) return false; // empty segment (end of path, or "//")
      const lit = segments[k]!;
      if (lit !== null && (lit.length !== segLen || !equalsFolded(relPath, pos, lit))) return false;
      pos = end + 1;
    }
    // All pattern segments matched. "**" takes whatever follows (nothing, "/", or more segments);
    // otherwise only the end of the path or a single trailing slash may follow.
    if (this.#globstar) return true;
    return end === len || end === len - 1;
  }
}

/** Compile a targetEndpoint pattern. Throws TypeError(`Invalid endpoint pattern "${p}": <why>`) on a bad pattern. */
export function compileEndpointPattern(pattern: string): EndpointPattern {
  const parsed = parse(pattern);
  if (typeof parsed === 'string') throw new TypeError(`Invalid endpoint pattern "${String(pattern)}": ${parsed}`);
  return new CompiledEndpointPattern(pattern, parsed);
}

/** Same validation without throwing: null if valid, else the reason. */
export function endpointPatternError(pattern: string): string | null {
  const parsed = parse(pattern);
  return typeof parsed === 'string' ? parsed : null;
}
