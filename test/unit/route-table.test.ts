import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../helpers/seeded.js';
import { RouteTable, pathPrefixHash, relativePath, type RouteInput } from '../../src/dataplane/route-table.js';

function table(routes: [basePath: string, hosts: string[], value: string][]): RouteTable<string> {
  return new RouteTable(routes.map(([basePath, hosts, value]) => ({ basePath, hosts, value })));
}

function valueOf(t: RouteTable<string>, host: string | undefined, path: string): string | null {
  return t.match(host, path)?.value ?? null;
}

describe('RouteTable: longest basePath on a segment boundary', () => {
  const t = table([
    ['/', [], 'root'],
    ['/echo', [], 'echo'],
    ['/api', [], 'api'],
    ['/api/v1', [], 'api-v1'],
    ['/api/v1/admin/x', [], 'deep'],
    ['/a.b', [], 'dot'],
  ]);

  it.each([
    ['/', 'root'],
    ['/echo', 'echo'],
    ['/echo/', 'echo'],
    ['/echo/x', 'echo'],
    ['/echo/x/y/', 'echo'],
    ['/echoes', 'root'],
    ['/echo.x', 'root'],
    ['/ech', 'root'],
    ['/x/echo', 'root'],
    ['/api', 'api'],
    ['/api/', 'api'],
    ['/api/v2', 'api'],
    ['/api/v1', 'api-v1'],
    ['/api/v1/', 'api-v1'],
    ['/api/v1/users', 'api-v1'],
    ['/api/v10', 'api'],
    ['/api/v1/admin', 'api-v1'],
    ['/api/v1/admin/x', 'deep'],
    ['/api/v1/admin/xy', 'api-v1'],
    ['/api/v1/admin/x/1', 'deep'],
    ['/apix/v1', 'root'],
    ['/a.b', 'dot'],
    ['/a.b/c', 'dot'],
    ['/aXb', 'root'],
  ])('%s -> %s', (path, expected) => {
    expect(valueOf(t, undefined, path)).toBe(expected);
    expect(valueOf(t, 'any.example.com', path)).toBe(expected);
  });

  it('without a root route, unmatched paths give null', () => {
    const t2 = table([['/echo', [], 'echo']]);
    expect(valueOf(t2, undefined, '/echoes')).toBeNull();
    expect(valueOf(t2, undefined, '/')).toBeNull();
    expect(valueOf(t2, undefined, '/other/echo')).toBeNull();
    expect(valueOf(t2, undefined, '/echo')).toBe('echo');
  });

  it('an empty table matches nothing; a non-"/" path matches nothing', () => {
    expect(valueOf(table([]), undefined, '/')).toBeNull();
    expect(valueOf(t, undefined, '')).toBeNull();
    expect(valueOf(t, undefined, 'echo')).toBeNull();
  });

  it('"/" alone matches everything', () => {
    const t2 = table([['/', [], 'root']]);
    for (const p of ['/', '/a', '/a/b/', '/echo']) expect(valueOf(t2, undefined, p)).toBe('root');
  });

  it('the Route carries basePath and its length', () => {
    const r = t.match(undefined, '/api/v1/x')!;
    expect(r).toEqual({ value: 'api-v1', basePath: '/api/v1', basePathLength: 7 });
    expect(t.match(undefined, '/zzz')).toEqual({ value: 'root', basePath: '/', basePathLength: 1 });
  });
});

