/**
 * Strict IP address text parsing and formatting.
 *
 * HOT PATH: parseClientIp, parseIPv4 and parseIPv6 run once per request (on the client address
 * string), so they are written as plain charCodeAt loops over the input with no regex, no split,
 * no slice/substring, no closures and no allocation on either the success or the failure path
 * (IPv6 groups are accumulated in local integers; hex digits are decoded through a constant table).
 * Keep it that way when editing: every branch here is on the request path.
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

/**
 * Hex digit values for char codes 0-127, -1 for anything else. A table lookup instead of range
 * tests: random hex text mixes digits and letters unpredictably, and the branch mispredictions of
 * range tests cost more than the whole rest of the parse.
 */
const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[65 + i] = 10 + i;
  HEX[97 + i] = 10 + i;
}

/**
 * Strict dotted-decimal IPv4 in s[start, end). Returns the address as a non-negative number
 * (0 .. 2^32-1), or -1.
 *
 * Octet by octet: a digit, then up to two more (no leading zero, at most 255), then a dot. Each
 * character is read once, and the text is rejected at the first character that breaks a rule, so
 * an IPv6 text costs three or four reads. WHY this shape: it was measured against a branch-free
 * decoder (three characters per octet at once, every rule folded into one error word; used from
 * session 4 to 8) and a per-character loop, on 1,000,000 random addresses in one process each
 * (session 9's machine, Node 20): 11.3-11.7 M/s here, 8.3 M/s branch-free, 9.7 M/s per-character
 * loop. The branch-free decoder read up to 16 characters for a 13-character address, and on V8
 * each charCodeAt costs more than the octet-length branches it avoided. (In bench:micro's 1M rows,
 * whose strings are spread over a large heap, both read ~10 M/s: there memory sets the pace.)
 */
function parseIPv4Range(s: string, start: number, end: number): number {
  if (end - start < 7 || end - start > 15) return -1; // "0.0.0.0" .. "255.255.255.255"
  let i = start;
  let value = 0;
  for (let k = 0; k < 4; k++) {
    if (k !== 0) {
      if (i >= end || s.charCodeAt(i) !== CH_DOT) return -1;
      i++;
    }
    // Bounds first: past the end charCodeAt gives NaN, which no range test below would reject.
    if (i >= end) return -1;
    let v = s.charCodeAt(i) - 48;
    if (v < 0 || v > 9) return -1;
    i++;
    if (i < end) {
      const d1 = s.charCodeAt(i) - 48;
      if (d1 >= 0 && d1 <= 9) {
        if (v === 0) return -1; // a leading zero: "01"
        v = v * 10 + d1;
        i++;
        if (i < end) {
          const d2 = s.charCodeAt(i) - 48;
          if (d2 >= 0 && d2 <= 9) {
            v = v * 10 + d2;
            if (v > 255) return -1;
            i++;
          }
        }
      }
    }
    value = value * 256 + v;
  }
  return i === end ? value : -1;
}

/**
 * Strict RFC 4291 §2.2 IPv6 text in s[start, end) into out[0..3] (big-endian 32-bit words). No
 * brackets, no prefix length. With zoneOk a non-empty "%zone" suffix is accepted and ignored;
 * otherwise a '%' is invalid. Returns false (leaving out untouched) if the text is not valid.
 *
 * Almost every client address is eight groups of 1-4 hex digits with single colons (that is how
 * RFC 5952 writes any address without a run of zero groups). Such a text of 36-39 characters
 * takes a straight-line path: each character is read once (every charCodeAt costs a few cycles,
 * since V8 re-checks the string's representation per call, so the number of calls sets the
 * speed), groups 0-3 are decoded forwards from the start and groups 7-4 backwards from the end
 * (two independent chains the CPU overlaps), every rule is folded into one error word, and the
 * two chains must meet at the colon between groups 3 and 4. Anything else ("::", embedded IPv4, a
 * zone, other lengths, invalid text) goes to parseIPv6General, so the accepted language is that
 * parser's by construction. Below 36 characters a text is almost always a "::" form (at most 36
 * characters), which would only pay for a failed fast attempt.
 */
