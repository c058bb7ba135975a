import { describe, expect, it } from 'vitest';
import { mulberry32, testSeed } from '../helpers/seeded.js';
import { formatPrefix, parseIpEntry, rangeToPrefixes, scanIpEntry, type CidrPrefix } from '../../src/policy/ip-entry.js';

const SEED = testSeed('ip-entry.test');
const rnd = mulberry32(SEED);
const u32 = (): number => Math.floor(rnd() * 4294967296) >>> 0;

function ok(text: string): { prefixes: string[]; canonical: string; raw: CidrPrefix[] } {
  const r = parseIpEntry(text);
  if (!r.ok) throw new Error(`expected ${JSON.stringify(text)} to parse, got: ${r.error}`);
  return { prefixes: r.prefixes.map(formatPrefix), canonical: r.canonical, raw: r.prefixes };
}
function err(text: string): string {
  const r = parseIpEntry(text);
  if (r.ok) throw new Error(`expected ${JSON.stringify(text)} to fail, got ${r.prefixes.map(formatPrefix).join(', ')}`);
  return r.error;
}

// ---- BigInt helpers (tests only) ----
const BITS = { 4: 32, 6: 128 } as const;
const toBig = (family: 4 | 6, words: readonly number[]): bigint =>
  family === 4 ? BigInt(words[0]!) : words.reduce((acc, w) => (acc << 32n) | BigInt(w >>> 0), 0n);
const toWords = (family: 4 | 6, v: bigint): number[] =>
  family === 4 ? [Number(v)] : [3, 2, 1, 0].map((i) => Number((v >> BigInt(32 * i)) & 0xffffffffn));
const prefixRange = (p: CidrPrefix): [bigint, bigint] => {
  const host = BigInt(BITS[p.family] - p.length);
  const start = toBig(p.family, p.words);
  return [start, start + (1n << host) - 1n];
};

/**
 * Independent check that `prefixes` is THE minimal CIDR cover of [a, b]: they are valid aligned
 * prefixes, sorted, contiguous (so disjoint and covering exactly [a, b]), and each is maximal (its
 * parent block is not inside [a, b]). The maximal aligned blocks inside a range are its unique
 * minimal partition, so this pins down both coverage and minimal count.
 */
function checkCover(family: 4 | 6, a: bigint, b: bigint, prefixes: CidrPrefix[], msg: string): void {
  const bits = BITS[family];
  expect(prefixes.length, msg).toBeGreaterThan(0);
  let next = a;
  for (const p of prefixes) {
    expect(p.family, msg).toBe(family);
    expect(p.words.length, msg).toBe(family === 4 ? 1 : 4);
    const [s, e] = prefixRange(p);
    const host = BigInt(bits - p.length);
    expect(s & ((1n << host) - 1n), `${msg}: ${formatPrefix(p)} has host bits`).toBe(0n);
    expect(s, `${msg}: gap or overlap before ${formatPrefix(p)}`).toBe(next);
    if (p.length > 0) {
      const parentSize = 1n << (host + 1n);
      const ps = s - (s % parentSize);
      const pe = ps + parentSize - 1n;
      expect(ps >= a && pe <= b, `${msg}: ${formatPrefix(p)} is not maximal`).toBe(false);
    }
    next = e + 1n;
  }
  expect(next - 1n, `${msg}: cover ends at the wrong address`).toBe(b);
}