describe('RouteTable: hosts', () => {
  const t = table([
    ['/api', [], 'api-any'],
    ['/api', ['api.example.com', 'API2.Example.com'], 'api-exact'],
    ['/api', ['*.tenant.example.com'], 'api-tenant'],
    ['/api', ['[::1]', '10.0.0.1'], 'api-ip'],
    ['/admin', ['admin.example.com'], 'admin-only'],
    ['/', ['*.example.com'], 'root-wild'],
  ]);

  it.each([
    // exact, case-insensitive, port ignored
    ['api.example.com', '/api/x', 'api-exact'],
    ['API.EXAMPLE.COM', '/api/x', 'api-exact'],
    ['Api.Example.Com:8443', '/api', 'api-exact'],
    ['api.example.com:80', '/api/', 'api-exact'],
    ['api2.example.com', '/api', 'api-exact'],
    ['api.example.com.', '/api', 'api-exact'],
    ['api.example.com.:443', '/api', 'api-exact'],
    // wildcard: one or more labels, not the bare suffix
    ['a.tenant.example.com', '/api', 'api-tenant'],
    ['a.b.tenant.example.com:1', '/api', 'api-tenant'],
    ['A.TENANT.EXAMPLE.COM', '/api', 'api-tenant'],
    ['tenant.example.com', '/api', 'api-any'],
    ['xtenant.example.com', '/api', 'api-any'],
    ['.tenant.example.com', '/api', 'api-any'], // an empty first label is not "one or more labels"
    // IP literals
    ['[::1]', '/api', 'api-ip'],
    ['[::1]:8080', '/api', 'api-ip'],
    ['10.0.0.1:80', '/api', 'api-ip'],
    ['[::2]:8080', '/api', 'api-any'],
    // non-matching / absent host falls back to the host-less route at the same basePath
    ['other.org', '/api', 'api-any'],
    ['api.example.com.evil.org', '/api', 'api-any'],
    ['evilapi.example.com', '/api', 'api-any'],
    [undefined, '/api', 'api-any'],
    ['', '/api', 'api-any'],
    [':8080', '/api', 'api-any'],
    // a basePath with only host routes: no match falls back to a shorter basePath
    ['admin.example.com', '/admin/x', 'admin-only'],
    ['ADMIN.example.com:9', '/admin', 'admin-only'],
    ['www.example.com', '/admin/x', 'root-wild'],
    ['other.org', '/admin/x', null],
    [undefined, '/admin', null],
    // root wildcard
    ['www.example.com', '/', 'root-wild'],
    ['example.com', '/', null],
    [undefined, '/anything', null],
  ])('host %j path %j -> %j', (host, path, expected) => {
    expect(valueOf(t, host, path)).toBe(expected);
  });

  it('host routes beat the host-less route regardless of declaration order', () => {
    const a = table([
      ['/x', ['h.com'], 'hosted'],
      ['/x', [], 'any'],
    ]);
    const b = table([
      ['/x', [], 'any'],
      ['/x', ['h.com'], 'hosted'],
    ]);
    for (const t2 of [a, b]) {
      expect(valueOf(t2, 'h.com', '/x/1')).toBe('hosted');
      expect(valueOf(t2, 'g.com', '/x/1')).toBe('any');
      expect(valueOf(t2, undefined, '/x/1')).toBe('any');
    }
  });

  it('a longer host-less basePath beats a shorter hosted one', () => {
    const t2 = table([
      ['/a', ['h.com'], 'a-hosted'],
      ['/a/b', [], 'ab-any'],
    ]);
    expect(valueOf(t2, 'h.com', '/a/b/c')).toBe('ab-any');
    expect(valueOf(t2, 'h.com', '/a/c')).toBe('a-hosted');
  });

  it('disjoint host sets may share a basePath', () => {
    const t2 = table([
      ['/x', ['a.com'], 'a'],
      ['/x', ['b.com', '*.c.com'], 'b'],
      ['/x', ['*.d.com'], 'd'],
    ]);
    expect(valueOf(t2, 'a.com', '/x')).toBe('a');
    expect(valueOf(t2, 'b.com', '/x')).toBe('b');
    expect(valueOf(t2, 'z.c.com', '/x')).toBe('b');
    expect(valueOf(t2, 'z.d.com', '/x')).toBe('d');
    expect(valueOf(t2, 'c.com', '/x')).toBeNull();
  });
});

