/**
 * Request-target canonicalisation.
 *
 * The gateway evaluates policies on the canonical path AND forwards that same canonical path
 * upstream, so an encoding trick (`%2e%2e`, `//`, `/./`, lowercase escapes, ...) can never make
 * the gateway check one path while the backend serves another: whatever the backend receives is
 * exactly what the policies saw, already free of anything a backend could normalise differently.
 *
 * Accepted request-target forms (RFC 9112 §3.2):
 *  - origin-form   `/a/b?x=1`                                  (§3.2.1) — authority is null;
 *  - absolute-form `http://host:port/a/b?x=1` (http / https)   (§3.2.2) — authority is returned,
 *    lowercased, so the caller can compare it with Host (RFC 9112 §3.2.2: a server MUST ignore
 *    Host in favour of the absolute-form authority, the caller decides how).
 * Rejected: authority-form (§3.2.3, CONNECT), asterisk-form (§3.2.4, OPTIONS *), relative
 * references, the empty string, anything with a fragment.
 *
 * Path canonicalisation (applied once; the result is a fixed point):
 *  1. every byte gets exactly one spelling. A character that may stand in a path segment as itself
 *     (RFC 3986 pchar: unreserved, the sub-delims but ";", ":" and "@") is always written as
 *     itself, so its escapes are decoded (`%40` → `@`, `%2e` → `.`). Printable characters a URI
 *     may not carry raw (`" < > [ ] ^ \` { | }`) are always escaped, so a raw one is encoded
 *     (`"` → `%22`). Every other escape (space, `%`, `?`, `#`, non-ASCII bytes) is kept, with its
 *     hex digits uppercased (§6.2.2.1). WHY decode reserved characters, which §6.2.2.2 leaves
 *     alone: backends decode the path before routing (WSGI's PATH_INFO, Go's net/http, servlet
 *     containers), so `/users/%40me` is served as `/users/@me`. Kept as it came, it would slip
 *     past a pattern written `/users/@me` and reach that very endpoint;
 *  2. remove dot segments (§5.2.4 remove_dot_segments; §6.2.2.3), including dots that only
 *     appeared after step 1 (`/a/%2e%2e/b` → `/b`); climbing above the root clamps at `/`;
 *  3. merge runs of `/` (`//a///b` → `/a/b`). A trailing slash is kept.
 * Step 2 runs on the segment list before step 3 merges empty segments, exactly as §5.2.4 would
 * on the raw string: `/a//../b` → `/a/b` (the `..` removes the empty segment between `//`).
 *
 * This module is on the HOT PATH: it runs once per request. It uses charCodeAt loops only
 * (no regex, no closures) and allocates only when the path actually needs rewriting; a path that
 * is already canonical is returned as a slice of the input (the input itself for a bare
 * origin-form target without a query).
 */
import { ESCAPED_ALWAYS, escapeByte } from '../policy/path-spelling.js';

export type CanonicalTarget =
  | { ok: true; path: string; search: string; authority: string | null }
  | { ok: false; reason: string };

type Rejected = Extract<CanonicalTarget, { ok: false }>;

/** Rejections are preallocated: a rejected request costs no allocation here. */
function rejection(reason: string): Rejected {
  return Object.freeze({ ok: false as const, reason });
}

