/**
 * How a canonical path spells each character (see dataplane/canonical-path.ts), shared with the
 * endpoint patterns that are compared with it literally.
 *
 * A byte has exactly one spelling in a canonical path, so two request targets a backend would
 * decode to the same path are the same string here. Characters a path segment may hold as
 * themselves (RFC 3986 pchar) are written raw; these printable characters, which a URI never
 * carries raw (RFC 3986 §2), are always escaped.
 */
export const ESCAPED_ALWAYS = '"<>[]^`{|}';

const HEX_UPPER = '0123456789ABCDEF';

/** "%XY", uppercase hex, for a byte value. */
export function escapeByte(v: number): string {
  return '%' + HEX_UPPER.charAt(v >> 4) + HEX_UPPER.charAt(v & 15);
}

/** A pattern's literal text as a canonical path spells it: `a"b` → `a%22b`. Compile time only. */
export function canonicalSpelling(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    out += ESCAPED_ALWAYS.includes(ch) ? escapeByte(text.charCodeAt(i)) : ch;
  }
  return out;
}
