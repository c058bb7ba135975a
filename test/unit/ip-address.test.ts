import { isIP } from 'node:net';
import { describe, expect, it } from 'vitest';
import { mulberry32, testSeed } from '../helpers/seeded.js';
import {
  FAMILY_INVALID,
  FAMILY_V4,
  FAMILY_V6,
  formatIPv4,
  formatIPv6,
  formatIp,
  parseClientIp,
  parseIPv4,
  parseIPv6,
} from '../../src/policy/ip-address.js';

const SEED = testSeed('ip-address.test');
const rnd = mulberry32(SEED);
const u32 = (): number => Math.floor(rnd() * 4294967296) >>> 0;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

/** `base`, every prefix of it, and it with each character deleted, replaced or preceded by each of `alphabet`. */
function oneCharEdits(base: string, alphabet: readonly string[]): string[] {
  const texts = [base];
  for (let p = 0; p <= base.length; p++) {
    texts.push(base.slice(0, p), base.slice(0, p) + base.slice(p + 1));
    for (const ch of alphabet) texts.push(base.slice(0, p) + ch + base.slice(p), base.slice(0, p) + ch + base.slice(p + 1));
  }
  return texts;
}

const out = new Uint32Array(4);
function client(s: string): { family: number; words: number[] } {
  out.fill(0xdeadbeef);
  const family = parseClientIp(s, out);
  return { family, words: family === 4 ? [out[0]!] : family === 6 ? Array.from(out) : [] };
}

/** Reference: 8 groups → 4 big-endian words. */
const groupsToWords = (g: readonly number[]): number[] => [0, 1, 2, 3].map((i) => ((g[2 * i]! << 16) | g[2 * i + 1]!) >>> 0);

describe('parseIPv4 / parseClientIp: IPv4', () => {
  const valid: [string, number][] = [
    ['0.0.0.0', 0],
    ['255.255.255.255', 0xffffffff],
    ['1.2.3.4', 0x01020304],
    ['10.0.0.1', 0x0a000001],
    ['192.168.1.100', 0xc0a80164],
    ['100.200.10.0', 0x64c80a00],
    ['127.0.0.1', 0x7f000001],
    ['128.0.0.0', 0x80000000],
    ['9.99.199.249', 0x0963c7f9],
  ];
  it.each(valid)('accepts %s', (s, n) => {
    expect(parseIPv4(s)).toBe(n);
    expect(client(s)).toEqual({ family: FAMILY_V4, words: [n] });
    expect(formatIPv4(n)).toBe(s);
  });

  const invalid = [
    '',
    '1',
    '1.2.3',
    '127.1', // short form
    '127.0.1',
    '1.2.3.4.5',
    '01.2.3.4', // leading zeros
    '1.02.3.4',
    '1.2.3.00',
    '00.0.0.0',
    '0177.0.0.1', // octal
    '0x7f.0.0.1', // hex
    '0x7f000001',
    '2130706433', // integer
    '1e2.0.0.1',
    ' 1.2.3.4', // whitespace
    '1.2.3.4 ',
    '1.2.3.4\n',
    '1. 2.3.4',
    '\t1.2.3.4',
    '1..2.3',
    '.1.2.3',
    '1.2.3.',
    '1.2.3.4.',
    '256.0.0.0',
    '1.2.3.256',
    '1.2.3.999',
    '1.2.3.1000',
    '+1.2.3.4', // sign
    '-1.2.3.4',
    '1.2.3.-4',
    '1.2.3.4/32',
    '1.2.3.4%eth0', // IPv4 has no zone
    '1.2.3.4:80',
    '１.2.3.4', // fullwidth digit
    '1.2.3.4a',
    'a.b.c.d',
    '1,2,3,4',
    '1.2.3.4\0',
    '[1.2.3.4]',
  ];
  it.each(invalid)('rejects %j', (s) => {
    expect(parseIPv4(s)).toBe(-1);
    expect(parseClientIp(s, out)).toBe(FAMILY_INVALID);
  });

  it('agrees with net.isIP and a reference on random addresses, and round-trips', () => {
    for (let i = 0; i < 20000; i++) {
      const n = u32();
      const s = formatIPv4(n);
      expect(isIP(s), `seed ${SEED} ${s}`).toBe(4);
      expect(client(s), `seed ${SEED} ${s}`).toEqual({ family: 4, words: [n] });
      expect(formatIp(4, out)).toBe(s);
    }
  });

  it('agrees with net.isIP and a reference on every one-character edit of addresses with octets of every length', () => {
    // The parser decodes three characters per octet at once and hands texts ending in short
    // octets ("10.0.0.1") to a per-character loop: octets of one, two and three digits, at every
    // position, and every edit of every character, cover both paths and their seam.
    const ref = (s: string): number => {
      if (!/^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$/.test(s)) return -1;
      const parts = s.split('.').map(Number);
      if (parts.some((p) => p > 255)) return -1;
      return parts.reduce((a, p) => a * 256 + p, 0);
    };
    const octet = (): string => String(pick([() => Math.floor(rnd() * 10), () => 10 + Math.floor(rnd() * 90), () => 100 + Math.floor(rnd() * 156)])());
    const alphabet = [...'0123456789.:/ x%-+'].concat(['\u0660', '\u00ff', '\u0130']);
    let valid = 0;
    for (let i = 0; i < 250; i++) {
      const base = `${octet()}.${octet()}.${octet()}.${octet()}`;
      for (const s of oneCharEdits(base, alphabet)) {
        const want = ref(s);
        expect(want >= 0, `seed ${SEED}: ${JSON.stringify(s)}`).toBe(isIP(s) === 4);
        expect(parseIPv4(s), `seed ${SEED}: ${JSON.stringify(s)}`).toBe(want);
        const c = client(s);
        expect(c, `seed ${SEED}: ${JSON.stringify(s)}`).toEqual(want >= 0 ? { family: 4, words: [want] } : { family: isIP(s) === 6 ? 6 : 0, words: c.words });
        if (want >= 0) valid++;
      }
    }
    expect(valid).toBeGreaterThan(1000);
  });
});

