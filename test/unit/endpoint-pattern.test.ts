import { afterEach, describe, expect, it } from 'vitest';
import { canonicalizeTarget } from '../../src/dataplane/canonical-path.js';
import { compileEndpointPattern, endpointPatternError } from '../../src/policy/endpoint-pattern.js';
import { mulberry32 } from '../helpers/seeded.js';

/** [pattern, path, expected] */
const CASES: [string, string, boolean][] = [
  // root
  ['/', '/', true],
  ['/', '/a', false],
  ['/', '/a/', false],
  // literals: exact but for ASCII case, trailing slash tolerated, no more segments, no prefix match
  ['/orders', '/orders', true],
  ['/orders', '/orders/', true],
  ['/orders', '/orders/1', false],
  ['/orders', '/ordersX', false],
  ['/orders', '/order', false],
  ['/orders', '/Orders', true],
  ['/orders', '/ORDERS/', true],
  ['/Admin/{id}/Items', '/aDMIN/7/items', true],
  ['/admin', '/adm1n', false],
  ['/a-b', '/A-B', true],
  ['/a-b', '/a\rb', false],
  ['/orders', '/', false],
  ['/orders', '/x/orders', false],
  ['/a/b/c', '/a/b/c', true],
  ['/a/b/c', '/a/b/c/', true],
  ['/a/b/c', '/a/b', false],
  ['/a/b/c', '/a/b/', false],
  ['/a/b/c', '/a/b/cd', false],
  ['/a/b/c', '/a/x/c', false],
  ['/a/b/c', '/a/b/c/d', false],
  ['/v1.0/a-b_c~d', '/v1.0/a-b_c~d', true],
  ["/a=c/:x@y!$&'()+,", "/a=c/:x@y!$&'()+,", true],
  // Characters a canonical path always escapes are written raw and compared escaped.
  ['/a"b', '/a%22b', true],
  ['/a"b', '/a"b', false],
  ['/x|y/[z]/^`<>', '/x%7Cy/%5Bz%5D/%5E%60%3C%3E', true],
  // {name}: exactly one non-empty segment
  ['/orders/{id}', '/orders/1', true],
  ['/orders/{id}', '/orders/abc%20def', true],
  ['/orders/{id}', '/orders/1/', true],
  ['/orders/{id}', '/orders', false],
  ['/orders/{id}', '/orders/', false],
  ['/orders/{id}', '/orders/1/items', false],
  ['/orders/{id}/items', '/orders/7/items', true],
  ['/orders/{id}/items', '/orders/7/items/', true],
  ['/orders/{id}/items', '/orders/items', false],
  ['/orders/{id}/items', '/orders/7/items/1', false],
  ['/{a}/{b}', '/x/y', true],
  ['/{a}/{b}', '/x', false],
  ['/{a}/{b}', '/x/', false],
  ['/{a}', '/', false],
  // *: exactly one non-empty segment
  ['/orders/*', '/orders/1', true],
  ['/orders/*', '/orders/1/', true],
  ['/orders/*', '/orders', false],
  ['/orders/*', '/orders/', false],
  ['/orders/*', '/orders/1/2', false],
  ['/*/items', '/x/items', true],
  ['/*/items', '/items', false],
  ['/*', '/', false],
  ['/*', '/a', true],
  // final /**: zero or more segments
  ['/orders/**', '/orders', true],
  ['/orders/**', '/orders/', true],
  ['/orders/**', '/orders/1', true],
  ['/orders/**', '/orders/1/items', true],
  ['/orders/**', '/orders/1/items/', true],
  ['/orders/**', '/ordersX', false],
  ['/orders/**', '/ordersX/1', false],
  ['/orders/**', '/order', false],
  ['/orders/**', '/', false],
  ['/orders/**', '/x/orders/1', false],
  ['/**', '/', true],
  ['/**', '/a', true],
  ['/**', '/a/b/c/', true],
  ['/orders/{id}/**', '/orders/1', true],
  ['/orders/{id}/**', '/orders/1/x/y', true],
  ['/orders/{id}/**', '/orders', false],
  ['/orders/{id}/**', '/orders/', false],
  ['/*/**', '/a', true],
  ['/*/**', '/', false],
  // malformed (non-canonical or relative) inputs never match
  ['/orders', '', false],
  ['/orders', 'orders', false],
  ['/**', '', false],
  ['/', '', false],
  ['/orders/{id}', '/orders//', false],
];

