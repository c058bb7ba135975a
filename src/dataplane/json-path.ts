/**
 * Reads one string field out of a JSON body by dotted path, for BODY client-IP sources.
 *
 * Why not JSON.parse: it silently keeps the LAST of duplicate keys, while many backends keep the
 * first. {"ip":"10.0.0.1","ip":"203.0.113.9"} would then be checked as one address and served as
 * another. This scanner validates the whole document (RFC 8259) and reports a duplicate key in any
 * object on the path as undeterminable. Objects off the path are validated but not materialised.
 */

const MAX_DEPTH = 256;

class Bad extends Error {}

export type JsonPathResult = string | { reason: string };

export function extractJsonString(body: Buffer, path: readonly string[]): JsonPathResult {
  const text = body.toString('utf8');
  const s = new Scanner(text, path);
  try {
    s.ws();
    s.value(0, true);
    s.ws();
    if (s.i !== text.length) throw new Bad('trailing data after the JSON value');
  } catch (err) {
    if (err instanceof Bad) return { reason: `body is not valid JSON: ${err.message}` };
    if (err instanceof RangeError) return { reason: 'body JSON is nested too deeply' };
    throw err;
  }
  if (s.duplicate !== null) return { reason: `body has duplicate key ${JSON.stringify(s.duplicate)}` };
  if (!s.found) return { reason: `body field ${path.join('.')} is missing` };
  if (typeof s.result !== 'string') return { reason: `body field ${path.join('.')} is not a string` };
  return s.result;
}

class Scanner {
  i = 0;
  found = false;
  result: unknown = undefined;
  duplicate: string | null = null;
  constructor(
    readonly t: string,
    readonly path: readonly string[],
  ) {}

  ws(): void {
    const t = this.t;
    let c = t.charCodeAt(this.i);
    while (c === 32 || c === 9 || c === 10 || c === 13) c = t.charCodeAt(++this.i);
  }

  /** onPath: the value sits at path[0..depth). At depth === path.length it is the target. */
  value(depth: number, onPath: boolean): void {
    if (depth > MAX_DEPTH) throw new RangeError('depth');
    const c = this.t.charCodeAt(this.i);
    const target = onPath && depth === this.path.length;
    if (c === 123 /* { */) {
      if (target) this.markFound({});
      this.object(depth, onPath && depth < this.path.length);
    } else if (c === 91 /* [ */) {
      if (target) this.markFound([]);
      this.array(depth);
    } else if (c === 34 /* " */) {
      const str = this.string();
      if (target) this.markFound(str);
    } else {
      const lit = this.literal();
      if (target) this.markFound(lit);
    }
  }

  markFound(v: unknown): void {
    this.found = true;
    this.result = v;
  }

  object(depth: number, onPath: boolean): void {
    this.i++; // {
    this.ws();
    const seen = onPath ? new Set<string>() : null;
    if (this.t.charCodeAt(this.i) === 125) {
      this.i++;
      return;
    }
    for (;;) {
      if (this.t.charCodeAt(this.i) !== 34) throw new Bad(`expected a key at offset ${this.i}`);
      const key = this.string();
      if (seen !== null) {
        if (seen.has(key) && this.duplicate === null) this.duplicate = key;
        seen.add(key);
      }
      this.ws();
      if (this.t.charCodeAt(this.i) !== 58) throw new Bad(`expected ":" at offset ${this.i}`);
      this.i++;
      this.ws();
      this.value(depth + 1, onPath && key === this.path[depth]);
      this.ws();
      const c = this.t.charCodeAt(this.i);
      if (c === 44) {
        this.i++;
        this.ws();
        continue;
      }
      if (c === 125) {
        this.i++;
        return;
      }
      throw new Bad(`expected "," or "}" at offset ${this.i}`);
    }
  }

  array(depth: number): void {
    this.i++; // [
    this.ws();
    if (this.t.charCodeAt(this.i) === 93) {
      this.i++;
      return;
    }
    for (;;) {
      this.value(depth + 1, false);
      this.ws();
      const c = this.t.charCodeAt(this.i);
      if (c === 44) {
        this.i++;
        this.ws();
        continue;
      }
      if (c === 93) {
        this.i++;
        return;
      }
      throw new Bad(`expected "," or "]" at offset ${this.i}`);
    }
  }

  string(): string {
    const t = this.t;
    const start = ++this.i;
    let simple = true;
    for (;;) {
      const c = t.charCodeAt(this.i);
      if (Number.isNaN(c)) throw new Bad('unterminated string');
      if (c === 34) break;
      if (c < 0x20) throw new Bad(`control character in string at offset ${this.i}`);
      if (c === 92) {
        simple = false;
        const e = t.charCodeAt(this.i + 1);
        if (e === 117 /* u */) {
          for (let k = 2; k < 6; k++) {
            const h = t.charCodeAt(this.i + k);
            if (!((h >= 48 && h <= 57) || (h >= 65 && h <= 70) || (h >= 97 && h <= 102))) throw new Bad(`bad \\u escape at offset ${this.i}`);
          }
          this.i += 6;
          continue;
        }
        if (e !== 34 && e !== 92 && e !== 47 && e !== 98 && e !== 102 && e !== 110 && e !== 114 && e !== 116) throw new Bad(`bad escape at offset ${this.i}`);
        this.i += 2;
        continue;
      }
      this.i++;
    }
    const raw = t.slice(start, this.i);
    this.i++; // closing quote
    return simple ? raw : (JSON.parse(`"${raw}"`) as string);
  }

  literal(): unknown {
    const t = this.t;
    const start = this.i;
    for (;;) {
      const c = t.charCodeAt(this.i);
      if ((c >= 48 && c <= 57) || c === 45 || c === 43 || c === 46 || c === 101 || c === 69 || (c >= 97 && c <= 122)) this.i++;
      else break;
    }
    const word = t.slice(start, this.i);
    if (word === 'true') return true;
    if (word === 'false') return false;
    if (word === 'null') return null;
    if (/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(word)) return Number(word);
    throw new Bad(`unexpected ${word === '' ? JSON.stringify(t.charAt(start) || 'end of input') : JSON.stringify(word)} at offset ${start}`);
  }
}