const R_EMPTY = rejection('empty request-target');
const R_ASTERISK = rejection('asterisk-form request-target ("*") is not accepted');
const R_AUTHORITY_FORM = rejection('authority-form request-target (host:port) is not accepted');
const R_SCHEME = rejection('absolute-form request-target must use the http or https scheme');
const R_RELATIVE = rejection('request-target must be origin-form ("/path") or absolute-form ("http://host/path")');
const R_AUTH_EMPTY = rejection('absolute-form request-target has an empty host');
const R_AUTH_USERINFO = rejection('absolute-form request-target must not contain userinfo ("user@")');
const R_AUTH_CHAR = rejection('absolute-form request-target has an invalid character in its authority');
const R_AUTH_PORT = rejection('absolute-form request-target has an invalid port');
const R_AUTH_IPV6 = rejection('absolute-form request-target has an invalid IPv6 literal');
const R_FRAGMENT = rejection('request-target must not contain a fragment ("#")');
const R_ENC_SLASH = rejection('encoded slash (%2F) in path');
const R_ENC_BACKSLASH = rejection('encoded backslash (%5C) in path');
const R_BACKSLASH = rejection('backslash in path');
const R_NUL = rejection('NUL byte (raw or %00) in request-target');
const R_CRLF = rejection('CR or LF (raw or %0D/%0A) in request-target');
const R_CTL = rejection('control character (raw or encoded) in path');
const R_SPACE = rejection('raw space in path');
const R_NON_ASCII = rejection('non-ASCII character in path');
const R_PCT = rejection('malformed percent-encoding in path');
// Servlet containers (Tomcat, Jetty, Spring) strip ";params" from segments and treat "..;" as "..",
// so "/admin;x" or "/a/..;/admin" would be checked here as one path and served there as another.
// "%3B" too: a container that decodes before it strips would see the same ";".
const R_SEMICOLON = rejection('path parameters (";", raw or %3B) are not accepted');

// Character codes.
const NUL = 0x00;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const HASH = 0x23; // '#'
const PERCENT = 0x25; // '%'
const DOT = 0x2e; // '.'
const SLASH = 0x2f; // '/'
const COLON = 0x3a; // ':'
const QUESTION = 0x3f; // '?'
const AT = 0x40; // '@'
const LBRACKET = 0x5b; // '['
const BACKSLASH = 0x5c; // '\'
const RBRACKET = 0x5d; // ']'
const SEMICOLON = 0x3b; // ';'
const DEL = 0x7f;

/** Value of one hex digit, or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  if (c >= 0x41 && c <= 0x46) return c - 0x37; // A-F
  if (c >= 0x61 && c <= 0x66) return c - 0x57; // a-f
  return -1;
}

// scanPath results: CLEAN and REWRITE, or an index into SCAN_REJECTIONS (>= 2).
const CLEAN = 0;
const REWRITE = 1;
const SCAN_REJECTIONS: readonly Rejected[] = [
  R_EMPTY, // 0, 1: unused slots so codes and indexes coincide
  R_EMPTY,
  R_FRAGMENT, // 2
  R_ENC_SLASH, // 3
  R_ENC_BACKSLASH, // 4
  R_BACKSLASH, // 5
  R_NUL, // 6
  R_CRLF, // 7
  R_CTL, // 8
  R_SPACE, // 9
  R_NON_ASCII, // 10
  R_PCT, // 11
  R_SEMICOLON, // 12
];
const E_FRAGMENT = 2;
const E_ENC_SLASH = 3;
const E_ENC_BACKSLASH = 4;
const E_BACKSLASH = 5;
const E_NUL = 6;
const E_CRLF = 7;
const E_CTL = 8;
const E_SPACE = 9;
const E_NON_ASCII = 10;
const E_PCT = 11;
const E_SEMICOLON = 12;
/** Table entries at or above this are a rejection: SCAN_REJECTIONS[entry - REJECT]. */
const REJECT = 16;