describe('parseIPv6 / parseClientIp: IPv6', () => {
  const valid: [string, number[]][] = [
    ['::', [0, 0, 0, 0]],
    ['::1', [0, 0, 0, 1]],
    ['1::', [0x00010000, 0, 0, 0]],
    ['2001:db8::1', [0x20010db8, 0, 0, 1]],
    ['2001:DB8::1', [0x20010db8, 0, 0, 1]],
    ['2001:Db8:0:0:0:0:0:1', [0x20010db8, 0, 0, 1]],
    ['fe80::1:2', [0xfe800000, 0, 0, 0x00010002]],
    ['1:2:3:4:5:6:7:8', [0x00010002, 0x00030004, 0x00050006, 0x00070008]],
    ['1:2:3:4:5:6:7::', [0x00010002, 0x00030004, 0x00050006, 0x00070000]],
    ['::2:3:4:5:6:7:8', [0x00000002, 0x00030004, 0x00050006, 0x00070008]],
    ['1::8', [0x00010000, 0, 0, 8]],
    ['0:0:0:0:0:0:0:1', [0, 0, 0, 1]],
    ['0001:0002:0003:0004:0005:0006:0007:0008', [0x00010002, 0x00030004, 0x00050006, 0x00070008]],
    ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]],
    ['64:ff9b::1.2.3.4', [0x0064ff9b, 0, 0, 0x01020304]],
    ['64:ff9b::102:304', [0x0064ff9b, 0, 0, 0x01020304]],
    ['1:2:3:4:5:6:1.2.3.4', [0x00010002, 0x00030004, 0x00050006, 0x01020304]],
    ['::1.2.3.4', [0, 0, 0, 0x01020304]], // IPv4-compatible (deprecated) is plain IPv6
    ['::fffe:1.2.3.4', [0, 0, 0xfffe, 0x01020304]],
    ['::1:ffff:1.2.3.4', [0, 0, 0x0001ffff, 0x01020304]],
    ['1:0:0:2::3', [0x00010000, 0x00000002, 0, 3]],
    ['a:b:c:d:e:f:A:B', [0x000a000b, 0x000c000d, 0x000e000f, 0x000a000b]],
  ];
  it.each(valid)('accepts %s', (s, words) => {
    expect(client(s)).toEqual({ family: FAMILY_V6, words });
    const w = new Uint32Array(4);
    expect(parseIPv6(s, w)).toBe(true);
    expect(Array.from(w)).toEqual(words);
    expect(isIP(s)).toBe(6);
  });

  const invalid = [
    ':',
    ':::',
    '1:::2',
    ':1::2', // leading single ':'
    ':1:2:3:4:5:6:7:8',
    '1::2:', // trailing single ':'
    '1:2:3:4:5:6:7:8:',
    '1:2:3:4:5:6:7', // too few groups
    '1:2:3:4:5:6:7:8:9', // too many
    '1::2:3:4:5:6:7:8', // "::" plus 8 groups
    '::1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7:8::',
    '::1:2:3:4:5:6:1.2.3.4',
    '1::2::3', // two "::"
    '12345::', // 5-digit group
    '1:2:3:4:5:6:7:12345',
    '00000::1',
    '[::1]', // brackets
    '[2001:db8::1]:443',
    '::1/128', // prefix length
    '2001:db8::g',
    '2001:db8::-1',
    'fe80::1%', // empty zone
    '::ffff:1.2.3', // bad embedded IPv4
    '::ffff:01.2.3.4',
    '::ffff:1.2.3.256',
    '::ffff:1.2.3.4.5',
    '::ffff:1.2.3.4:5',
    '::ffff:0x1.2.3.4',
    '1.2.3.4::',
    '1:2:3:4:5:6:7:1.2.3.4', // embedded IPv4 past 128 bits
    '1:2:3:4:5:1.2.3.4', // too short
    ' ::1',
    '::1 ',
    ':: 1',
    '::１',
    '2001:db8:::1',
    '%eth0',
    '::%',
  ];
  it.each(invalid)('rejects %j', (s) => {
    expect(parseClientIp(s, out)).toBe(FAMILY_INVALID);
    expect(parseIPv6(s, new Uint32Array(4))).toBe(false);
  });

  it('strips a zone id from a client address, but parseIPv6 (rules) rejects zones', () => {
    expect(client('fe80::1%eth0')).toEqual({ family: 6, words: [0xfe800000, 0, 0, 1] });
    expect(client('fe80::1%25')).toEqual({ family: 6, words: [0xfe800000, 0, 0, 1] });
    expect(client('fe80::%1')).toEqual({ family: 6, words: [0xfe800000, 0, 0, 0] });
    expect(client('::%lo')).toEqual({ family: 6, words: [0, 0, 0, 0] });
    expect(client('1:2:3:4:5:6:7:8%en0')).toEqual({ family: 6, words: [0x00010002, 0x00030004, 0x00050006, 0x00070008] });
    expect(client('64:ff9b::1.2.3.4%x')).toEqual({ family: 6, words: [0x0064ff9b, 0, 0, 0x01020304] });
    expect(client('::ffff:1.2.3.4%eth0')).toEqual({ family: 4, words: [0x01020304] });
    expect(parseClientIp('fe80::1%', out)).toBe(FAMILY_INVALID);
    expect(parseClientIp('::ffff:1.2.3.4%', out)).toBe(FAMILY_INVALID);
    expect(parseClientIp('1.2.3.4%eth0', out)).toBe(FAMILY_INVALID);
    expect(parseIPv6('fe80::1%eth0', new Uint32Array(4))).toBe(false);
  });

  it('folds IPv4-mapped IPv6 to the IPv4 address, in both text forms', () => {
    for (const s of ['::ffff:1.2.3.4', '::FFFF:1.2.3.4', '::ffff:102:304', '0:0:0:0:0:ffff:1.2.3.4', '0:0:0:0:0:ffff:0102:0304']) {
      expect(client(s), s).toEqual({ family: FAMILY_V4, words: [0x01020304] });
    }
    expect(client('::ffff:0:0')).toEqual({ family: 4, words: [0] });
    expect(client('::ffff:ffff:ffff')).toEqual({ family: 4, words: [0xffffffff] });
    // Neighbours of ::ffff:0:0/96 stay IPv6.
    expect(client('::fffe:ffff:ffff').family).toBe(6);
    expect(client('0:0:0:0:1:ffff:0:0').family).toBe(6);
    expect(client('::1:0:0:0').family).toBe(6);
    expect(client('0:0:0:1:0:ffff:102:304')).toEqual({ family: 6, words: [0, 1, 0xffff, 0x01020304] });
    expect(client('1::ffff:1.2.3.4').family).toBe(6);
    expect(client('64:ff9b::1.2.3.4').family).toBe(6);
  });

  it('formats RFC 5952 canonical text', () => {
    const canon: [string, string][] = [
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
      ['2001:0db8:0:0:0:0:2:1', '2001:db8::2:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a lone zero group is not compressed
      ['2001:DB8::0:1', '2001:db8::1'],
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longest run
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1:0:0:0:0:0:0:0', '1::'],
      ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'],
      ['0:1:2:3:4:5:6:7', '0:1:2:3:4:5:6:7'],
      ['fe80:0:0:0:0:0:0:0', 'fe80::'],
      ['0:0:0:0:0:ffff:102:304', '::ffff:1.2.3.4'], // RFC 5952 §5
      ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
      ['ABCD:EF01:2345:6789:ABCD:EF01:2345:6789', 'abcd:ef01:2345:6789:abcd:ef01:2345:6789'],
    ];
    for (const [input, expected] of canon) {
      const w = new Uint32Array(4);
      expect(parseIPv6(input, w), input).toBe(true);
      expect(formatIPv6(w), input).toBe(expected);
    }
    expect(formatIp(4, [0x0a000001])).toBe('10.0.0.1');
    expect(formatIp(6, [0x20010db8, 0, 0, 1])).toBe('2001:db8::1');
  });

  /** A random valid text form of `g` (8 groups): random case, padding, "::" placement and IPv4 tail. */
  function randomText(g: readonly number[]): string {
    const hex = (x: number): string => {
      let h = x.toString(16);
      if (rnd() < 0.2) h = h.padStart(h.length + Math.floor(rnd() * (5 - h.length)), '0');
      if (rnd() < 0.3) h = h.toUpperCase();
      return h;
    };
    const v4tail = rnd() < 0.2;
    const n = v4tail ? 6 : 8;
    const parts = g.slice(0, n).map(hex);
    const tail = v4tail ? [`${g[6]! >>> 8}.${g[6]! & 255}.${g[7]! >>> 8}.${g[7]! & 255}`] : [];
    // Choose a run of zero groups (or, rarely, none) to compress.
    const runs: [number, number][] = [];
    for (let i = 0; i < n; ) {
      if (g[i] !== 0) {
        i++;
        continue;
      }
      let j = i;
      while (j < n && g[j] === 0) j++;
      runs.push([i, j]);
      i = j;
    }
    if (runs.length > 0 && rnd() < 0.8) {
      const [i, j] = pick(runs);
      const a = i + Math.floor(rnd() * (j - i));
      const b = a + 1 + Math.floor(rnd() * (j - a));
      if (!(a === 0 && b === 8)) {
        const left = parts.slice(0, a).join(':');
        const right = [...parts.slice(b), ...tail].join(':');
        return `${left}::${right}`;
      }
      return '::';
    }
    return [...parts, ...tail].join(':');
  }

  function randomGroups(): number[] {
    const g = Array.from({ length: 8 }, () => (rnd() < 0.4 ? 0 : rnd() < 0.3 ? Math.floor(rnd() * 16) : Math.floor(rnd() * 65536)));
    return g;
  }

  it('agrees with net.isIP and a reference expansion on many random addresses, and round-trips', () => {
    for (let i = 0; i < 20000; i++) {
      const g = randomGroups();
      const s = randomText(g);
      const words = groupsToWords(g);
      const msg = `seed ${SEED}: ${s}`;
      expect(isIP(s), msg).toBe(6);
      const r = client(s);
      if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) {
        expect(r, msg).toEqual({ family: 4, words: [words[3]] });
      } else {
        expect(r, msg).toEqual({ family: 6, words });
        const text = formatIp(6, out);
        expect(client(text), msg).toEqual({ family: 6, words });
        expect(text, msg).toBe(text.toLowerCase());
        expect(text.includes(':::'), msg).toBe(false);
      }
    }
  });

  it('agrees with net.isIP and a reference on every one-character edit of eight-group texts (the straight-line path)', () => {
    // Texts of eight 1-4 digit groups and 36-39 characters take a path that reads groups 0-3
    // forwards and 7-4 backwards and falls back to the general parser on anything else: each edit
    // of each character must give the general parser's answer (validity as net.isIP, words by a
    // split-based expansion).
    const ref = (s: string): number[] | null => {
      if (isIP(s) !== 6 || s.includes('%')) return null;
      const [head, tail] = s.includes('::') ? s.split('::') : [s, null];
      const hexes = (t: string): number[] => (t === '' ? [] : t.split(':').flatMap((x) => (x.includes('.') ? ((v) => [(v[0]! << 8) | v[1]!, (v[2]! << 8) | v[3]!])(x.split('.').map(Number)) : [parseInt(x, 16)])));
      const h = hexes(head!);
      const t = tail === null ? [] : hexes(tail);
      return groupsToWords([...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t]);
    };
    const group = (): string => {
      let x = Math.floor(rnd() * 65536).toString(16);
      if (rnd() < 0.5) x = x.padStart(4, '0');
      return rnd() < 0.3 ? x.toUpperCase() : x;
    };
    const alphabet = [...':.%0123456789abcdefABCDEFgG /'].concat(['\u0660', '\u0130', '\u0141', '\u003a\u003a']);
    const w = new Uint32Array(4);
    let fast = 0;
    for (let i = 0; i < 50; i++) {
      const base = Array.from({ length: 8 }, group).join(':');
      if (base.length >= 36) fast++;
      for (const s of oneCharEdits(base, alphabet)) {
        const want = ref(s);
        w.fill(0xdeadbeef);
        const ok = parseIPv6(s, w);
        expect(ok, `seed ${SEED}: ${JSON.stringify(s)}`).toBe(want !== null);
        expect(Array.from(w), `seed ${SEED}: ${JSON.stringify(s)}`).toEqual(want ?? [0xdeadbeef, 0xdeadbeef, 0xdeadbeef, 0xdeadbeef]);
      }
    }
    expect(fast).toBeGreaterThan(25);
  });

  it('agrees with net.isIP on validity for random one-character mutations', () => {
    const alphabet = ':.0123456789abcdefABCDEFg x/[]-+';
    let checked = 0;
    for (let i = 0; i < 20000; i++) {
      let s = rnd() < 0.3 ? formatIPv4(u32()) : randomText(randomGroups());
      const pos = Math.floor(rnd() * (s.length + 1));
      const op = rnd();
      const ch = pick([...alphabet]);
      if (op < 0.4) s = s.slice(0, pos) + ch + s.slice(pos + 1);
      else if (op < 0.7) s = s.slice(0, pos) + ch + s.slice(pos);
      else s = s.slice(0, pos) + s.slice(pos + 1);
      const ours = parseClientIp(s, out) !== FAMILY_INVALID;
      expect(ours, `seed ${SEED}: ${JSON.stringify(s)}`).toBe(isIP(s) !== 0);
      checked++;
    }
    expect(checked).toBe(20000);
  });
});
