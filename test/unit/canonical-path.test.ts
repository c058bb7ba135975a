import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../helpers/seeded.js';
import { canonicalizeTarget } from '../../src/dataplane/canonical-path.js';

function okPath(target: string): string {
  const r = canonicalizeTarget(target);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(target)} to be accepted, got: ${r.reason}`);
  return r.path;
}

function reason(target: string): string {
  const r = canonicalizeTarget(target);
  if (r.ok) throw new Error(`expected ${JSON.stringify(target)} to be rejected, got path ${JSON.stringify(r.path)}`);
  return r.reason;
}

const HEX = '0123456789ABCDEFabcdef';
/** RFC 3986 pchar without ";": unreserved, the other sub-delims, ":" and "@". A canonical path spells these raw. */
function isRawInPath(c: number): boolean {
  return /[A-Za-z0-9\-._~!$&'()*+,=:@]/.test(String.fromCharCode(c));
}

/**
 * Independent oracle: spell pchar raw and everything else escaped with uppercase hex (raw
 * characters a URI may not carry get escaped), RFC 3986 §5.2.4 verbatim, then merge slashes.
 */
function oracle(path: string): string {
  const decoded = path.replace(/%([0-9A-Fa-f]{2})|(["<>[\]^`{|}])/g, (_m, h: string | undefined, raw: string | undefined) => {
    if (raw !== undefined) return `%${raw.charCodeAt(0).toString(16).toUpperCase()}`;
    const v = parseInt(h!, 16);
    return isRawInPath(v) ? String.fromCharCode(v) : `%${h!.toUpperCase()}`;
  });
  let input = decoded;
  let out = '';
  const dropLast = () => {
    out = out.slice(0, Math.max(0, out.lastIndexOf('/')));
  };
  while (input.length > 0) {
    if (input.startsWith('../')) input = input.slice(3);
    else if (input.startsWith('./')) input = input.slice(2);
    else if (input.startsWith('/./')) input = '/' + input.slice(3);
    else if (input === '/.') input = '/';
    else if (input.startsWith('/../')) {
      input = '/' + input.slice(4);
      dropLast();
    } else if (input === '/..') {
      input = '/';
      dropLast();
    } else if (input === '.' || input === '..') input = '';
    else {
      const m = /^\/?[^/]*/.exec(input)![0];
      out += m;
      input = input.slice(m.length);
    }
  }
  const merged = out.replace(/\/{2,}/g, '/');
  return merged === '' ? '/' : merged;
}

describe('canonicalizeTarget: already-canonical paths pass through unchanged', () => {
  it.each([
    '/',
    '/a',
    '/a/b',
    '/a/b/',
    '/echo/x/y/z/',
    '/a%20b',
    '/a%C3%A9',
    '/%25',
    '/a,b=c,d',
    "/a:b@c!$&'()*+=",
    '/~user/-_.~',
    '/.a',
    '/a.',
    '/..a',
    '/a..',
    '/...',
    '/a./.b/',
    '/%3F%23',
  ])('%s', (p) => {
    const r = canonicalizeTarget(p);
    expect(r).toEqual({ ok: true, path: p, search: '', authority: null });
  });
});

describe('canonicalizeTarget: one spelling per byte (pchar decoded, the rest escaped)', () => {
  it.each([
    ['/%61dmin', '/admin'],
    ['/%41%5A%7e%2D%5f%30%39', '/AZ~-_09'],
    ['/a%2Eb', '/a.b'],
    // Reserved characters a segment may hold raw: backends decode these before routing.
    ['/a%2b', '/a+'],
    ['/users/%40me', '/users/@me'],
    ['/v1/items%3Abatch', '/v1/items:batch'],
    ['/do%21it', '/do!it'],
    ['/%24%26%27%28%29%2A%2C%3D', "/$&'()*,="],
    // Printable characters a URI never carries raw: always escaped, whichever way they came.
    ['/a"b', '/a%22b'],
    ['/a%22b', '/a%22b'],
    ['/{x}|<y>^`[z]', '/%7Bx%7D%7C%3Cy%3E%5E%60%5Bz%5D'],
    ['/%7b%7c', '/%7B%7C'],
    ['/a%c3%a9', '/a%C3%A9'],
    ['/a%Fa%fA', '/a%FA%FA'],
    ['/a%20b%3f', '/a%20b%3F'],
    ['/%7E', '/~'],
    ['/%25', '/%25'],
    ['/%2541', '/%2541'], // "%25" is "%" (not unreserved): kept; "41" is literal text, not an escape
    ['/%252e%252e', '/%252e%252e'], // double encoding stays encoded, the literal "2e" is not touched
    ['/%252E%252E', '/%252E%252E'],
    ['/a/%252e%252e/admin', '/a/%252e%252e/admin'],
    ['/%25%2e', '/%25.'],
  ])('%s -> %s', (input, expected) => {
    expect(okPath(input)).toBe(expected);
  });
});