function parseIPv6Range(s: string, start: number, end: number, out: Uint32Array, zoneOk: boolean): boolean {
  const len = end - start;
  if (len < 36 || len > 39) return parseIPv6General(s, start, end, out, zoneOk);
  // Written out group by group, not through a helper per group: measured, the calls (and packing
  // three results into one number) cost ~20 ns of the ~65.
  let bad = 0;
  let p = start;
  let q = end;
  let g0 = 0;
  let g1 = 0;
  let g2 = 0;
  let g3 = 0;
  let g4 = 0;
  let g5 = 0;
  let g6 = 0;
  let g7 = 0;
  {
    const c0 = s.charCodeAt(p), c1 = s.charCodeAt(p + 1), c2 = s.charCodeAt(p + 2), c3 = s.charCodeAt(p + 3);
    const a = (T[c0]! << 12) | (T[c1]! << 8) | (T[c2]! << 4) | T[c3]!;
    const f = ((a >>> 12) & 0xffff0) | (T[s.charCodeAt(p + 4)]! >>> 16);
    const e = (Math.clz32(~f & 0x11111) - 15) & 28;
    bad |= (((f >>> (16 - e)) & 3) ^ 2) | ((~a >>> 28) & 1);
    g0 = (a & 0xffff) >>> (16 - e);
    p += (e >>> 2) + 1;
  }
  {
    const c0 = s.charCodeAt(p), c1 = s.charCodeAt(p + 1), c2 = s.charCodeAt(p + 2), c3 = s.charCodeAt(p + 3);
    const a = (T[c0]! << 12) | (T[c1]! << 8) | (T[c2]! << 4) | T[c3]!;
    const f = ((a >>> 12) & 0xffff0) | (T[s.charCodeAt(p + 4)]! >>> 16);
    const e = (Math.clz32(~f & 0x11111) - 15) & 28;
    bad |= (((f >>> (16 - e)) & 3) ^ 2) | ((~a >>> 28) & 1);
    g1 = (a & 0xffff) >>> (16 - e);
    p += (e >>> 2) + 1;
  }
  {
    const c0 = s.charCodeAt(p), c1 = s.charCodeAt(p + 1), c2 = s.charCodeAt(p + 2), c3 = s.charCodeAt(p + 3);
    const a = (T[c0]! << 12) | (T[c1]! << 8) | (T[c2]! << 4) | T[c3]!;
    const f = ((a >>> 12) & 0xffff0) | (T[s.charCodeAt(p + 4)]! >>> 16);
    const e = (Math.clz32(~f & 0x11111) - 15) & 28;
    bad |= (((f >>> (16 - e)) & 3) ^ 2) | ((~a >>> 28) & 1);
    g2 = (a & 0xffff) >>> (16 - e);
    p += (e >>> 2) + 1;
  }
  {
    // Group 3 does not test the character after its digits: the chains meet only if p - 1 is
    // the colon that the backward chain found before group 4 (see the final test), so c4 is not
    // read. Bit 12 stops the scan at four digits.
    const c0 = s.charCodeAt(p), c1 = s.charCodeAt(p + 1), c2 = s.charCodeAt(p + 2), c3 = s.charCodeAt(p + 3);
    const a = (T[c0]! << 12) | (T[c1]! << 8) | (T[c2]! << 4) | T[c3]!;
    const e = Math.clz32((~a & 0x11110000) | 0x1000) - 3;
    bad |= (~a >>> 28) & 1;
    g3 = (a & 0xffff) >>> (16 - e);
    p += (e >>> 2) + 1;
  }
  // Backward group ending at q (exclusive), window d1 = s[q-1] (last digit) .. d5 = s[q-5]. a: the
  // digits d4..d1 in bits 0-15, d_k's flags at bits 16+4(k-1). f: d_k's flags at bits 4(k-1),
  // d5 included. e = 4 * (trailing hex digits, 0-4; a sentinel at d5 caps it), d1 must be hex,
  // the character before the digits exactly ':', and the value is the low e bits.
  {
    const c1 = s.charCodeAt(q - 1), c2 = s.charCodeAt(q - 2), c3 = s.charCodeAt(q - 3), c4 = s.charCodeAt(q - 4);
    const a = (T[c4]! << 12) | (T[c3]! << 8) | (T[c2]! << 4) | T[c1]!;
    const f = (a >>> 16) | (T[s.charCodeAt(q - 5)]! & 0x30000);
    const m = (~f & 0x1111) | 0x10000;
    const e = 31 - Math.clz32(m & -m);
    bad |= (((f >>> e) & 3) ^ 2) | (~f & 1);
    g7 = a & (0xffff >>> (16 - e));
    q -= (e >>> 2) + 1;
  }
  {
    const c1 = s.charCodeAt(q - 1), c2 = s.charCodeAt(q - 2), c3 = s.charCodeAt(q - 3), c4 = s.charCodeAt(q - 4);
    const a = (T[c4]! << 12) | (T[c3]! << 8) | (T[c2]! << 4) | T[c1]!;
    const f = (a >>> 16) | (T[s.charCodeAt(q - 5)]! & 0x30000);
    const m = (~f & 0x1111) | 0x10000;
    const e = 31 - Math.clz32(m & -m);
    bad |= (((f >>> e) & 3) ^ 2) | (~f & 1);
    g6 = a & (0xffff >>> (16 - e));
    q -= (e >>> 2) + 1;
  }
  {
    const c1 = s.charCodeAt(q - 1), c2 = s.charCodeAt(q - 2), c3 = s.charCodeAt(q - 3), c4 = s.charCodeAt(q - 4);
    const a = (T[c4]! << 12) | (T[c3]! << 8) | (T[c2]! << 4) | T[c1]!;
    const f = (a >>> 16) | (T[s.charCodeAt(q - 5)]! & 0x30000);
    const m = (~f & 0x1111) | 0x10000;
    const e = 31 - Math.clz32(m & -m);
    bad |= (((f >>> e) & 3) ^ 2) | (~f & 1);
    g5 = a & (0xffff >>> (16 - e));
    q -= (e >>> 2) + 1;
  }
  {
    const c1 = s.charCodeAt(q - 1), c2 = s.charCodeAt(q - 2), c3 = s.charCodeAt(q - 3), c4 = s.charCodeAt(q - 4);
    const a = (T[c4]! << 12) | (T[c3]! << 8) | (T[c2]! << 4) | T[c1]!;
    const f = (a >>> 16) | (T[s.charCodeAt(q - 5)]! & 0x30000);
    const m = (~f & 0x1111) | 0x10000;
    const e = 31 - Math.clz32(m & -m);
    bad |= (((f >>> e) & 3) ^ 2) | (~f & 1);
    g4 = a & (0xffff >>> (16 - e));
    q -= (e >>> 2) + 1;
  }
  // The chains meet: the forward one ends just after the colon that ended group 3, the backward
  // one at the colon before group 4; that must be one character.
  if ((bad | (p - q - 1)) === 0) {
    out[0] = (g0 << 16) | g1;
    out[1] = (g2 << 16) | g3;
    out[2] = (g4 << 16) | g5;
    out[3] = (g6 << 16) | g7;
    return true;
  }
  return parseIPv6General(s, start, end, out, zoneOk);
}

