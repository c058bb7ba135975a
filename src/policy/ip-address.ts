/**
 * Strict IP address text parsing and formatting.
 *
 * HOT PATH: parseClientIp, parseIPv4 and parseIPv6 run once per request (on the client address
 * string), so they are written as plain charCodeAt loops over the input with no regex, no split,
 * no slice/substring, no closures and no allocation on either the success or the failure path.
 * IPv6 groups are collected in one module-level scratch array (JS is single threaded and the
 * parsers never re-enter). Keep it that way when editing: every branch here is on the request path.
 *
 * Strictness is a security property: an address that one component reads as 10.0.0.1 and another
 * reads as something else ("010.0.0.1" as octal, "10.1" as 10.0.0.1, "0x0a000001", ...) lets a
 * client slip past an allow/block list. So only the canonical forms are accepted:
 *  - IPv4: dotted decimal, exactly four parts, each 0-255, no leading zeros, nothing else.
 *  - IPv6: RFC 4291 §2.2 text forms (1-4 hex digits per group, at most one "::", embedded
 *    dotted IPv4 in the last 32 bits with the same strict IPv4 rules). No brackets, no prefix length.
 *
 * The formatting functions (formatIPv4/formatIPv6/formatIp) allocate strings and are meant for
 * logs, errors and canonical rule text, not for the per-request decision.
 */

export const FAMILY_INVALID = 0;
export const FAMILY_V4 = 4;
export const FAMILY_V6 = 6;
export type IpFamily = 0 | 4 | 6;

const CH_DOT = 46; // .
const CH_COLON = 58; // :
const CH_PERCENT = 37; // %

/** Scratch for the eight 16-bit IPv6 groups. Module level so parsing allocates nothing. */
const groups = new Uint16Array(8);

/** Hex digit value of a char code, or -1. */
function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  const l = c | 0x20; // fold A-F onto a-f
  if (l >= 97 && l <= 102) return l - 87; // a-f
  return -1;
}

/**
 * Strict dotted-decimal IPv4 in s[start, end). Returns the address as a non-negative number
 * (0 .. 2^32-1), or -1.
 */
function parseIPv4Range(s: string, start: number, end: number): number {
  let parts = 0; // dots seen
  let acc = 0; // value of the current part
  let digits = 0; // digits in the current part
  let value = 0; // completed parts
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === CH_DOT) {
      if (digits === 0 || parts === 3) return -1;
      value = value * 256 + acc;
      parts++;
      acc = 0;
      digits = 0;
      continue;
    }
    const d = c - 48;
    if (d < 0 || d > 9) return -1;
    if (digits !== 0 && acc === 0) return -1; // leading zero: "00", "01"
    acc = acc * 10 + d;
    if (acc > 255) return -1;
    digits++;
  }
  if (digits === 0 || parts !== 3) return -1;
  return value * 256 + acc;
}

/**
 * Strict RFC 4291 §2.2 IPv6 text in s[start, end) into out[0..3] (big-endian 32-bit words).
 * No zone, no brackets, no prefix length. Returns false (leaving out in an unspecified state) if
 * the text is not a valid address.
 */
function parseIPv6Range(s: string, start: number, end: number, out: Uint32Array): boolean {
  if (end - start < 2) return false; // the shortest address is "::"
  let ng = 0; // groups parsed
  let dc = -1; // index in groups where "::" stands, or -1
  let i = start;
  if (s.charCodeAt(i) === CH_COLON) {
    if (s.charCodeAt(i + 1) !== CH_COLON) return false; // leading single ':'
    dc = 0;
    i += 2;
    if (i === end) {
      out[0] = 0;
      out[1] = 0;
      out[2] = 0;
      out[3] = 0;
      return true;
    }
  }
  for (;;) {
    // One group: 1-4 hex digits, or the start of an embedded dotted IPv4.
    const gs = i;
    let v = 0;
    while (i < end && i - gs < 4) {
      const h = hexVal(s.charCodeAt(i));
      if (h < 0) break;
      v = (v << 4) | h;
      i++;
    }
    if (i === gs) return false; // empty group (":::", "1:::2", "1:")
    if (i < end) {
      const c = s.charCodeAt(i);
      if (c === CH_DOT) {
        // Embedded IPv4: must be the last 32 bits and run to the end.
        if (ng > 6) return false;
        const v4 = parseIPv4Range(s, gs, end);
        if (v4 < 0) return false;
        groups[ng++] = v4 >>> 16;
        groups[ng++] = v4 & 0xffff;
        break;
      }
      if (c !== CH_COLON) return false; // 5th hex digit, or any other character
    }
    if (ng === 8) return false;
    groups[ng++] = v;
    if (i === end) break;
    i++; // the ':'
    if (i === end) return false; // trailing single ':'
    if (s.charCodeAt(i) === CH_COLON) {
      if (dc >= 0) return false; // second "::"
      dc = ng;
      i++;
      if (i === end) break; // trailing "::"
    }
  }
  if (dc < 0) {
    if (ng !== 8) return false;
  } else {
    if (ng > 7) return false; // "::" must stand for at least one group
    // Move the groups after "::" to the end and zero the gap.
    const shift = 8 - ng;
    for (let k = ng - 1; k >= dc; k--) groups[k + shift] = groups[k]!;
    for (let k = dc; k < dc + shift; k++) groups[k] = 0;
  }
  out[0] = ((groups[0]! << 16) | groups[1]!) >>> 0;
  out[1] = ((groups[2]! << 16) | groups[3]!) >>> 0;
  out[2] = ((groups[4]! << 16) | groups[5]!) >>> 0;
  out[3] = ((groups[6]! << 16) | groups[7]!) >>> 0;
  return true;
}