describe('parseIpEntry: single addresses and CIDR', () => {
  it.each([
    ['192.168.1.100', '192.168.1.100/32'],
    ['  192.168.1.100\t', '192.168.1.100/32'],
    ['0.0.0.0', '0.0.0.0/32'],
    ['2001:db8::1', '2001:db8::1/128'],
    ['2001:DB8:0:0::1', '2001:db8::1/128'],
    ['::', '::/128'],
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['255.255.255.255/32', '255.255.255.255/32'],
    ['192.168.1.128/25', '192.168.1.128/25'],
    ['2001:db8::/32', '2001:db8::/32'],
    ['::/0', '::/0'],
    ['2001:db8::1/128', '2001:db8::1/128'],
    ['fe80::/10', 'fe80::/10'],
    ['64:ff9b::/96', '64:ff9b::/96'],
    ['64:ff9b::1.2.3.0/120', '64:ff9b::102:300/120'],
  ])('%j → %s', (text, canonical) => {
    const r = ok(text);
    expect(r.prefixes).toEqual([canonical]);
    expect(r.canonical).toBe(canonical);
  });

  it('produces numeric words', () => {
    expect(ok('10.0.0.0/8').raw).toEqual([{ family: 4, words: [0x0a000000], length: 8 }]);
    expect(ok('1.2.3.4').raw).toEqual([{ family: 4, words: [0x01020304], length: 32 }]);
    expect(ok('2001:db8::/32').raw).toEqual([{ family: 6, words: [0x20010db8, 0, 0, 0], length: 32 }]);
  });

  it('reports host bits with the network that was probably meant', () => {
    expect(err('10.0.0.1/8')).toBe('10.0.0.1/8: host bits set, did you mean 10.0.0.0/8?');
    expect(err('192.168.1.100/24')).toBe('192.168.1.100/24: host bits set, did you mean 192.168.1.0/24?');
    expect(err(' 1.2.3.4/0 ')).toBe('1.2.3.4/0: host bits set, did you mean 0.0.0.0/0?');
    expect(err('2001:db8::1/32')).toBe('2001:db8::1/32: host bits set, did you mean 2001:db8::/32?');
    expect(err('::ffff:10.0.0.1/104')).toBe('::ffff:10.0.0.1/104: host bits set, did you mean ::ffff:10.0.0.0/104?');
  });

  it.each([
    '10.0.0.0/33',
    '2001:db8::/129',
    '10.0.0.0/08', // leading zero
    '10.0.0.0/',
    '10.0.0.0/ 8',
    '10.0.0.0 /8',
    '10.0.0.0/8 /8',
    '10.0.0.0/8/8',
    '10.0.0.0/-1',
    '10.0.0.0/+8',
    '10.0.0.0/0x8',
    '10.0.0.0/1e1',
    '/8',
    '10.0.0/8', // short IPv4
    '010.0.0.0/8',
    '10.0.0.0/255.0.0.0', // netmask form
    '[2001:db8::]/32',
    '10.0.0.*/24',
    '10.0.0.0-10.0.0.5/24',
  ])('rejects CIDR %j', (text) => {
    expect(err(text)).toContain(text.trim());
  });
});

describe('parseIpEntry: IPv4-mapped IPv6 normalises to IPv4', () => {
  it.each([
    ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
    ['::ffff:1.2.3.4', '1.2.3.4/32'],
    ['::ffff:102:304', '1.2.3.4/32'],
    ['::ffff:1.2.3.4/128', '1.2.3.4/32'],
    ['::ffff:0:0/96', '0.0.0.0/0'],
    ['::ffff:0.0.0.0/96', '0.0.0.0/0'],
    ['::FFFF:192.168.0.0/112', '192.168.0.0/16'],
  ])('%j → %s', (text, canonical) => {
    const r = ok(text);
    expect(r.prefixes).toEqual([canonical]);
    expect(r.canonical).toBe(canonical);
    expect(r.raw[0]!.family).toBe(4);
  });

  it('rejects a mapped prefix shorter than /96 (it would mix families)', () => {
    expect(err('::ffff:0:0/95')).toMatch(/::ffff:0:0\/95: .*mix IPv4 and IPv6/);
    expect(err('::ffff:0.0.0.0/80')).toContain('::ffff:0.0.0.0/80');
  });

  it('keeps non-mapped neighbours as IPv6', () => {
    expect(ok('::fffe:0:0/96').raw[0]!.family).toBe(6);
    expect(ok('::1.2.3.4').raw[0]!.family).toBe(6);
  });
});