// What a raw character of the path means (ASCII; anything above is non-ASCII, rejected).
const RAW_PLAIN = 0;
const RAW_SLASH = 1;
const RAW_PERCENT = 2;
/** Valid only escaped: the rewrite encodes it. */
const RAW_ENCODE = 3;
const RAW_CLASS = new Uint8Array(128);
// What an escape "%XY" means, by its byte value.
/** Kept escaped (hex uppercased). */
const ESC_KEEP = 0;
/** Decoded: a pchar other than ";" (unreserved, sub-delims, ":", "@"). */
const ESC_DECODE = 1;
const ESC_CLASS = new Uint8Array(256);
{
  for (let c = 0; c < 0x20; c++) RAW_CLASS[c] = ESC_CLASS[c] = REJECT + E_CTL;
  RAW_CLASS[NUL] = ESC_CLASS[NUL] = REJECT + E_NUL;
  RAW_CLASS[CR] = RAW_CLASS[LF] = ESC_CLASS[CR] = ESC_CLASS[LF] = REJECT + E_CRLF;
  RAW_CLASS[DEL] = ESC_CLASS[DEL] = REJECT + E_CTL;
  RAW_CLASS[SPACE] = REJECT + E_SPACE;
  for (let c = SPACE + 1; c < DEL; c++) ESC_CLASS[c] = ESC_DECODE;
  for (let k = 0; k < ESCAPED_ALWAYS.length; k++) {
    const c = ESCAPED_ALWAYS.charCodeAt(k);
    RAW_CLASS[c] = RAW_ENCODE;
    ESC_CLASS[c] = ESC_KEEP;
  }
  // Structural: decoding would change what the target says.
  ESC_CLASS[PERCENT] = ESC_CLASS[QUESTION] = ESC_CLASS[HASH] = ESC_KEEP;
  RAW_CLASS[SLASH] = RAW_SLASH;
  ESC_CLASS[SLASH] = REJECT + E_ENC_SLASH;
  RAW_CLASS[BACKSLASH] = REJECT + E_BACKSLASH;
  ESC_CLASS[BACKSLASH] = REJECT + E_ENC_BACKSLASH;
  RAW_CLASS[PERCENT] = RAW_PERCENT;
  RAW_CLASS[HASH] = REJECT + E_FRAGMENT;
  RAW_CLASS[SEMICOLON] = REJECT + E_SEMICOLON;
  ESC_CLASS[SEMICOLON] = REJECT + E_SEMICOLON;
}

/**
 * HOT PATH. Validate s[start, end) (which starts with "/") and say whether canonicalisation would
 * change it. REWRITE is returned for exactly the cases the rewrite changes: an escape of a pchar
 * (decoded), a lowercase hex digit in a kept escape (§6.2.2.1), a raw character that is only valid
 * escaped (encoded), a "." or ".." segment (§5.2.4) or an empty segment other than the last ("//").
 */
function scanPath(s: string, start: number, end: number): number {
  let result = CLEAN;
  let segStart = start; // s[start] is the leading "/"
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    const k = c < 128 ? RAW_CLASS[c]! : REJECT + E_NON_ASCII;
    if (k === RAW_PLAIN) continue;
    if (k === RAW_SLASH) {
      if (i !== start) {
        const segLen = i - segStart;
        if (segLen === 0) result = REWRITE; // "//"
        else if (segLen <= 2 && s.charCodeAt(segStart) === DOT && (segLen === 1 || s.charCodeAt(segStart + 1) === DOT)) result = REWRITE;
      }
      segStart = i + 1;
    } else if (k === RAW_PERCENT) {
      if (i + 2 >= end) return E_PCT;
      const h1 = hexValue(s.charCodeAt(i + 1));
      const h2 = hexValue(s.charCodeAt(i + 2));
      if (h1 < 0 || h2 < 0) return E_PCT;
      const e = ESC_CLASS[(h1 << 4) | h2]!;
      if (e >= REJECT) return e - REJECT;
      if (e === ESC_DECODE) result = REWRITE;
      else if (s.charCodeAt(i + 1) >= 0x61 || s.charCodeAt(i + 2) >= 0x61) result = REWRITE; // lowercase a-f
      i += 2;
    } else if (k === RAW_ENCODE) {
      result = REWRITE;
    } else {
      return k - REJECT;
    }
  }
  // The last segment: a final "." or ".." is a dot segment too.
  const segLen = end - segStart;
  if (segLen >= 1 && segLen <= 2 && s.charCodeAt(segStart) === DOT && (segLen === 1 || s.charCodeAt(segStart + 1) === DOT)) result = REWRITE;
  return result;
}

/**
 * One path segment s[a, b) with every byte in its one spelling (step 1 above). Only called on
 * paths scanPath has validated and marked REWRITE.
 */