/** Strict dotted-decimal IPv4 → uint32 as a non-negative number, or -1. HOT PATH. */
export function parseIPv4(s: string): number {
  return parseIPv4Range(s, 0, s.length);
}

/**
 * Strict IPv6 text (no zone, no brackets, no prefix) into out[0..3] as big-endian 32-bit words.
 * Unlike parseClientIp this does NOT fold IPv4-mapped addresses to IPv4: rule parsing needs to see
 * what was written. Returns false if invalid. HOT PATH (allocation-free).
 */
export function parseIPv6(s: string, out: Uint32Array): boolean {
  return parseIPv6Range(s, 0, s.length, out);
}

/** True if the four words are in ::ffff:0:0/96 (IPv4-mapped IPv6). */
export function isV4MappedWords(w: ArrayLike<number>): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
}

/**
 * Parse a CLIENT address string into `out` (a Uint32Array of length 4). Allocation-free. HOT PATH.
 *
 * Returns FAMILY_V4 with out[0] = the address, FAMILY_V6 with out[0..3] = the four big-endian
 * words, or FAMILY_INVALID. IPv4-mapped IPv6 ("::ffff:1.2.3.4", "::ffff:102:304") is the IPv4
 * client it stands for and comes back as FAMILY_V4. An IPv6 "%zone" suffix is stripped (the zone
 * must be non-empty); IPv4 never has one.
 */
export function parseClientIp(s: string, out: Uint32Array): IpFamily {
  const len = s.length;
  // A dot within the first four characters means IPv4, a colon within the first five means IPv6
  // (a group has at most four hex digits; "::" starts with one).
  const probe = len < 5 ? len : 5;
  let fam = 0;
  for (let i = 0; i < probe; i++) {
    const c = s.charCodeAt(i);
    if (c === CH_DOT) {
      fam = 4;
      break;
    }
    if (c === CH_COLON) {
      fam = 6;
      break;
    }
  }
  if (fam === 4) {
    const v = parseIPv4Range(s, 0, len);
    if (v < 0) return FAMILY_INVALID;
    out[0] = v;
    out[1] = 0;
    out[2] = 0;
    out[3] = 0;
    return FAMILY_V4;
  }
  if (fam !== 6) return FAMILY_INVALID;
  let end = len;
  for (let i = 2; i < len; i++) {
    if (s.charCodeAt(i) === CH_PERCENT) {
      end = i;
      break;
    }
  }
  if (end !== len && end + 1 === len) return FAMILY_INVALID; // empty zone: "fe80::1%"
  if (!parseIPv6Range(s, 0, end, out)) return FAMILY_INVALID;
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3]!;
    out[1] = 0;
    out[2] = 0;
    out[3] = 0;
    return FAMILY_V4;
  }
  return FAMILY_V6;
}

/** Dotted decimal text of a uint32 IPv4 address. */
export function formatIPv4(n: number): string {
  const v = n >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/**
 * RFC 5952 canonical text of an IPv6 address given as four big-endian 32-bit words: lowercase hex,
 * no leading zeros, the longest run (first on a tie) of two or more zero groups compressed to "::",
 * a lone zero group written as "0". Per RFC 5952 §5, IPv4-mapped addresses (::ffff:0:0/96) are
 * written with their last 32 bits in dotted decimal: "::ffff:192.0.2.1".
 */
export function formatIPv6(words: ArrayLike<number>): string {
  const g: number[] = [];
  for (let i = 0; i < 4; i++) {
    const w = (words[i] ?? 0) >>> 0;
    g.push(w >>> 16, w & 0xffff);
  }
  if (isV4MappedWords(words)) return `::ffff:${formatIPv4(words[3] ?? 0)}`;
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string =>
    g
      .slice(from, to)
      .map((x) => x.toString(16))
      .join(':');
  if (bestLen < 2) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Text of an address as parseClientIp left it: family 4 reads out[0], family 6 out[0..3]. */
export function formatIp(family: 4 | 6, out: ArrayLike<number>): string {
  return family === 4 ? formatIPv4(out[0] ?? 0) : formatIPv6(out);
}