describe('compileEndpointPattern: matching', () => {
  it.each(CASES)('%j vs %j -> %s', (pattern, path, expected) => {
    const p = compileEndpointPattern(pattern);
    expect(p.source).toBe(pattern);
    expect(p.matches(path)).toBe(expected);
    expect(endpointPatternError(pattern)).toBeNull();
  });
});

/** [pattern, reason fragment] */
const INVALID: [string, RegExp][] = [
  ['', /empty/],
  ['orders', /start with "\/"/],
  ['*', /start with "\/"/],
  ['/orders//items', /empty segment/],
  ['//', /empty segment/],
  ['/orders/', /trailing slash/],
  ['/./orders', /"\." and "\.\."/],
  ['/orders/..', /"\." and "\.\."/],
  ['/orders/../admin', /"\." and "\.\."/],
  ['/**/orders', /final segment/],
  ['/orders/**/items', /final segment/],
  ['/**/**', /final segment/],
  ['/orders/***', /whole segment/],
  ['/orders*', /whole segment/],
  ['/a*b', /whole segment/],
  ['/orders/%2e', /percent/],
  ['/orders%20x', /percent/],
  ['/orders?x=1', /"\?"/],
  ['/orders#x', /"#"/],
  ['/orders x', /whitespace/],
  ['/orders\t', /whitespace/],
  ['/orders\n', /whitespace/],
  ['/orders\u0000', /control/],
  ['/orders\u007f', /control/],
  ['/caf\u00e9', /non-ASCII/],
  ['/a\\b', /backslash/],
  ['/a;b', /";" is not allowed/],
  ['/admin;jsessionid=1', /could never match/],
  ['/orders/{}', /empty parameter/],
  ['/orders/{id', /unbalanced/],
  ['/orders/id}', /unbalanced/],
  ['/orders/{{id}}', /unbalanced/],
  ['/orders/{id}}', /unbalanced/],
  ['/orders/}id{', /unbalanced/],
  ['/orders/x{id}', /whole segment/],
  ['/orders/{id}x', /whole segment/],
  ['/orders/{a}{b}', /whole segment/],
  ['/orders/{a.b}', /invalid parameter name/],
  ['/orders/{a:b}', /invalid parameter name/],
  ['/{id}/{id}', /duplicate parameter/],
];

describe('compileEndpointPattern: invalid patterns', () => {
  it.each(INVALID)('%j (%s)', (pattern, why) => {
    const err = endpointPatternError(pattern);
    expect(err).not.toBeNull();
    expect(err).toMatch(why);
    expect(() => compileEndpointPattern(pattern)).toThrow(TypeError);
    expect(() => compileEndpointPattern(pattern)).toThrow(`Invalid endpoint pattern "${pattern}": ${err}`);
  });

  it('a non-string is reported, not crashed on', () => {
    expect(endpointPatternError(undefined as unknown as string)).toMatch(/string/);
    expect(() => compileEndpointPattern(42 as unknown as string)).toThrow(TypeError);
  });
});

describe('compileEndpointPattern: valid patterns accepted', () => {
  it.each(['/', '/**', '/a', '/a/b', '/{a}', '/*', '/a/*/b/{c}/**', '/{order_id}/{Item-2}', '/v1.0/~x', '/a.b', '/...'])('%j', (p) => {
    expect(endpointPatternError(p)).toBeNull();
    expect(() => compileEndpointPattern(p)).not.toThrow();
  });
});