describe('RouteTable: construction errors', () => {
  it.each<[string, [string, string[]][], RegExp]>([
    ['two host-less', [['/echo', []], ['/echo', []]], /"\/echo"/],
    ['two host-less roots', [['/', []], ['/', []]], /"\/"/],
    ['same host', [['/echo', ['a.com']], ['/echo', ['a.com']]], /"\/echo".*overlap/],
    ['same host, different case', [['/echo', ['A.com']], ['/echo', ['a.COM']]], /"\/echo".*overlap/],
    ['same host, trailing dot', [['/echo', ['a.com.']], ['/echo', ['a.com']]], /"\/echo".*overlap/],
    ['one shared host among several', [['/echo', ['a.com', 'b.com']], ['/echo', ['c.com', 'b.com']]], /"\/echo".*b\.com/],
    ['exact covered by wildcard', [['/echo', ['*.a.com']], ['/echo', ['x.a.com']]], /"\/echo".*overlap/],
    ['wildcard covering exact', [['/echo', ['x.y.a.com']], ['/echo', ['*.a.com']]], /"\/echo".*overlap/],
    ['nested wildcards', [['/echo', ['*.a.com']], ['/echo', ['*.b.a.com']]], /"\/echo".*overlap/],
    ['equal wildcards', [['/echo', ['*.a.com']], ['/echo', ['*.A.com']]], /"\/echo".*overlap/],
  ])('duplicate: %s', (_name, routes, message) => {
    const inputs: RouteInput<number>[] = routes.map(([basePath, hosts], i) => ({ basePath, hosts, value: i }));
    expect(() => new RouteTable(inputs)).toThrow(TypeError);
    expect(() => new RouteTable(inputs)).toThrow(message);
  });

  it.each([
    ['wildcard vs its bare suffix', [['/e', ['*.a.com']], ['/e', ['a.com']]]],
    ['sibling wildcards', [['/e', ['*.a.com']], ['/e', ['*.b.com']]]],
    ['suffix that is not a label boundary', [['/e', ['*.a.com']], ['/e', ['xa.com']]]],
    ['same hosts, different basePaths', [['/e', ['a.com']], ['/f', ['a.com']], ['/e/f', ['a.com']]]],
    ['host-less and hosted', [['/e', []], ['/e', ['a.com']]]],
  ] as [string, [string, string[]][]][])('not a duplicate: %s', (_name, routes) => {
    expect(() => new RouteTable(routes.map(([basePath, hosts], i) => ({ basePath, hosts, value: i })))).not.toThrow();
  });

  it.each([
    '',
    'echo',
    '/echo/',
    '//',
    '/a//b',
    '/a/./b',
    '/a/../b',
    '/a/..',
    '/.',
    '/a%2Fb',
    '/a%2fb',
    '/a%7e', // decodable: not canonical
    '/a%c3', // lowercase hex: not canonical
    '/a?x=1',
    '/a#x',
    '/a b',
    '/a\\b',
    '/caf\u00e9',
    '/a%',
    '/a;b', // path parameters are rejected on requests, so such a basePath could never match
  ])('invalid basePath %j is a TypeError naming it', (basePath) => {
    const make = () => new RouteTable([{ basePath, hosts: [], value: 1 }]);
    expect(make).toThrow(TypeError);
    expect(make).toThrow(JSON.stringify(basePath));
  });

  it.each(['/', '/a', '/a/b', '/a.b', '/~x', '/a%20b', '/a%C3%A9', '/..a', '/v1.0'])('valid basePath %j', (basePath) => {
    const t = new RouteTable([{ basePath, hosts: [], value: 1 }]);
    expect(t.match(undefined, basePath)?.basePath).toBe(basePath);
  });

  it.each(['', '*', '*.', '*.*.com', 'a.*.com', '*a.com', 'a..com', '.a.com', 'a.com:80', 'a com', 'a/b', '[::1', '[::g]', '[]', 'caf\u00e9.com'])(
    'invalid host %j is a TypeError naming the basePath',
    (host) => {
      const make = () => new RouteTable([{ basePath: '/echo', hosts: [host], value: 1 }]);
      expect(make).toThrow(TypeError);
      expect(make).toThrow('"/echo"');
    },
  );
});

describe('relativePath', () => {
  const t = table([
    ['/', [], 'root'],
    ['/echo', [], 'echo'],
    ['/api/v1', [], 'v1'],
  ]);
  it.each([
    ['/echo/a', '/a'],
    ['/echo', '/'],
    ['/echo/', '/'],
    ['/echo/a/b/', '/a/b/'],
    ['/api/v1', '/'],
    ['/api/v1/users/7', '/users/7'],
    ['/', '/'],
    ['/echoes', '/echoes'],
    ['/x/y', '/x/y'],
  ])('%s -> %s', (path, rel) => {
    const r = t.match(undefined, path)!;
    expect(relativePath(r, path)).toBe(rel);
  });
});

describe('RouteTable: hash collisions between basePaths', () => {
  it('two basePaths with the same prefix hash both route correctly', () => {
    const seen = new Map<number, string>();
    let pair: [string, string] | null = null;
    for (let i = 0; i < 2_000_000 && pair === null; i++) {
      const p = `/c${i.toString(36)}`;
      const h = pathPrefixHash(p);
      const other = seen.get(h);
      if (other !== undefined) pair = [other, p];
      else seen.set(h, p);
    }
    expect(pair).not.toBeNull();
    const [a, b] = pair!;
    expect(pathPrefixHash(a)).toBe(pathPrefixHash(b));
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      const t = table(order.map((p) => [p, [], p] as [string, string[], string]));
      expect(valueOf(t, undefined, a)).toBe(a);
      expect(valueOf(t, undefined, `${a}/x`)).toBe(a);
      expect(valueOf(t, undefined, b)).toBe(b);
      expect(valueOf(t, undefined, `${b}/`)).toBe(b);
    }
    // Only one of the two configured: the other must not be matched through the shared hash.
    const only = table([[a, [], a]]);
    expect(valueOf(only, undefined, b)).toBeNull();
    expect(valueOf(only, undefined, `${b}/y`)).toBeNull();
  });
});