describe('parseIpEntry: ranges', () => {
  it('decomposes DigiCert-style ranges into a minimal CIDR list', () => {
    const r = ok('192.0.2.0-192.0.2.29');
    expect(r.prefixes).toEqual(['192.0.2.0/28', '192.0.2.16/29', '192.0.2.24/30', '192.0.2.28/31']);
    expect(r.canonical).toBe('192.0.2.0-192.0.2.29');
    expect(ok('10.0.0.0-10.255.255.255').prefixes).toEqual(['10.0.0.0/8']);
    expect(ok('0.0.0.0-255.255.255.255').prefixes).toEqual(['0.0.0.0/0']);
    expect(ok('1.2.3.4-1.2.3.4').prefixes).toEqual(['1.2.3.4/32']);
    expect(ok('10.0.0.255-10.0.1.0').prefixes).toEqual(['10.0.0.255/32', '10.0.1.0/32']);
    expect(ok('2001:db8::-2001:db8::ffff').prefixes).toEqual(['2001:db8::/112']);
    expect(ok('::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff').prefixes).toEqual(['::/0']);
    expect(ok('2001:db8::1-2001:db8::2').prefixes).toEqual(['2001:db8::1/128', '2001:db8::2/128']);
    expect(ok(' ::ffff:1.2.3.0-::ffff:1.2.3.255 ').prefixes).toEqual(['1.2.3.0/24']);
  });

  it("accepts Apinizer's last-octet short form", () => {
    expect(ok('10.3.10.4-18').prefixes).toEqual(['10.3.10.4/30', '10.3.10.8/29', '10.3.10.16/31', '10.3.10.18/32']);
    expect(ok('10.3.10.4-18').canonical).toBe('10.3.10.4-18');
    expect(ok('10.3.10.0-255').prefixes).toEqual(['10.3.10.0/24']);
    expect(ok('10.3.10.7-7').prefixes).toEqual(['10.3.10.7/32']);
    expect(err('10.3.10.18-4')).toBe("10.3.10.18-4: range end 4 is below the start's last octet 18");
  });

  it.each([
    '10.3.10.18-4', // end below start
    '10.3.10.4-256',
    '10.3.10.4-018',
    '10.3.10.4-',
    '-10.3.10.4',
    '10.3.10.4-1.2',
    '1.2.3.5-1.2.3.4', // start after end
    '2001:db8::2-2001:db8::1',
    '1.2.3.4-2001:db8::1', // mixed families
    '::ffff:1.2.3.4-::1:0:0:0',
    '2001:db8::1-5', // short form is IPv4 only
    '1.2.3.4 - 1.2.3.5',
    '1.2.3.4-1.2.3.5-1.2.3.6',
    '1.2.3.4--1.2.3.5',
    '01.2.3.4-1.2.3.5',
    'fe80::1%eth0-fe80::2',
  ])('rejects range %j', (text) => {
    expect(err(text)).toContain(text.trim());
  });

  it('matches a brute-force minimal cover for every range inside a /24', () => {
    const base = 0xc0000200; // 192.0.2.0
    let ranges = 0;
    for (let a = 0; a < 256; a++) {
      for (let b = a; b < 256; b++) {
        const got = rangeToPrefixes(4, [base + a], [base + b]);
        // Brute force: the aligned blocks inside [a, b] whose parent block is not inside.
        const want: string[] = [];
        for (let len = 24; len <= 32; len++) {
          const size = 2 ** (32 - len);
          for (let s = 0; s < 256; s += size) {
            const inside = s >= a && s + size - 1 <= b;
            const ps = s - (s % (size * 2));
            const parentInside = len > 24 && ps >= a && ps + size * 2 - 1 <= b;
            if (inside && !parentInside) want.push(`${base + s}/${len}`);
          }
        }
        const key = (p: CidrPrefix): string => `${p.words[0]}/${p.length}`;
        expect(got.map(key).sort(), `${a}-${b}`).toEqual(want.sort());
        // And address order.
        for (let i = 1; i < got.length; i++) expect(got[i]!.words[0]! > got[i - 1]!.words[0]!).toBe(true);
        ranges++;
      }
    }
    expect(ranges).toBe(256 * 257 / 2);
  });

  it('text ranges agree with rangeToPrefixes (sampled inside a /24)', () => {
    for (let i = 0; i < 500; i++) {
      const a = Math.floor(rnd() * 256);
      const b = a + Math.floor(rnd() * (256 - a));
      const full = ok(`198.51.100.${a}-198.51.100.${b}`).prefixes;
      expect(ok(`198.51.100.${a}-${b}`).prefixes, `seed ${SEED}: ${a}-${b}`).toEqual(full);
      expect(full).toEqual(rangeToPrefixes(4, [0xc6336400 + a], [0xc6336400 + b]).map(formatPrefix));
    }
  });

  it('covers random large IPv4 and IPv6 ranges exactly and minimally', () => {
    for (let i = 0; i < 300; i++) {
      let a = u32();
      let b = u32();
      if (a > b) [a, b] = [b, a];
      checkCover(4, BigInt(a), BigInt(b), rangeToPrefixes(4, [a], [b]), `seed ${SEED} v4 ${a}-${b}`);
    }
    for (let i = 0; i < 300; i++) {
      const w1 = [u32(), u32(), u32(), u32()];
      const w2 = rnd() < 0.5 ? [w1[0]!, w1[1]!, u32(), u32()] : [u32(), u32(), u32(), u32()];
      let a = toBig(6, w1);
      let b = toBig(6, w2);
      if (a > b) [a, b] = [b, a];
      const got = rangeToPrefixes(6, toWords(6, a), toWords(6, b));
      checkCover(6, a, b, got, `seed ${SEED} v6 ${a}-${b}`);
      expect(got.length).toBeLessThanOrEqual(2 * 128 - 2);
    }
    // Extremes.
    checkCover(6, 1n, (1n << 128n) - 2n, rangeToPrefixes(6, [0, 0, 0, 1], [~0 >>> 0, ~0 >>> 0, ~0 >>> 0, 0xfffffffe]), 'v6 1..max-1');
    expect(rangeToPrefixes(6, [0, 0, 0, 1], [~0 >>> 0, ~0 >>> 0, ~0 >>> 0, 0xfffffffe])).toHaveLength(254);
    checkCover(4, 1n, 0xfffffffen, rangeToPrefixes(4, [1], [0xfffffffe]), 'v4 1..max-1');
    expect(rangeToPrefixes(4, [5], [4])).toEqual([]);
  });
});