describe('canonicalizeTarget: dot segments (RFC 3986 §5.2.4) and repeated slashes', () => {
  it.each([
    ['/a/./b', '/a/b'],
    ['/a/../b', '/b'],
    ['/a/b/../c', '/a/c'],
    ['/../a', '/a'],
    ['/../../..', '/'],
    ['/a/../../../b', '/b'],
    ['/.', '/'],
    ['/..', '/'],
    ['/./', '/'],
    ['/../', '/'],
    ['/a/..', '/'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/b/./', '/a/b/'],
    ['/a/b/../../c/', '/c/'],
    ['/a/%2e%2e/b', '/b'],
    ['/a/%2E%2E/b', '/b'],
    ['/a/.%2e/b', '/b'],
    ['/a/%2e./b', '/b'],
    ['/a/%2e/b', '/a/b'],
    ['/a/b/%2e%2e', '/a/'],
    ['/a/%2e', '/a/'],
    ['//a///b', '/a/b'],
    ['//', '/'],
    ['///', '/'],
    ['/a//', '/a/'],
    ['/a/b//', '/a/b/'],
    ['//a', '/a'],
    // §5.2.4 runs before slashes merge: ".." removes the empty segment between "//".
    ['/a//../b', '/a/b'],
    ['/a/.//b', '/a/b'],
    ['/a/./../b', '/b'],
  ])('%s -> %s', (input, expected) => {
    expect(okPath(input)).toBe(expected);
  });
});

describe('canonicalizeTarget: attack strings', () => {
  it.each([
    ['/echo/%2e%2e/admin', '/admin'],
    ['/echo/./../admin', '/admin'],
    ['//admin', '/admin'],
    ['/echo/..//admin', '/admin'],
    ['/echo/%2E%2e/%2e%2E/admin/', '/admin/'],
    ['/echo/%2e%2e%2e/admin', '/echo/.../admin'], // "..." is an ordinary segment
    ['/%2e%2e/%2e%2e/etc/passwd', '/etc/passwd'],
    ['/echo/%2561dmin', '/echo/%2561dmin'],
  ])('%s -> %s', (input, expected) => {
    expect(okPath(input)).toBe(expected);
  });

  it.each([
    ['/echo/..%2f..%2fadmin', /encoded slash/],
    ['/echo/..%2F..%2Fadmin', /encoded slash/],
    ['/a%2fb', /encoded slash/],
    ['/echo\\..\\admin', /backslash/],
    ['/a\\b', /backslash/],
    ['/a%5cb', /encoded backslash/],
    ['/a%5Cb', /encoded backslash/],
    ['/a%00b', /NUL/],
    ['/a\u0000b', /NUL/],
    ['/a%0d%0aX-Injected:1', /CR or LF/],
    ['/a%0D%0AX-Injected:1', /CR or LF/],
    ['/a%0ab', /CR or LF/],
    ['/a\r\nX-Injected:1', /CR or LF/],
    ['/a\nb', /CR or LF/],
    ['/a\tb', /control character/],
    ['/a\u001fb', /control character/],
    ['/a\u007fb', /control character/],
    ['/a\u0001', /control character/],
    ['/a#frag', /fragment/],
    ['/a/#', /fragment/],
    ['/a?x=1#frag', /fragment/],
    ['/a b', /space/],
    ['/caf\u00e9', /non-ASCII/],
    ['/a\u2028b', /non-ASCII/],
    ['/\ud83d\ude00', /non-ASCII/],
    ['/%', /malformed percent/],
    ['/a%', /malformed percent/],
    ['/a%2', /malformed percent/],
    ['/%1', /malformed percent/],
    ['/%G1', /malformed percent/],
    ['/%1G', /malformed percent/],
    ['/%%41', /malformed percent/],
    ['/a%2?x=1', /malformed percent/], // the escape may not borrow the "?"
  ])('%j is rejected (%s)', (input, why) => {
    expect(reason(input)).toMatch(why);
  });
});

describe('canonicalizeTarget: query', () => {
  it.each([
    ['/a?x=1', '/a', '?x=1'],
    ['/a?', '/a', '?'],
    ['/?', '/', '?'],
    ['/a/%2e%2e/b?x=%2e%2e/../%zz', '/b', '?x=%2e%2e/../%zz'],
    ['/a?b?c', '/a', '?b?c'],
    ['/a?x=%0d%0a', '/a', '?x=%0d%0a'], // escapes in the query are passed through untouched
    ['/a?x=a b\t', '/a', '?x=a b\t'],
    ['/a?%2f\\', '/a', '?%2f\\'],
    ['//x/../y/?q', '/y/', '?q'],
  ])('%j -> path %j search %j', (input, path, search) => {
    expect(canonicalizeTarget(input)).toEqual({ ok: true, path, search, authority: null });
  });

  it.each([
    ['/a?x#y', /fragment/],
    ['/a?x\r\nSet-Cookie:1', /CR or LF/],
    ['/a?x\n', /CR or LF/],
    ['/a?x\u0000', /NUL/],
  ])('%j is rejected (%s)', (input, why) => {
    expect(reason(input)).toMatch(why);
  });
});

describe('canonicalizeTarget: request-target forms (RFC 9112 §3.2)', () => {
  it.each([
    ['http://example.com/a/b?x=1', '/a/b', '?x=1', 'example.com'],
    ['http://Example.COM:8080/a/b?x=1', '/a/b', '?x=1', 'example.com:8080'],
    ['HTTP://h/a', '/a', '', 'h'],
    ['HtTpS://h/a', '/a', '', 'h'],
    ['https://h:443/', '/', '', 'h:443'],
    ['http://h', '/', '', 'h'],
    ['http://h?x', '/', '?x', 'h'],
    ['http://h/%2e%2e/x/%61', '/x/a', '', 'h'],
    ['http://h//admin', '/admin', '', 'h'],
    ['http://10.0.0.1:80/a', '/a', '', '10.0.0.1:80'],
    ['http://[::1]:8080/a', '/a', '', '[::1]:8080'],
    ['http://[::ABCD]/a', '/a', '', '[::abcd]'],
    ['http://[::ffff:10.0.0.1]/', '/', '', '[::ffff:10.0.0.1]'],
  ])('%s', (input, path, search, authority) => {
    expect(canonicalizeTarget(input)).toEqual({ ok: true, path, search, authority });
  });

  it('origin-form has a null authority', () => {
    expect(canonicalizeTarget('/a')).toEqual({ ok: true, path: '/a', search: '', authority: null });
  });

  it.each([
    ['', /empty/],
    ['*', /asterisk-form/],
    ['example.com:443', /authority-form/],
    ['a/b', /origin-form|absolute-form/],
    ['a', /origin-form|absolute-form/],
    ['./a', /origin-form|absolute-form/],
    ['?x=1', /origin-form|absolute-form/],
    ['ftp://h/a', /http or https/],
    ['ws://h/a', /http or https/],
    ['httpx://h/a', /http or https/],
    ['http:/a', /.+/],
    ['http:a', /.+/],
    ['http:///a', /empty host/],
    ['http://:80/a', /empty host/],
    ['http://user@h/', /userinfo/],
    ['http://user:pw@h/', /userinfo/],
    ['http://h:99999/', /port/],
    ['http://h:/', /port/],
    ['http://h:8x/', /port/],
    ['http://h:80:80/', /port/],
    ['http://h%41/', /authority/],
    ['http://h h/', /authority/],
    ['http://h\\x/', /authority/],
    ['http://[::1/', /IPv6/],
    ['http://[v1.x]/', /IPv6/],
    ['http://[::1]x/', /authority/],
    ['http://h#f', /fragment/],
    ['http://h/a#f', /fragment/],
    ['http://h/a%2fb', /encoded slash/],
  ])('%j is rejected (%s)', (input, why) => {
    expect(reason(input)).toMatch(why);
  });
});

describe('canonicalizeTarget: properties', () => {
  // Fixed seeds (rng(42), ...) keep these properties reproducible.
  const rng = mulberry32;
  const ALPHABET = ['/', '.', 'a', '%2e', '%2E', '%41', '%2f', '//'];

  function hasDecodableEscape(p: string): boolean {
    for (let i = p.indexOf('%'); i >= 0; i = p.indexOf('%', i + 1)) {
      const h = p.slice(i + 1, i + 3);
      if (h.length === 2 && [...h].every((ch) => HEX.includes(ch)) && isRawInPath(parseInt(h, 16))) return true;
    }
    return false;
  }

  it('random targets: rejected only for a reason, else canonical, equal to the RFC oracle, and a fixed point', () => {
    const next = rng(0x1badb002);
    let accepted = 0;
    let rejected = 0;
    for (let n = 0; n < 20000; n++) {
      let s = n % 4 === 0 ? '' : '/';
      const k = 1 + Math.floor(next() * 12);
      for (let j = 0; j < k; j++) s += ALPHABET[Math.floor(next() * ALPHABET.length)]!;
      const r = canonicalizeTarget(s);
      if (!r.ok) {
        rejected++;
        // The only legitimate reasons for this alphabet.
        expect(!s.startsWith('/') || s.toLowerCase().includes('%2f'), `${s}: ${r.reason}`).toBe(true);
        continue;
      }
      accepted++;
      const p = r.path;
      expect(p.startsWith('/'), s).toBe(true);
      expect(p.includes('//'), s).toBe(false);
      expect(/(^|\/)\.\.?(\/|$)/.test(p), `${s} -> ${p}`).toBe(false);
      expect(hasDecodableEscape(p), `${s} -> ${p}`).toBe(false);
      expect(r.search).toBe('');
      expect(p, s).toBe(oracle(s));
      expect(canonicalizeTarget(p)).toEqual({ ok: true, path: p, search: '', authority: null });
    }
    expect(accepted).toBeGreaterThan(5000);
    expect(rejected).toBeGreaterThan(1000);
  });

  it('random printable targets agree with the oracle and are fixed points', () => {
    const next = rng(42);
    const parts = ['/', '.', '..', 'a', 'B', '%2e', '%7e', '%7E', '%25', '%c3', '%3f', '%40', '%3a', '+', '"', '%22', '{', '%7d', ':', '~', '-', '//', '/./', '/../'];
    for (let n = 0; n < 20000; n++) {
      let s = '/';
      const k = 1 + Math.floor(next() * 10);
      for (let j = 0; j < k; j++) s += parts[Math.floor(next() * parts.length)]!;
      const r = canonicalizeTarget(s);
      expect(r.ok, s).toBe(true);
      if (!r.ok) continue;
      expect(r.path, s).toBe(oracle(s));
      expect(okPath(r.path)).toBe(r.path);
    }
  });
});

describe('canonicalizeTarget: fast path', () => {
  it('an already-canonical origin-form path is returned without slicing, decoding or regex', () => {
    const saved = {
      slice: String.prototype.slice,
      substring: String.prototype.substring,
      toLowerCase: String.prototype.toLowerCase,
      fromCharCode: String.fromCharCode,
      exec: RegExp.prototype.exec,
    };
    const boom = () => {
      throw new Error('forbidden on the fast path');
    };
    const results: unknown[] = [];
    try {
      String.prototype.slice = boom as never;
      String.prototype.substring = boom as never;
      String.prototype.toLowerCase = boom as never;
      String.fromCharCode = boom as never;
      RegExp.prototype.exec = boom as never;
      for (const p of ['/', '/a/b/', '/echo/x%20y/%C3%A9', '/a,b/..c']) results.push(canonicalizeTarget(p));
    } finally {
      String.prototype.slice = saved.slice;
      String.prototype.substring = saved.substring;
      String.prototype.toLowerCase = saved.toLowerCase;
      String.fromCharCode = saved.fromCharCode;
      RegExp.prototype.exec = saved.exec;
    }
    expect(results.map((r) => (r as { path: string }).path)).toEqual(['/', '/a/b/', '/echo/x%20y/%C3%A9', '/a,b/..c']);
  });
});

describe('path parameters (regression: servlet containers strip ";..." and treat "..;" as "..")', () => {
  it.each(['/admin;x', '/a/..;/admin', '/a/.;/b', '/a;jsessionid=1/b'])('rejects %j', (t) => {
    const r = canonicalizeTarget(t);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toBe('path parameters (";", raw or %3B) are not accepted');
  });
  it.each(['/a%3bb', '/admin%3Bx', '/a/..%3B/admin'])('rejects the encoded semicolon in %j: a container that decodes before it strips sees a path parameter', (t) => {
    expect(reason(t)).toBe('path parameters (";", raw or %3B) are not accepted');
  });
  it.each(['/admin%09', '/a%1fb', '/a%7F'])('rejects the encoded control character in %j (some backends trim it)', (t) => {
    expect(reason(t)).toBe('control character (raw or encoded) in path');
  });
  it('allows ";" in the query', () => {
    expect(canonicalizeTarget('/a?x=1;y=2')).toEqual({ ok: true, path: '/a', search: '?x=1;y=2', authority: null });
  });
});
