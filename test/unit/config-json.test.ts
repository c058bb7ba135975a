import { readFileSync } from 'node:fs';
import { parseDocument, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { firstKeyIssue, hasRepeatedKey, parseJsonConfig } from '../../src/config/json-config.js';
import { ConfigError, parseConfigText } from '../../src/config/load.js';
import { mulberry32, testSeed } from '../helpers/seeded.js';

const sample = parseConfigText(readFileSync('config/gateway.yaml', 'utf8'), 'config/gateway.yaml');

function issuesOf(text: string): string[] {
  try {
    parseConfigText(text, 't.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected a ConfigError');
}

describe('config files written as JSON', () => {
  it('load to the same config as the YAML form, comment lines and BOM included', () => {
    const json = JSON.stringify(sample);
    expect(parseJsonConfig(json)).toEqual(JSON.parse(json));
    for (const text of [json, `# generated\n\n  # by a tool\n${json}\n`, `\ufeff${JSON.stringify(sample, null, 2)}`]) {
      expect(parseConfigText(text, 'g.yaml')).toEqual(parseConfigText(stringify(sample), 'g.yaml'));
    }
  });

  it('take the JSON path only for a plain JSON object; anything else goes to the YAML loader', () => {
    expect(parseJsonConfig('{"listen": "127.0.0.1:1"}')).toEqual({ listen: '127.0.0.1:1' });
    // Valid YAML that JSON.parse refuses: a trailing comment, flow style without quotes, a list root.
    expect(parseJsonConfig('{"listen": "127.0.0.1:1"} # trailing\n')).toBeUndefined();
    expect(parseJsonConfig('{ listen: 127.0.0.1:1 }')).toBeUndefined();
    expect(parseJsonConfig('["a"]')).toBeUndefined();
    expect(parseJsonConfig('listen: 127.0.0.1:1\n')).toBeUndefined();
    expect(parseConfigText('{"listen": "127.0.0.1:1"} # trailing\n', 't.yaml').listen).toBe('127.0.0.1:1');
    expect(parseConfigText('{ listen: 127.0.0.1:2 }', 't.yaml').listen).toBe('127.0.0.1:2');
    expect(issuesOf('["a"]')).toEqual([': the document must be a mapping']);
  });

  it('leave a text with a bare carriage return to the YAML loader, which keeps it as text', () => {
    // JSON.parse would skip the \r as whitespace and load "127.0.0.1:8080".
    const text = '{"listen":\r"127.0.0.1:8080"}';
    expect(parseJsonConfig(text)).toBeUndefined();
    expect(issuesOf(text).join('\n')).toMatch(/^listen: .*\\r/);
    // CRLF line ends are whitespace to both: the JSON path is taken.
    expect(parseJsonConfig('{"listen":\r\n"127.0.0.1:8080"}\r\n')).toEqual({ listen: '127.0.0.1:8080' });
  });

  it('refuse a repeated key as the YAML loader does, instead of keeping the last one', () => {
    const yamlIssues = issuesOf('{"listen": "127.0.0.1:1", "listen": "127.0.0.1:2"}');
    expect(yamlIssues.join('\n')).toMatch(/^\(yaml\): .*unique/i);
    // Nested, and spelled differently: an escape names the same key.
    const nested = '{"log": {"level": "info", "access": "off", "\\u006cevel": "debug"}}';
    expect(parseJsonConfig(nested)).toBeUndefined();
    expect(issuesOf(nested).join('\n')).toMatch(/unique/i);
    // Equal keys in different objects are not repeated.
    expect(parseJsonConfig('{"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 3}, {"x": 4}]}')).toEqual({ a: { x: 1 }, b: { x: 2 }, c: [{ x: 3 }, { x: 4 }] });
  });

  it('find repeated keys exactly and give the YAML loader\'s value: checked against it on generated JSON', () => {
    const rnd = mulberry32(testSeed('config-json.test.ts'));
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    // Keys and strings with quotes, backslashes and escapes, so string ends are found by parity.
    const atoms = ['a', 'b', 'a\\', '"', 'b"', '\\"', 'é', '\u0000', 'x y', '{', ']', ',', '\r', '\r\n'];
    const text = (): string => pick(atoms) + (rnd() < 0.5 ? pick(atoms) : '');
    // Whitespace both readers treat alike between tokens, CRLF included (a bare CR is the test above).
    const sep = (): string => pick([', ', ',', ',\r\n', ',\n\t', ' ,\r\n  ']);
    const gen = (depth: number): string => {
      const r = rnd();
      if (depth > 3 || r < 0.3) return rnd() < 0.5 ? JSON.stringify(text()) : pick(['0', '-0', '17', '-1.5', '1e3', '1E-2', '1e400', '123456789012345678901234567890', 'true', 'false', 'null']);
      if (r < 0.6) return `[${Array.from({ length: Math.floor(rnd() * 4) }, () => gen(depth + 1)).join(sep())}]`;
      const members = Array.from({ length: Math.floor(rnd() * 4) }, () => {
        const key = text();
        // Sometimes the same key written with \u escapes.
        const written = rnd() < 0.3 ? `"${[...key].map((ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"` : JSON.stringify(key);
        return `${written}: ${gen(depth + 1)}`;
      });
      return `{${members.join(sep())}}`;
    };
    // The reference is the YAML loader itself (the behaviour the JSON path must keep).
    const reference = (v: string): boolean => {
      const errors = parseDocument(v, { uniqueKeys: true }).errors;
      expect(errors.filter((e) => e.code !== 'DUPLICATE_KEY'), v).toEqual([]);
      return errors.length > 0;
    };
    let withRepeats = 0;
    let jsonPath = 0;
    for (let i = 0; i < 3000; i++) {
      const v = `{${Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => `${JSON.stringify(text())}: ${gen(0)}`).join(sep())}}`;
      const expected = reference(v);
      if (expected) withRepeats++;
      expect(hasRepeatedKey(v, 0), v).toBe(expected);
      // And where the JSON path is taken (no repeated and no escaped key), its value is the YAML loader's.
      const value = parseJsonConfig(v);
      if (value !== undefined) {
        expect(expected, v).toBe(false);
        expect(value, v).toStrictEqual(parseDocument(v).toJS());
        jsonPath++;
      }
    }
    // The generator made every kind.
    expect(withRepeats).toBeGreaterThan(100);
    expect(withRepeats).toBeLessThan(2900);
    expect(jsonPath).toBeGreaterThan(100);
  });

  it('leave a text with an escape in a key to the YAML loader (V8 in Node 24 misreads such keys)', () => {
    // In Node 24.21.0, after this parse, JSON.parse('{"a\\r": 1}') returns the key "a\\".
    JSON.parse('{"a\\\\": 1}');
    for (const text of ['{"a\\r": 1}', '{"a\\u000d": 1}', '{"log": {"le\\u0076el": "debug"}}']) {
      expect(parseJsonConfig(text), text).toBeUndefined();
    }
    expect(parseJsonConfig('{"a\\r": "a value may have escapes\\r\\n"}')).toBeUndefined();
    expect(parseJsonConfig('{"a": "a value may have escapes\\r\\n"}')).toEqual({ a: 'a value may have escapes\r\n' });
    expect(parseConfigText('{"log": {"le\\u0076el": "debug"}}', 't.yaml').log.level).toBe('debug');
  });
});

describe('firstKeyIssue (admin bodies refuse repeated and escaped keys)', () => {
  const escapedKeyPath = (text: string) => {
    const r = firstKeyIssue(text, 0, true);
    if (r !== null) expect(r.issue).toBe('escaped key');
    return r?.path ?? null;
  };
  it('finds the first key written with an escape, with the path to it, and nothing else', () => {
    expect(escapedKeyPath('{"a":1,"b":{"c":[1,{"d":2,"e\\u0078":3}]}}')).toEqual(['b', 'c', 1, 'ex']);
    expect(escapedKeyPath('{"\\u0070olicy":{}}')).toEqual(['policy']);
    expect(escapedKeyPath('[{"x":1},{"y":2},{"z\\r":3}]')).toEqual([2, 'z\r']);
    expect(escapedKeyPath('{"k":"a\\\\","l":{"m\\\\":1}}')).toEqual(['l', 'm\\']);
    // Escapes in values, in array elements and in a string holding a quote are not keys.
    expect(escapedKeyPath('{"a":"\\u00e9\\"","b":["\\n",{"c":"\\"}"}],"d":{}}')).toBeNull();
    expect(escapedKeyPath('{"a":[],"b":{},"c":[[1,2],[3]]}')).toBeNull();
    expect(escapedKeyPath('"\\u0070"')).toBeNull();
  });

  it('finds the first repeated key, compared decoded, with the path to it', () => {
    const dup = (text: string) => firstKeyIssue(text, 0, true);
    expect(dup('{"policy":{"ipList":["10.0.0.0/8"],"ipList":["0.0.0.0/0"]}}')).toEqual({ path: ['policy', 'ipList'], issue: 'duplicate key' });
    expect(dup('{"ipList":["127.0.0.1"],"ipList":[]}')).toEqual({ path: ['ipList'], issue: 'duplicate key' });
    // "ip\u004cist" is "ipList": the repeat is what matters, not the escape.
    expect(dup('{"ipList":["10.0.0.0/8"],"ip\\u004cist":[]}')).toEqual({ path: ['ipList'], issue: 'duplicate key' });
    expect(dup('{"entries":[{"ip":"10.0.0.1"},{"ip":"10.0.0.2","ip":"0.0.0.0/0"}]}')).toEqual({ path: ['entries', 1, 'ip'], issue: 'duplicate key' });
    // Equal keys in sibling or nested objects, and equal strings in arrays, are not repeats: each
    // object has keys of its own, including one that reuses a closed sibling's Set.
    expect(dup('{"a":{"x":1,"y":{"x":2}},"b":{"x":3},"c":[{"x":4},{"x":5}],"d":["x","x"],"x":6}')).toBeNull();
    expect(dup('[{"a":1,"b":2},{"b":1,"a":2}]')).toBeNull();
  });
});