/**
 * Per UTF-16 code unit: a hex digit's value | T_HEX, ':' → T_COLON, anything else 0. Indexed by
 * the code unit itself, so no masking or range test; 256 KB of which only the first 512 bytes are
 * ever read for ASCII text (the rest stays untouched zero pages).
 */
const T_HEX = 0x10000;
const T_COLON = 0x20000;
const T = new Int32Array(65536);
for (let i = 0; i < 128; i++) if (HEX[i]! >= 0) T[i] = HEX[i]! | T_HEX;
T[CH_COLON] = T_COLON;




/**
 * parseIPv6Range's general path: every form, one group at a time.
 *
 * Groups are shifted into a 128-bit accumulator held in four locals (a0..a3); at "::" the
 * accumulator moves to a second one (h0..h3) holding the groups before the gap, which is shifted
 * into place at the end. No scratch array, no allocation.
 */
function parseIPv6General(s: string, start: number, end: number, out: Uint32Array, zoneOk: boolean): boolean {
  if (end - start < 2) return false; // the shortest address is "::"
  let a0 = 0; // groups since the start or since "::", right-aligned
  let a1 = 0;
  let a2 = 0;
  let a3 = 0;
  let h0 = 0; // groups before "::", right-aligned
  let h1 = 0;
  let h2 = 0;
  let h3 = 0;
  let ng = 0; // groups parsed (an embedded IPv4 counts two)
  let dc = -1; // groups before "::", or -1 if there is none
  let i = start;
  if (s.charCodeAt(i) === CH_COLON) {
    if (s.charCodeAt(i + 1) !== CH_COLON) return false; // leading single ':'
    dc = 0;
    i += 2;
    if (i < end && s.charCodeAt(i) === CH_PERCENT) {
      if (!zoneOk || i + 1 === end) return false;
      i = end; // "::%zone"
    }
  }
  while (i < end) {
    // One group: 1-4 hex digits, or the first octet of an embedded dotted IPv4.
    const gs = i;
    let v = 0;
    let c = -1; // the character that ended the group, -1 at the end of the text
    if (i + 5 <= end) {
      // Fast path, branch-free: decode the next five characters, count the leading hex digits
      // with a bit scan, and shift the unused digits away. Group lengths vary (leading zeros are
      // dropped), so a per-character loop mispredicts its exit on almost every group.
      const c0 = s.charCodeAt(i);
      const c1 = s.charCodeAt(i + 1);
      const c2 = s.charCodeAt(i + 2);
      const c3 = s.charCodeAt(i + 3);
      const c4 = s.charCodeAt(i + 4);
      const h0 = HEX[c0 & 127]! | -(c0 >>> 7); // negative unless a hex digit
      const h1 = HEX[c1 & 127]! | -(c1 >>> 7);
      const h2 = HEX[c2 & 127]! | -(c2 >>> 7);
      const h3 = HEX[c3 & 127]! | -(c3 >>> 7);
      const h4 = HEX[c4 & 127]! | -(c4 >>> 7);
      // Bit k set when character k is not a hex digit; bit 5 caps the count at 5.
      const stop = (h0 >>> 31) | ((h1 >>> 31) << 1) | ((h2 >>> 31) << 2) | ((h3 >>> 31) << 3) | ((h4 >>> 31) << 4) | 32;
      const nd = 31 - Math.clz32(stop & -stop);
      if (nd === 5) return false; // five hex digits
      v = (((h0 & 15) << 12) | ((h1 & 15) << 8) | ((h2 & 15) << 4) | (h3 & 15)) >>> (16 - 4 * nd);
      i += nd;
      c = s.charCodeAt(i);
    } else {
      while (i < end) {
        const ch = s.charCodeAt(i);
        const h = HEX[ch & 127]! | -(ch >>> 7); // negative unless a hex digit
        if (h < 0) {
          c = ch;
          break;
        }
        v = (v << 4) | h;
        i++;
      }
    }
    if (c === CH_DOT) {
      // Embedded IPv4: the last 32 bits, running to the end (or to the zone).
      if (ng > 6) return false;
      let v4end = end;
      if (zoneOk) {
        for (let j = i + 1; j < end; j++) {
          if (s.charCodeAt(j) === CH_PERCENT) {
            if (j + 1 === end) return false; // empty zone
            v4end = j;
            break;
          }
        }
      }
      const v4 = parseIPv4Range(s, gs, v4end);
      if (v4 < 0) return false;
      // Shift the accumulator left by 32 bits and append the IPv4 address.
      a0 = a1;
      a1 = a2;
      a2 = a3;
      a3 = v4;
      ng += 2;
      break;
    }
    if (i === gs || i - gs > 4 || ng === 8) return false; // empty group, 5+ digits, 9+ groups
    a0 = ((a0 << 16) | (a1 >>> 16)) >>> 0;
    a1 = ((a1 << 16) | (a2 >>> 16)) >>> 0;
    a2 = ((a2 << 16) | (a3 >>> 16)) >>> 0;
    a3 = ((a3 << 16) | v) >>> 0;
    ng++;
    if (c === -1) break;
    if (c === CH_PERCENT) {
      if (!zoneOk || i + 1 === end) return false; // zone not allowed, or empty
      break;
    }
    if (c !== CH_COLON) return false;
    i++; // the ':'
    if (i === end) return false; // trailing single ':'
    if (s.charCodeAt(i) === CH_COLON) {
      if (dc >= 0) return false; // second "::"
      dc = ng;
      h0 = a0;
      h1 = a1;
      h2 = a2;
      h3 = a3;
      a0 = 0;
      a1 = 0;
      a2 = 0;
      a3 = 0;
      i++;
      if (i < end && s.charCodeAt(i) === CH_PERCENT) {
        if (!zoneOk || i + 1 === end) return false;
        break; // "1::%zone"
      }
    }
  }
  if (dc < 0) {
    if (ng !== 8) return false;
  } else {
    if (ng > 7) return false; // "::" must stand for at least one group
    // Move the groups before "::" to the top: shift h left by (8 - dc) groups.
    for (let k = 8 - dc; k > 0; k--) {
      h0 = ((h0 << 16) | (h1 >>> 16)) >>> 0;
      h1 = ((h1 << 16) | (h2 >>> 16)) >>> 0;
      h2 = ((h2 << 16) | (h3 >>> 16)) >>> 0;
      h3 = (h3 << 16) >>> 0;
    }
    a0 = (a0 | h0) >>> 0;
    a1 = (a1 | h1) >>> 0;
    a2 = (a2 | h2) >>> 0;
    a3 = (a3 | h3) >>> 0;
  }
  out[0] = a0;
  out[1] = a1;
  out[2] = a2;
  out[3] = a3;
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
  return parseIPv6Range(s, 0, s.length, out, false);
}

