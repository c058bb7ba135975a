/**
 * Rule entry parsing: the text of one ipList / IP group entry → the CIDR prefixes it stands for.
 *
 * Compile time only (allocation is fine here); the per-request path is ip-address.ts + ip-trie.ts.
 *
 * Accepted forms (surrounding whitespace is trimmed, everything else is strict):
 *  - single address      "192.168.1.100", "2001:db8::1"          → /32 or /128
 *  - CIDR                "10.0.0.0/8", "2001:db8::/32"            (host bits set is an error)
 *  - range               "192.0.2.0-192.0.2.29", "10.3.10.4-18"   → minimal CIDR cover
 *  - IPv4 wildcard       "10.3.10.*", "10.3.*.*", "10.*.*.*"     → /24, /16, /8
 *  - IPv4-mapped IPv6    "::ffff:10.0.0.0/104" → 10.0.0.0/8, "::ffff:1.2.3.4" → 1.2.3.4/32
 * A zone id ("fe80::1%eth0") is an error in a rule: zones are local to one host's interfaces.
 *
 * Note on IPv4-mapped addresses: the data plane folds a mapped client (::ffff:a.b.c.d) to the IPv4
 * address a.b.c.d, so rules written in mapped form are stored as IPv4, and an IPv6 rule that merely
 * covers ::ffff:0:0/96 (such as ::/0) never matches an IPv4(-mapped) client.
 */

import { formatIPv4, formatIPv6, isV4MappedWords, parseIPv4, parseIPv4At, parseIPv6, parseIPv6At } from './ip-address.js';

export interface CidrPrefix {
  readonly family: 4 | 6;
  /** Network address: length 1 for IPv4 (the uint32), 4 for IPv6 (big-endian 32-bit words). Host bits are zero. */
  readonly words: readonly number[];
  /** Prefix length: 0-32 for IPv4, 0-128 for IPv6. */
  readonly length: number;
}

export type ParseEntryResult = { ok: true; prefixes: CidrPrefix[]; canonical: string } | { ok: false; error: string };

interface Addr {
  family: 4 | 6;
  words: number[];
}

const fail = (error: string): ParseEntryResult => ({ ok: false, error });

/** Scratch for parseIPv6 (compile time is single threaded too; results are copied out). */
const scratch = new Uint32Array(4);

/** Parse a plain address as written: IPv4 or IPv6 (mapped addresses stay IPv6). Null if invalid. */
function parseRaw(text: string): Addr | null {
  const v4 = parseIPv4(text);
  if (v4 >= 0) return { family: 4, words: [v4] };
  if (!parseIPv6(text, scratch)) return null;
  return { family: 6, words: [scratch[0]!, scratch[1]!, scratch[2]!, scratch[3]!] };
}

/** Parse a plain address, folding IPv4-mapped IPv6 to IPv4. Null if not an address. */
function parseAddr(text: string): Addr | null {
  const a = parseRaw(text);
  if (a && a.family === 6 && isV4MappedWords(a.words)) return { family: 4, words: [a.words[3]!] };
  return a;
}

/** Strict decimal without leading zeros ("0" is fine), at most `maxDigits` digits; -1 if not. */
function parseDecimal(text: string, maxDigits: number): number {
  if (text.length === 0 || text.length > maxDigits) return -1;
  if (text.length > 1 && text.charCodeAt(0) === 48) return -1;
  let v = 0;
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** Mask of the `len` leading bits of 32-bit word `wordIndex` within a prefix of length `len`. */
function wordMask(len: number, wordIndex: number): number {
  const bits = len - wordIndex * 32;
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}

function maskWords(words: readonly number[], len: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < words.length; i++) out.push((words[i]! & wordMask(len, i)) >>> 0);
  return out;
}