describe('parseIpEntry: wildcards', () => {
  it.each([
    ['10.3.10.*', '10.3.10.0/24'],
    ['10.3.*.*', '10.3.0.0/16'],
    ['10.*.*.*', '10.0.0.0/8'],
    ['*.*.*.*', '0.0.0.0/0'],
    [' 192.168.0.* ', '192.168.0.0/24'],
  ])('%j covers %s', (text, cidr) => {
    const r = ok(text);
    expect(r.prefixes).toEqual([cidr]);
    expect(r.canonical).toBe(text.trim());
  });

  it.each([
    '10.*.3.4', // a number after "*"
    '10.*.*.4',
    '*.1.2.3',
    '10.3.10.1*',
    '10.3.10.**',
    '10.3.*',
    '10.3.10.*.*',
    '010.3.10.*',
    '256.3.10.*',
    '2001:db8::*',
    '*',
  ])('rejects wildcard %j', (text) => {
    const e = err(text);
    expect(e).toContain(text.trim());
    if (text === '10.*.3.4') expect(e).toMatch(/"\*" may only be followed by "\*"/);
  });
});

describe('parseIpEntry: other errors', () => {
  it('rejects empty entries', () => {
    expect(err('')).toMatch(/empty/i);
    expect(err('   ')).toMatch(/empty/i);
  });

  it('rejects zone ids', () => {
    expect(err('fe80::1%eth0')).toContain('fe80::1%eth0');
    expect(err('fe80::1%eth0')).toMatch(/zone/);
    expect(err('fe80::/64%eth0')).toMatch(/zone/);
  });

  it.each(['127.1', '2130706433', '0x7f000001', '1.2.3.4.5', 'localhost', '1.2.3.4 5', '::1::', '[::1]', '1.2.3.04', 'any', '10.0.0.1,10.0.0.2'])(
    'rejects %j with a message naming it',
    (text) => {
      expect(err(text)).toContain(text);
    },
  );
});

describe('formatPrefix', () => {
  it('formats both families', () => {
    expect(formatPrefix({ family: 4, words: [0x0a000000], length: 8 })).toBe('10.0.0.0/8');
    expect(formatPrefix({ family: 6, words: [0x20010db8, 0, 0, 0], length: 32 })).toBe('2001:db8::/32');
  });
});

describe('scanIpEntry (the compile-time fast path)', () => {
  const out = new Uint32Array(4);
  const scanned = (text: string): CidrPrefix | null => {
    const r = scanIpEntry(text, out);
    if (r < 0) return null;
    return r < 256 ? { family: 4, words: [out[0]!], length: r } : { family: 6, words: [out[0]!, out[1]!, out[2]!, out[3]!], length: r - 256 };
  };

  it.each([
    ['192.168.1.100', '192.168.1.100/32'],
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:db8::1', '2001:db8::1/128'],
    ['2001:db8::/32', '2001:db8::/32'],
    ['::/0', '::/0'],
    ['::ffff:1.2.3.4', '1.2.3.4/32'],
    ['::ffff:10.0.0.0/104', '10.0.0.0/8'],
    ['::ffff:0:0/96', '0.0.0.0/0'],
  ])('%j is %s, as parseIpEntry says', (text, want) => {
    const p = scanned(text);
    expect(p && formatPrefix(p)).toBe(want);
    expect(ok(text).prefixes).toEqual([want]);
  });

  it.each([
    ' 10.0.0.0/8',
    '10.0.0.0/8 ',
    '\u00a010.0.0.0/8',
    '010.0.0.0/8',
    '10.0.0.0/08',
    '10.0.0.0/',
    '10.0.0.0/33',
    '10.0.0.1/8',
    '10.0.0.0/8/8',
    '10.0.0.0/+8',
    '2001:db8::1/32',
    '2001:db8::/129',
    '::ffff:10.0.0.0/95',
    'fe80::1%eth0',
    '10.0.0.1-10.0.0.9',
    '10.3.10.4-18',
    '10.3.10.*',
    '',
    'x',
  ])('%j goes to parseIpEntry', (text) => {
    expect(scanIpEntry(text, out)).toBe(-1);
  });
});