describe('compileEndpointPattern: matching uses no regex and no split', () => {
  const saved = {
    split: String.prototype.split,
    exec: RegExp.prototype.exec,
    match: String.prototype.match,
  };
  afterEach(() => {
    String.prototype.split = saved.split;
    RegExp.prototype.exec = saved.exec;
    String.prototype.match = saved.match;
  });

  it('matches() never calls split, match or RegExp#exec', () => {
    const patterns = ['/', '/**', '/orders', '/orders/{id}', '/orders/*/items', '/orders/**'].map((p) => compileEndpointPattern(p));
    const paths = ['/', '/orders', '/orders/', '/orders/1', '/orders/1/items', '/orders/1/items/x', '/other'];
    const boom = () => {
      throw new Error('forbidden on the hot path');
    };
    String.prototype.split = boom as never;
    RegExp.prototype.exec = boom as never;
    String.prototype.match = boom as never;
    let hits = 0;
    for (const p of patterns) for (const path of paths) if (p.matches(path)) hits++;
    String.prototype.split = saved.split;
    RegExp.prototype.exec = saved.exec;
    String.prototype.match = saved.match;
    expect(hits).toBe(1 + 7 + 2 + 1 + 1 + 5);
  });
});

describe('compileEndpointPattern: agrees with a reference regex matcher', () => {
  function reference(pattern: string, path: string): boolean {
    if (pattern === '/') return path === '/';
    const segs = pattern.slice(1).split('/');
    let re = '^';
    let globstar = false;
    for (const s of segs) {
      if (s === '**') globstar = true;
      else if (s === '*' || s.startsWith('{')) re += '/[^/]+';
      else re += '/' + s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    }
    re += globstar ? '(/.*)?$' : '/?$';
    if (pattern === '/**') re = '^/.*$';
    return new RegExp(re, 'i').test(path);
  }

  it('on every pattern × path combination from a small universe', () => {
    const patterns = ['/', '/**', '/a', '/a/b', '/a/*', '/a/{x}', '/*/b', '/a/**', '/a/*/**', '/{x}/{y}', '/ab', '/a/b/**'];
    const segs = ['a', 'b', 'ab', 'x', 'A', 'aB'];
    const paths = new Set<string>(['/']);
    for (const s1 of segs) {
      paths.add(`/${s1}`);
      paths.add(`/${s1}/`);
      for (const s2 of segs) {
        paths.add(`/${s1}/${s2}`);
        paths.add(`/${s1}/${s2}/`);
        for (const s3 of segs) paths.add(`/${s1}/${s2}/${s3}`);
      }
    }
    let checked = 0;
    for (const p of patterns) {
      const c = compileEndpointPattern(p);
      for (const path of paths) {
        expect(c.matches(path), `${p} vs ${path}`).toBe(reference(p, path));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(500);
  });
});

describe('patterns against every spelling of a path', () => {
  // A backend decodes the path before it routes, so every spelling of the same characters reaches
  // the same endpoint there. Each spelling must be the same canonical path here, and match the
  // pattern written with the characters themselves: otherwise "/users/%40me" would reach the
  // endpoint "/users/@me" without its policy.
  const CHARS = `abZ09-._~!$&'()*+,=:@"<>[]^\`{|}`;
  const spell = (ch: string, r: number): string => {
    const hex = ch.charCodeAt(0).toString(16).padStart(2, '0');
    if (r < 0.4) return ch;
    return r < 0.7 ? `%${hex.toUpperCase()}` : `%${hex.toLowerCase()}`;
  };

  it('random segments: all spellings give one canonical path, and it matches the literal pattern', () => {
    const next = mulberry32(0x5eed);
    for (let n = 0; n < 5000; n++) {
      const len = 1 + Math.floor(next() * 8);
      let seg = '';
      for (let i = 0; i < len; i++) seg += CHARS.charAt(Math.floor(next() * CHARS.length));
      if (seg === '.' || seg === '..' || seg.includes('*') || seg.includes('{') || seg.includes('}')) continue; // pattern syntax
      const pattern = compileEndpointPattern(`/${seg}/x`);
      let first: string | null = null;
      for (let k = 0; k < 4; k++) {
        let target = '/';
        for (const ch of seg) target += spell(ch, next());
        const r = canonicalizeTarget(`${target}/x`);
        expect(r.ok, target).toBe(true);
        if (!r.ok) continue;
        first ??= r.path;
        expect(r.path, `${target} vs the first spelling`).toBe(first);
        expect(pattern.matches(r.path), `/${seg}/x vs ${r.path}`).toBe(true);
      }
    }
  });
});