function normalizeSegment(s: string, a: number, b: number): string {
  let out = '';
  let copied = a;
  for (let i = a; i < b; i++) {
    const c = s.charCodeAt(i);
    if (c === PERCENT) {
      const v = (hexValue(s.charCodeAt(i + 1)) << 4) | hexValue(s.charCodeAt(i + 2));
      out += s.slice(copied, i) + (ESC_CLASS[v] === ESC_DECODE ? String.fromCharCode(v) : escapeByte(v));
      i += 2;
      copied = i + 1;
    } else if (RAW_CLASS[c] === RAW_ENCODE) {
      out += s.slice(copied, i) + escapeByte(c);
      copied = i + 1;
    }
  }
  if (copied === a) return s.slice(a, b);
  return out + s.slice(copied, b);
}

/**
 * Slow path (allocates): decode, remove dot segments (RFC 3986 §5.2.4, on whole segments, after
 * decoding so "%2e%2e" counts as ".."), then merge empty segments (repeated slashes).
 */
function rewritePath(s: string, start: number, end: number): string {
  const stack: string[] = [];
  let segStart = start + 1;
  for (let i = start + 1; i <= end; i++) {
    if (i < end && s.charCodeAt(i) !== SLASH) continue;
    const seg = normalizeSegment(s, segStart, i);
    const last = i === end;
    if (seg === '.') {
      // "/./" → "/"; a final "/." → "/" (§5.2.4 B).
      if (last) stack.push('');
    } else if (seg === '..') {
      // "/../" → "/" and drop the previous segment; above the root clamps (§5.2.4 C).
      stack.pop();
      if (last) stack.push('');
    } else {
      stack.push(seg);
    }
    segStart = i + 1;
  }
  let out = '';
  for (let k = 0; k < stack.length; k++) {
    const seg = stack[k]!;
    if (seg !== '') out += '/' + seg;
  }
  if (stack.length > 0 && stack[stack.length - 1] === '') out += '/'; // keep the trailing slash
  return out === '' ? '/' : out;
}

/** Length of "http://" / "https://" (case-insensitive, RFC 3986 §3.1) at the start of s, or 0. */
function schemeLength(s: string): number {
  if (s.length < 7) return 0;
  if ((s.charCodeAt(0) | 0x20) !== 0x68 /* h */) return 0;
  if ((s.charCodeAt(1) | 0x20) !== 0x74 /* t */) return 0;
  if ((s.charCodeAt(2) | 0x20) !== 0x74 /* t */) return 0;
  if ((s.charCodeAt(3) | 0x20) !== 0x70 /* p */) return 0;
  let i = 4;
  if ((s.charCodeAt(i) | 0x20) === 0x73 /* s */) i++;
  if (s.charCodeAt(i) !== COLON || s.charCodeAt(i + 1) !== SLASH || s.charCodeAt(i + 2) !== SLASH) return 0;
  return i + 3;
}

function isHostNameChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === DOT || c === 0x5f || c === 0x7e;
}

/** Port: 1-5 digits, <= 65535. */
function validPort(s: string, a: number, b: number): boolean {
  if (b <= a || b - a > 5) return false;
  let n = 0;
  for (let i = a; i < b; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
    n = n * 10 + (c - 0x30);
  }
  return n <= 65535;
}

/**
 * Validate an absolute-form authority s[a, b): reg-name or IPv4 (unreserved characters only; no
 * percent-encoding), or an IPv6 literal in brackets, optionally ":port". Userinfo is refused
 * (RFC 9110 §4.2.4: recipients SHOULD treat it as an error).
 */