function sameWords(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function compareWords(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

export function formatPrefix(p: CidrPrefix): string {
  const addr = p.family === 4 ? formatIPv4(p.words[0] ?? 0) : formatIPv6(p.words);
  return `${addr}/${p.length}`;
}

function single(family: 4 | 6, words: number[], length: number): ParseEntryResult {
  const prefix: CidrPrefix = { family, words, length };
  return { ok: true, prefixes: [prefix], canonical: formatPrefix(prefix) };
}

function parseCidr(t: string, slash: number): ParseEntryResult {
  const addrText = t.slice(0, slash);
  const lenText = t.slice(slash + 1);
  const addr = parseRaw(addrText);
  if (!addr) return fail(`${t}: "${addrText}" is not a valid IP address`);
  const { family, words } = addr;
  const max = family === 4 ? 32 : 128;
  const len = parseDecimal(lenText, 3);
  if (len < 0 || len > max) return fail(`${t}: prefix length must be a decimal number from 0 to ${max}`);
  const mapped = family === 6 && isV4MappedWords(words);
  if (mapped && len < 96) return fail(`${t}: an IPv4-mapped prefix shorter than /96 would mix IPv4 and IPv6`);
  const network = maskWords(words, len);
  if (!sameWords(network, words)) {
    const meant = family === 4 ? formatIPv4(network[0]!) : formatIPv6(network);
    return fail(`${t}: host bits set, did you mean ${meant}/${len}?`);
  }
  if (mapped) return single(4, [words[3]!], len - 96);
  return single(family, words, len);
}

function parseRange(t: string, dash: number): ParseEntryResult {
  const leftText = t.slice(0, dash);
  const rightText = t.slice(dash + 1);
  const left = parseAddr(leftText);
  if (!left) return fail(`${t}: range start "${leftText}" is not a valid IP address`);
  let right = parseAddr(rightText);
  if (!right) {
    // Apinizer short form: "10.3.10.4-18" ranges over the last octet.
    const octet = parseDecimal(rightText, 3);
    if (octet < 0 || octet > 255 || parseIPv4(leftText) < 0) {
      return fail(`${t}: range end "${rightText}" is not a valid IP address or last octet (0-255)`);
    }
    const start = left.words[0]!;
    if (octet < (start & 255)) return fail(`${t}: range end ${octet} is below the start's last octet ${start & 255}`);
    right = { family: 4, words: [((start & 0xffffff00) | octet) >>> 0] };
  }
  if (left.family !== right.family) return fail(`${t}: a range cannot mix IPv4 and IPv6`);
  if (compareWords(left.words, right.words) > 0) return fail(`${t}: range start is after range end`);
  return { ok: true, prefixes: rangeToPrefixes(left.family, left.words, right.words), canonical: t };
}

function parseWildcard(t: string): ParseEntryResult {
  if (t.includes(':')) return fail(`${t}: wildcards are only supported for IPv4 (use CIDR for IPv6)`);
  const parts = t.split('.');
  if (parts.length !== 4) return fail(`${t}: a wildcard address needs four parts, like 10.3.10.*`);
  let value = 0;
  let fixed = 0;
  let seenStar = false;
  for (const part of parts) {
    if (part === '*') {
      seenStar = true;
      continue;
    }
    if (seenStar) return fail(`${t}: "*" may only be followed by "*", like 10.3.*.*`);
    const o = parseDecimal(part, 3);
    if (o < 0 || o > 255) return fail(`${t}: "${part}" is not an octet (0-255) or "*"`);
    value = value * 256 + o;
    fixed++;
  }
  const addr = (value * 2 ** (8 * (4 - fixed))) >>> 0;
  return { ok: true, prefixes: [{ family: 4, words: [addr], length: 8 * fixed }], canonical: t };
}

/** Parse one rule entry from an ipList or IP group. */
export function parseIpEntry(text: string): ParseEntryResult {
  const t = text.trim();
  if (t === '') return fail('empty IP entry');
  if (t.includes('%')) return fail(`${t}: zone ids ("%...") are not allowed in rules`);
  const slash = t.indexOf('/');
  if (slash >= 0) return parseCidr(t, slash);
  const dash = t.indexOf('-');
  if (dash >= 0) return parseRange(t, dash);
  if (t.includes('*')) return parseWildcard(t);
  const a = parseAddr(t);
  if (!a) return fail(`${t}: not a valid IP address, CIDR, range or wildcard`);
  return single(a.family, a.words, a.family === 4 ? 32 : 128);
}

/**
 * Compile-time fast path for the two forms big lists are made of, a plain address or a CIDR,
 * written exactly (no surrounding whitespace): parses `text` straight into out[0..3] with no
 * allocation. Returns the prefix length for IPv4 (out[0] = network), 256 + the length for IPv6
 * (out[0..3]), with IPv4-mapped forms folded to IPv4 exactly as parseIpEntry does; or -1 when the
 * text is anything else (range, wildcard, whitespace, an error...), and then parseIpEntry decides
 * and words the error. Whatever it accepts, parseIpEntry accepts as the same single prefix.
 */
export function scanIpEntry(text: string, out: Uint32Array): number {
  const n = text.length;
  if (n === 0) return -1;
  // Anything trim() would remove (ASCII or not) goes to the full parser; no address char is either.
  const c0 = text.charCodeAt(0);
  const cn = text.charCodeAt(n - 1);
  if (c0 <= 32 || c0 >= 127 || cn <= 32 || cn >= 127) return -1;
  const slash = text.indexOf('/');
  const end = slash < 0 ? n : slash;
  let family: 4 | 6;
  const v4 = parseIPv4At(text, 0, end);
  if (v4 >= 0) {
    out[0] = v4;
    family = 4;
  } else if (parseIPv6At(text, 0, end, out)) {
    family = 6;
  } else {
    return -1;
  }
  const max = family === 4 ? 32 : 128;
  let len = max;
  if (slash >= 0) {
    // Strict decimal, no leading zeros, 1-3 digits (parseDecimal).
    const digits = n - slash - 1;
    if (digits < 1 || digits > 3 || (digits > 1 && text.charCodeAt(slash + 1) === 48)) return -1;
    len = 0;
    for (let i = slash + 1; i < n; i++) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return -1;
      len = len * 10 + d;
    }
    if (len > max) return -1;
    // Host bits must be zero.
    for (let k = 0; k < (family === 4 ? 1 : 4); k++) if (((out[k]! & ~wordMask(len, k)) >>> 0) !== 0) return -1;
  }
  if (family === 6 && out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    if (len < 96) return -1; // an error: parseIpEntry words it
    out[0] = out[3]!;
    return len - 96;
  }
  return family === 4 ? len : 256 + len;
}

/** Number of trailing zero bits of a multi-word big-endian value (bits if zero). */
function trailingZeros(w: readonly number[]): number {
  let tz = 0;
  for (let i = w.length - 1; i >= 0; i--) {
    const x = w[i]!;
    if (x === 0) {
      tz += 32;
      continue;
    }
    return tz + 31 - Math.clz32(x & -x);
  }
  return tz;
}

/** w | (2^k - 1). */
function orLowBits(w: readonly number[], k: number): number[] {
  const n = w.length;
  return w.map((x, i) => {
    const lowBitsHere = k - (n - 1 - i) * 32; // how many of this word's low bits are set
    if (lowBitsHere <= 0) return x;
    if (lowBitsHere >= 32) return 0xffffffff;
    return (x | ((1 << lowBitsHere) - 1)) >>> 0;
  });
}

/** w + 1 (no overflow: callers never increment the all-ones value). */
function increment(w: readonly number[]): number[] {
  const r = w.slice();
  for (let i = r.length - 1; i >= 0; i--) {
    if (r[i] === 0xffffffff) {
      r[i] = 0;
      continue;
    }
    r[i] = r[i]! + 1;
    break;
  }
  return r;
}

/**
 * Decompose the inclusive address range [start,end] (same family) into the minimal list of CIDR
 * prefixes, in address order. Greedy: from the current start take the largest aligned block that
 * does not pass `end`; the result is the set of maximal aligned blocks inside the range, which is
 * the unique minimal cover. Returns [] if start > end.
 */
export function rangeToPrefixes(family: 4 | 6, start: readonly number[], end: readonly number[]): CidrPrefix[] {
  const n = family === 4 ? 1 : 4;
  const bits = n * 32;
  const last = Array.from({ length: n }, (_, i) => (end[i] ?? 0) >>> 0);
  let cur = Array.from({ length: n }, (_, i) => (start[i] ?? 0) >>> 0);
  const out: CidrPrefix[] = [];
  if (compareWords(cur, last) > 0) return out;
  for (;;) {
    let k = Math.min(trailingZeros(cur), bits);
    let top = orLowBits(cur, k);
    while (compareWords(top, last) > 0) {
      k--;
      top = orLowBits(cur, k);
    }
    out.push({ family, words: cur, length: bits - k });
    if (compareWords(top, last) === 0) return out;
    cur = increment(top);
  }
}