/** parseIPv4 on s[start, end), without slicing (compile-time rule parsing). */
export function parseIPv4At(s: string, start: number, end: number): number {
  return parseIPv4Range(s, start, end);
}

/** parseIPv6 on s[start, end), without slicing (compile-time rule parsing). */
export function parseIPv6At(s: string, start: number, end: number, out: Uint32Array): boolean {
  return parseIPv6Range(s, start, end, out, false);
}

/** True if the four words are in ::ffff:0:0/96 (IPv4-mapped IPv6). */
export function isV4MappedWords(w: ArrayLike<number>): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
}

/**
 * Parse a CLIENT address string into `out` (a Uint32Array of length 4). Allocation-free. HOT PATH.
 *
 * Returns FAMILY_V4 with out[0] = the address, FAMILY_V6 with out[0..3] = the four big-endian
 * words, or FAMILY_INVALID (out is then unspecified). IPv4-mapped IPv6 ("::ffff:1.2.3.4",
 * "::ffff:102:304") is the IPv4 client it stands for and comes back as FAMILY_V4. An IPv6 "%zone"
 * suffix is stripped (the zone must be non-empty); IPv4 never has one.
 */
export function parseClientIp(s: string, out: Uint32Array): IpFamily {
  const len = s.length;
  // IPv4 first: it gives up at the first octet of anything else, and no text is valid as both
  // (IPv4 has no ':', IPv6 has at least one before any '.').
  const v = parseIPv4Range(s, 0, len);
  if (v >= 0) {
    out[0] = v;
    out[1] = 0;
    out[2] = 0;
    out[3] = 0;
    return FAMILY_V4;
  }
  if (!parseIPv6Range(s, 0, len, out, true)) return FAMILY_INVALID;
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3]!;
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