function authorityError(s: string, a: number, b: number): Rejected | null {
  if (a === b) return R_AUTH_EMPTY;
  let i = a;
  if (s.charCodeAt(a) === LBRACKET) {
    i = a + 1;
    let colons = 0;
    for (; i < b; i++) {
      const c = s.charCodeAt(i);
      if (c === RBRACKET) break;
      if (c === COLON) colons++;
      else if (hexValue(c) < 0 && c !== DOT) return c === AT ? R_AUTH_USERINFO : R_AUTH_IPV6;
    }
    if (i >= b || colons < 2) return R_AUTH_IPV6;
    i++; // past "]"
  } else {
    for (; i < b; i++) {
      const c = s.charCodeAt(i);
      if (c === COLON) break;
      if (c === AT) return R_AUTH_USERINFO;
      if (!isHostNameChar(c)) return R_AUTH_CHAR;
    }
    if (i === a) return R_AUTH_EMPTY;
  }
  if (i === b) return null;
  if (s.charCodeAt(i) !== COLON) return R_AUTH_CHAR;
  for (let j = i + 1; j < b; j++) if (s.charCodeAt(j) === AT) return R_AUTH_USERINFO;
  return validPort(s, i + 1, b) ? null : R_AUTH_PORT;
}

function hasUpperAscii(s: string, a: number, b: number): boolean {
  for (let i = a; i < b; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return true;
  }
  return false;
}

/** Why a non-origin-form, non-absolute-form target was refused (off the hot path: a rejection). */
function classifyOther(target: string): Rejected {
  if (target === '*') return R_ASTERISK;
  if (target.indexOf('://') > 0) return R_SCHEME;
  if (target.indexOf('/') < 0 && target.indexOf(':') > 0) return R_AUTHORITY_FORM;
  return R_RELATIVE;
}

/**
 * HOT PATH. Canonicalise a raw HTTP request-target (req.url as Node gives it).
 *
 * Returns the canonical path (always starting with "/"), the query with its leading "?" ("" if
 * none, passed through unchanged) and, for absolute-form, the lowercased "host[:port]".
 */
export function canonicalizeTarget(target: string): CanonicalTarget {
  const len = target.length;
  if (len === 0) return R_EMPTY;

  let pathStart: number;
  let authority: string | null = null;
  if (target.charCodeAt(0) === SLASH) {
    // origin-form (RFC 9112 §3.2.1).
    pathStart = 0;
  } else {
    // absolute-form (RFC 9112 §3.2.2), http or https only.
    const authStart = schemeLength(target);
    if (authStart === 0) return classifyOther(target);
    let authEnd = authStart;
    while (authEnd < len) {
      const c = target.charCodeAt(authEnd);
      if (c === SLASH || c === QUESTION || c === HASH) break;
      authEnd++;
    }
    const bad = authorityError(target, authStart, authEnd);
    if (bad !== null) return bad;
    authority = target.slice(authStart, authEnd);
    if (hasUpperAscii(target, authStart, authEnd)) authority = authority.toLowerCase();
    pathStart = authEnd;
  }

  let pathEnd = target.indexOf('?', pathStart);
  if (pathEnd < 0) pathEnd = len;

  let search = '';
  if (pathEnd < len) {
    for (let i = pathEnd + 1; i < len; i++) {
      const c = target.charCodeAt(i);
      if (c === HASH) return R_FRAGMENT;
      if (c === NUL) return R_NUL;
      if (c === CR || c === LF) return R_CRLF;
    }
    search = target.slice(pathEnd);
  }

  let path: string;
  if (pathStart === pathEnd) {
    // "http://host" or "http://host?q": an empty path is "/" for http(s) (RFC 3986 §6.2.3).
    path = '/';
  } else if (target.charCodeAt(pathStart) !== SLASH) {
    // Only reachable for absolute-form ending its authority at "#".
    return R_FRAGMENT;
  } else {
    const scan = scanPath(target, pathStart, pathEnd);
    if (scan === CLEAN) path = pathStart === 0 && pathEnd === len ? target : target.slice(pathStart, pathEnd);
    else if (scan === REWRITE) path = rewritePath(target, pathStart, pathEnd);
    else return SCAN_REJECTIONS[scan]!;
  }
  return { ok: true, path, search, authority };
}
