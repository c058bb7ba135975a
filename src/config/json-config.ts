/**
 * The fast path for config files written as JSON.
 *
 * WHY. JSON is valid YAML 1.2, and it is what generators emit for large lists (the benchmark's
 * 1,000,000-entry config is one). The YAML parser builds a node per scalar: 4.9 s for that file,
 * against 0.25 s for JSON.parse, and half of the gateway's start. So a text that is a JSON object
 * (after leading `#` comment lines) is parsed with JSON.parse. The result must be what the YAML
 * loader gives, errors included: JSON.parse keeps the last of two equal keys where the loader
 * (uniqueKeys) refuses the file, so a text with a repeated key, like any text JSON.parse refuses,
 * goes to the YAML loader, which reports it as before. So does a text with a bare carriage return,
 * which the two read differently (see hasBareCr), and one with an escape in a key (see firstKeyIssue).
 */
import { pace } from '../policy/pace.js';

/**
 * The value of `text` when it is a JSON object (after optional leading comment lines and blank
 * lines) with no repeated key, no escape in a key and no bare carriage return; undefined when the
 * YAML loader must parse it.
 */
export function parseJsonConfig(text: string): Record<string, unknown> | undefined {
  const start = jsonStart(text);
  if (start < 0 || hasBareCr(text)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text.slice(start));
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  return firstKeyIssue(text, start, true) === null ? (value as Record<string, unknown>) : undefined;
}

/** Index of the `{` that opens the document, past a BOM, blank lines and `#` comment lines; -1 if none. */
function jsonStart(text: string): number {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  for (;;) {
    while (i < text.length && isSpace(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) !== 0x23 /* # */) break;
    const nl = text.indexOf('\n', i);
    if (nl < 0) return -1;
    i = nl + 1;
  }
  return text.charCodeAt(i) === 0x7b /* { */ ? i : -1;
}

/**
 * A carriage return not followed by a line feed: JSON.parse skips it as whitespace, where the YAML
 * loader keeps it as text (in a key or a scalar) or refuses the file, so such a text takes the
 * YAML loader. CRLF line ends are whitespace to both.
 */
function hasBareCr(text: string): boolean {
  for (let i = text.indexOf('\r'); i >= 0; i = text.indexOf('\r', i + 1)) {
    if (text.charCodeAt(i + 1) !== 0x0a) return true;
  }
  return false;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * Whether an object in the JSON text from `start` (valid JSON: JSON.parse accepted it) has a key
 * twice. Keys compare by value, so "a" and "\u0061" are the same key, as in the YAML loader.
 */
export function hasRepeatedKey(text: string, start: number): boolean {
  return firstKeyIssue(text, start, false) !== null;
}

/** A key that JSON.parse would read otherwise than it is written (see firstKeyIssue). */
export interface KeyIssue {
  /** The path to the key, ending with the key (decoded): ['policy', 'ipList'], [2, 'a\r']. */
  readonly path: (string | number)[];
  /** 'duplicate key': an earlier key of the same object equals it; 'escaped key': see refuseEscaped. */
  readonly issue: 'duplicate key' | 'escaped key';
}

/**
 * The first object key in the JSON text from `start` (valid JSON: JSON.parse accepted it) that
 * repeats a key of its object, or, with `refuseEscaped`, that is written with an escape sequence;
 * null when there is none. One linear pass over the text, so a 100 MB admin body costs no parse.
 *
 * WHY repeats: JSON.parse keeps the last of two equal keys, silently: {"ipList": ["10.0.0.0/8"],
 * "ipList": ["0.0.0.0/0"]} reads as allow-all. The YAML loader (uniqueKeys) refuses such a file,
 * and so does the admin API. Keys compare decoded, so "ipList" and "ip\u004cist" are one key.
 *
 * WHY escapes: V8 in Node 24.21.0 mis-decodes an escaped object key in JSON.parse once it has seen
 * a key of the same length in that place: after JSON.parse('{"a\\\\": 1}'), JSON.parse('{"a\\r": 1}')
 * gives the key "a\\" (a string on its own, '"a\\r"', still decodes right). Config keys and admin
 * body keys are plain names, so a config text with one takes the YAML loader, and an admin body
 * with one is refused.
 */
export function firstKeyIssue(text: string, start: number, refuseEscaped: boolean): KeyIssue | null {
  // Segments leading to the current value: the current key of each open object, the current
  // index of each open array.
  const path: (string | number)[] = [];
  // One entry per open container: the keys seen so far for an object, null for an array.
  const seen: (Set<string> | null)[] = [];
  // One Set per depth, cleared and reused by the next object at that depth: a body of a million
  // small objects (IP group entries) allocates no Set per object.
  const sets: Set<string>[] = [];
  let expectKey = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      if (expectKey) {
        const raw = text.slice(i + 1, end);
        const escaped = raw.includes('\\');
        // A string on its own decodes right; only keys inside an object are affected.
        const key = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        const keys = seen[seen.length - 1]!;
        path[path.length - 1] = key;
        if (keys.has(key)) return { path, issue: 'duplicate key' };
        if (escaped && refuseEscaped) return { path, issue: 'escaped key' };
        keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      const keys = (sets[seen.length] ??= new Set());
      keys.clear();
      seen.push(keys);
      path.push('');
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      seen.push(null);
      path.push(0);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      seen.pop();
      path.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      // A yield point per list element or member: an admin body can hold a million of them.
      pace();
      const top = seen.length - 1;
      if (seen[top] !== null) expectKey = true;
      else path[top] = (path[top] as number) + 1;
    }
  }
  return null;
}

/** Index of the quote that closes the string opening at `open` (valid JSON). */
function stringEnd(text: string, open: number): number {
  let q = text.indexOf('"', open + 1);
  for (;;) {
    // A quote ends the string unless an odd number of backslashes precedes it.
    let backslashes = 0;
    for (let k = q - 1; text.charCodeAt(k) === 0x5c; k--) backslashes++;
    if ((backslashes & 1) === 0) return q;
    q = text.indexOf('"', q + 1);
  }
}