describe('RouteTable: agrees with a naive reference on random tables', () => {
  // Fixed seeds (rng(42), ...) keep these properties reproducible.
  const rng = mulberry32;

  interface Ref {
    basePath: string;
    hosts: string[];
    value: number;
  }

  function refHostMatch(hosts: string[], host: string | undefined): boolean {
    if (host === undefined) return false;
    const name = host.replace(/:\d+$/, '').toLowerCase();
    return hosts.some((h) => (h.startsWith('*.') ? name.endsWith(h.slice(1).toLowerCase()) && name.length > h.length - 1 : name === h.toLowerCase()));
  }

  function reference(routes: Ref[], host: string | undefined, path: string): number | null {
    const candidates = routes
      .filter((r) => r.basePath === '/' || path === r.basePath || path.startsWith(r.basePath + '/'))
      .sort((x, y) => y.basePath.length - x.basePath.length);
    for (let i = 0; i < candidates.length; ) {
      const bp = candidates[i]!.basePath;
      const same = candidates.filter((r) => r.basePath === bp);
      const hosted = same.find((r) => r.hosts.length > 0 && refHostMatch(r.hosts, host));
      if (hosted) return hosted.value;
      const any = same.find((r) => r.hosts.length === 0);
      if (any) return any.value;
      i += same.length;
    }
    return null;
  }

  it('10 000 random lookups over 50 random tables', () => {
    const next = rng(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
    const SEGS = ['a', 'b', 'ab', 'api', 'v1'];
    const HOSTS = ['x.com', 'y.com', '*.x.com', '*.z.x.com', '*.y.com'];
    const REQ_HOSTS = [undefined, 'x.com', 'X.COM:80', 'a.x.com', 'b.z.x.com:8', 'y.com', 'q.y.com', 'other.org'];
    let nonNull = 0;
    let lookups = 0;
    for (let n = 0; n < 50; n++) {
      const routes: Ref[] = [];
      const count = 1 + Math.floor(next() * 12);
      for (let i = 0; i < count; i++) {
        const depth = Math.floor(next() * 3);
        let bp = '';
        for (let d = 0; d < depth; d++) bp += '/' + pick(SEGS);
        if (bp === '') bp = '/';
        const hosts = next() < 0.5 ? [] : [pick(HOSTS)];
        routes.push({ basePath: bp, hosts, value: i });
      }
      let t: RouteTable<number>;
      try {
        t = new RouteTable(routes);
      } catch {
        continue; // a random duplicate: not what this test is about
      }
      for (let k = 0; k < 200; k++) {
        const depth = Math.floor(next() * 4);
        let path = '';
        for (let d = 0; d < depth; d++) path += '/' + pick(SEGS);
        if (path === '' || next() < 0.2) path += '/';
        const host = pick(REQ_HOSTS);
        const got = t.match(host, path)?.value ?? null;
        expect(got, `${host} ${path} ${JSON.stringify(routes)}`).toBe(reference(routes, host, path));
        if (got !== null) nonNull++;
        lookups++;
      }
    }
    expect(lookups).toBeGreaterThan(4000);
    expect(nonNull).toBeGreaterThan(1000);
  });
});

describe('RouteTable: match() does only lookups', () => {
  it('never slices, splits, lowercases or uses regex for a lowercase port-less Host', () => {
    const t = table([
      ['/', [], 'root'],
      ['/api', ['api.example.com'], 'api-host'],
      ['/api', [], 'api'],
      ['/api/v1', ['*.example.com'], 'v1'],
    ]);
    const saved = {
      slice: String.prototype.slice,
      substring: String.prototype.substring,
      split: String.prototype.split,
      toLowerCase: String.prototype.toLowerCase,
      exec: RegExp.prototype.exec,
    };
    const boom = () => {
      throw new Error('forbidden on the hot path');
    };
    const got: (string | null)[] = [];
    try {
      String.prototype.slice = boom as never;
      String.prototype.substring = boom as never;
      String.prototype.split = boom as never;
      String.prototype.toLowerCase = boom as never;
      RegExp.prototype.exec = boom as never;
      got.push(valueOf(t, 'api.example.com', '/api/x'));
      got.push(valueOf(t, 'a.example.com', '/api/v1/y/'));
      got.push(valueOf(t, undefined, '/api/v1/y'));
      got.push(valueOf(t, 'other.org', '/zzz/api'));
    } finally {
      String.prototype.slice = saved.slice;
      String.prototype.substring = saved.substring;
      String.prototype.split = saved.split;
      String.prototype.toLowerCase = saved.toLowerCase;
      RegExp.prototype.exec = saved.exec;
    }
    expect(got).toEqual(['api-host', 'v1', 'api', 'root']);
  });
});
