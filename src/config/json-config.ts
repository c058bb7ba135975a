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
 * which the two read differently (see hasBareCr), and one with an escape in a key (see scanKeys).
 */

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
  return scanKeys(text, start, true) ? undefined : (value as Record<string, unknown>);
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
  return scanKeys(text, start, false);
}

/**
 * The scan behind hasRepeatedKey. With `escapedKeys`, a key written with an escape counts too.
 * WHY: V8 in Node 24.21.0 mis-decodes an escaped object key in JSON.parse once it has seen a key
 * of the same length in that place: after JSON.parse('{"a\\\\": 1}'), JSON.parse('{"a\\r": 1}')
 * gives the key "a\\" (a string on its own, '"a\\r"', still decodes right). Config keys are
 * plain names, so such a text takes the YAML loader.
 */
function scanKeys(text: string, start: number, escapedKeys: boolean): boolean {
  // One entry per open container: the keys seen so far for an object, null for an array.
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      if (expectKey) {
        const keys = stack[stack.length - 1]!;
        const raw = text.slice(i + 1, end);
        const escaped = raw.includes('\\');
        if (escaped && escapedKeys) return true;
        const key = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (keys.has(key)) return true;
        keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
  return false;
}

/**
 * The path of the first object key in the JSON text that is written with an escape sequence
 * (`"\u0070olicy"`, `"a\r"`), as path segments ending with that key (decoded); null when no key
 * has one. `text` must be valid JSON (JSON.parse accepted it). The admin API refuses such bodies
 * rather than trust JSON.parse with them (see scanKeys: Node 24.21.0 can decode one as another
 * key); its keys are plain names, so no body it accepts needs an escaped key.
 */
export function escapedKeyPath(text: string): (string | number)[] | null {
  // Segments leading to the current value: the current key of each open object, the current
  // index of each open array.
  const path: (string | number)[] = [];
  const inObject: boolean[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      if (expectKey) {
        const raw = text.slice(i + 1, end);
        // A string on its own decodes right; only keys inside an object are affected.
        if (raw.includes('\\')) return [...path.slice(0, -1), JSON.parse(text.slice(i, end + 1)) as string];
        path[path.length - 1] = raw;
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      path.push('');
      inObject.push(true);
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      path.push(0);
      inObject.push(false);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      path.pop();
      inObject.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      const top = inObject.length - 1;
      if (inObject[top] === true) expectKey = true;
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