/** Scratch for formatIPv6's eight groups. */
const fmtGroups = new Uint16Array(8);
/** Char codes of 0-9a-f. */
const HEX_CODES = [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102];

/**
 * RFC 5952 canonical text of an IPv6 address given as four big-endian 32-bit words: lowercase hex,
 * no leading zeros, the longest run (first on a tie) of two or more zero groups compressed to "::",
 * a lone zero group written as "0". Per RFC 5952 §5, IPv4-mapped addresses (::ffff:0:0/96) are
 * written with their last 32 bits in dotted decimal: "::ffff:192.0.2.1".
 */
export function formatIPv6(words: ArrayLike<number>): string {
  const w0 = (words[0] ?? 0) >>> 0;
  const w1 = (words[1] ?? 0) >>> 0;
  const w2 = (words[2] ?? 0) >>> 0;
  const w3 = (words[3] ?? 0) >>> 0;
  if (w0 === 0 && w1 === 0 && w2 === 0xffff) return `::ffff:${formatIPv4(w3)}`;
  const g = fmtGroups;
  g[0] = w0 >>> 16;
  g[1] = w0 & 0xffff;
  g[2] = w1 >>> 16;
  g[3] = w1 & 0xffff;
  g[4] = w2 >>> 16;
  g[5] = w2 & 0xffff;
  g[6] = w3 >>> 16;
  g[7] = w3 & 0xffff;
  // The longest run of zero groups (the first on a tie), if at least two long.
  let bestStart = -1;
  let bestLen = 1;
  let runStart = -1;
  for (let i = 0; i <= 8; i++) {
    if (i < 8 && g[i] === 0) {
      if (runStart < 0) runStart = i;
    } else if (runStart >= 0) {
      if (i - runStart > bestLen) {
        bestStart = runStart;
        bestLen = i - runStart;
      }
      runStart = -1;
    }
  }
  // Character codes, turned into a string in one go (compile-time speed: 1M rule entries).
  const codes: number[] = [];
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      codes.push(CH_COLON, CH_COLON);
      i += bestLen - 1;
      continue;
    }
    if (codes.length > 0 && i !== bestStart + bestLen) codes.push(CH_COLON);
    const x = g[i]!;
    if (x >= 0x1000) codes.push(HEX_CODES[x >>> 12]!);
    if (x >= 0x100) codes.push(HEX_CODES[(x >>> 8) & 15]!);
    if (x >= 0x10) codes.push(HEX_CODES[(x >>> 4) & 15]!);
    codes.push(HEX_CODES[x & 15]!);
  }
  return String.fromCharCode.apply(null, codes);
}

/** Text of an address as parseClientIp left it: family 4 reads out[0], family 6 out[0..3]. */
export function formatIp(family: 4 | 6, out: ArrayLike<number>): string {
  return family === 4 ? formatIPv4(out[0] ?? 0) : formatIPv6(out);
}
