import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { parseProxyHeader, V1_MAX_LENGTH, V2_SIGNATURE, type ProxyHeader } from '../../src/dataplane/proxy-protocol.js';
import { parseIPv6 } from '../../src/policy/ip-address.js';
import { mulberry32, testSeed } from '../helpers/seeded.js';

const ascii = (s: string) => Buffer.from(s, 'latin1');

/** A v2 header: signature, version/command, family/transport, length, then `block`. */
function v2(command: number, familyTransport: number, block: Buffer, version = 2): Buffer {
  const h = Buffer.alloc(16);
  V2_SIGNATURE.copy(h);
  h[12] = (version << 4) | command;
  h[13] = familyTransport;
  h.writeUInt16BE(block.length, 14);
  return Buffer.concat([h, block]);
}

function inet4(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  b.set(src, 0);
  b.set(dst, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

function inet6(src: Buffer, dst: Buffer, sport: number, dport: number): Buffer {
  const b = Buffer.alloc(36);
  src.copy(b, 0);
  dst.copy(b, 16);
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(dport, 34);
  return b;
}

const LOCAL = 0x0;
const PROXY = 0x1;
const TCP4 = 0x11;
const TCP6 = 0x21;

function reason(h: ProxyHeader): string {
  expect(h.kind).toBe('invalid');
  return h.kind === 'invalid' ? h.reason : '';
}

describe('PROXY protocol v1', () => {
  it('parses TCP4 and reports where the connection data starts', () => {
    const line = 'PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\n';
    const h = parseProxyHeader(ascii(line + 'GET / HTTP/1.1\r\n'));
    expect(h).toEqual({
      kind: 'proxy',
      version: 1,
      length: line.length,
      family: 'IPv4',
      sourceAddress: '203.0.113.7',
      sourcePort: 56324,
      destinationAddress: '10.0.0.1',
      destinationPort: 443,
    });
  });

  it('parses TCP6 and canonicalises the addresses (RFC 5952)', () => {
    const h = parseProxyHeader(ascii('PROXY TCP6 2001:DB8:0:0:0:0:0:7 2001:db8::1 65535 0\r\n'));
    expect(h).toMatchObject({ kind: 'proxy', family: 'IPv6', sourceAddress: '2001:db8::7', destinationAddress: '2001:db8::1', sourcePort: 65535, destinationPort: 0 });
  });

  it('keeps an IPv4-mapped TCP6 source as an IPv6 text the client-IP parser folds to IPv4', () => {
    expect(parseProxyHeader(ascii('PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n'))).toMatchObject({ kind: 'proxy', sourceAddress: '::ffff:192.0.2.1' });
  });

  it('treats UNKNOWN as LOCAL, ignoring the rest of the line (spec §2.1)', () => {
    expect(parseProxyHeader(ascii('PROXY UNKNOWN\r\n'))).toEqual({ kind: 'local', version: 1, length: 15 });
    const long = 'PROXY UNKNOWN ffff:f:f:f:f:f:f:f ffff:f:f:f:f:f:f:f 65535 65535\r\n';
    expect(parseProxyHeader(ascii(long))).toEqual({ kind: 'local', version: 1, length: long.length });
  });

  it('accepts a line of exactly 107 bytes and rejects one byte more', () => {
    const pad = (n: number) => 'PROXY UNKNOWN ' + 'x'.repeat(n - 'PROXY UNKNOWN '.length - 2) + '\r\n';
    expect(pad(V1_MAX_LENGTH)).toHaveLength(107);
    expect(parseProxyHeader(ascii(pad(107)))).toMatchObject({ kind: 'local', length: 107 });
    expect(reason(parseProxyHeader(ascii(pad(108))))).toContain('longer than 107');
  });

  it('is incomplete on every strict prefix of a valid line, and rejects 107 bytes without a line end', () => {
    const line = ascii('PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\r\n');
    for (let n = 0; n < line.length; n++) expect(parseProxyHeader(line.subarray(0, n)).kind).toBe('incomplete');
    expect(reason(parseProxyHeader(ascii('PROXY TCP4 ' + '1'.repeat(96))))).toContain('longer than 107');
  });

  it.each([
    ['lowercase keyword', 'proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'not a PROXY protocol header'],
    ['unknown protocol', 'PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', 'TCP4, TCP6 or UNKNOWN'],
    ['UDP4', 'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n', 'TCP4, TCP6 or UNKNOWN'],
    ['double space', 'PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n', 'TCP4, TCP6 or UNKNOWN'],
    ['missing field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', 'exactly 6'],
    ['extra field', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', 'exactly 6'],
    ['trailing space', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', 'exactly 6'],
    ['IPv6 address in TCP4', 'PROXY TCP4 ::1 5.6.7.8 1 2\r\n', 'not a valid IPv4'],
    ['IPv4 address in TCP6', 'PROXY TCP6 1.2.3.4 ::1 1 2\r\n', 'not a valid IPv6'],
    ['octet over 255', 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', 'not a valid IPv4'],
    ['leading zero octet', 'PROXY TCP4 010.2.3.4 5.6.7.8 1 2\r\n', 'not a valid IPv4'],
    ['short IPv4 form', 'PROXY TCP4 127.1 5.6.7.8 1 2\r\n', 'not a valid IPv4'],
    ['hostname', 'PROXY TCP4 localhost 5.6.7.8 1 2\r\n', 'not a valid IPv4'],
    ['zone id', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', 'not a valid IPv6'],
    ['bracketed IPv6', 'PROXY TCP6 [::1] ::1 1 2\r\n', 'not a valid IPv6'],
    ['port over 65535', 'PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n', 'port'],
    ['port with leading zero', 'PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n', 'port'],
    ['negative port', 'PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', 'port'],
    ['signed port', 'PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n', 'port'],
    ['hex port', 'PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n', 'port'],
    ['six-digit port', 'PROXY TCP4 1.2.3.4 5.6.7.8 000080 2\r\n', 'port'],
    ['LF without CR', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', 'CRLF'],
    ['bare CR inside', 'PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n', 'bare CR'],
    ['tab separator', 'PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n', 'control'],
    ['NUL byte', 'PROXY TCP4 1.2.3.4\u00005.6.7.8 1 2\r\n', 'control'],
    ['non-ASCII byte', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\u00e9\r\n', 'non-ASCII'],
  ])('rejects %s', (_name, line, why) => {
    expect(reason(parseProxyHeader(ascii(line)))).toContain(why);
  });

  it('rejects a plain HTTP request at its first byte, without waiting for more', () => {
    expect(reason(parseProxyHeader(ascii('G')))).toBe('not a PROXY protocol header');
    expect(reason(parseProxyHeader(ascii('PROXZ')))).toBe('not a PROXY protocol header');
    expect(reason(parseProxyHeader(ascii('GET / HTTP/1.1\r\nHost: x\r\n\r\n')))).toBe('not a PROXY protocol header');
  });
});

describe('PROXY protocol v2', () => {
  it('parses PROXY over TCP/IPv4 and skips TLVs', () => {
    const tlv = Buffer.from([0x04, 0x00, 0x03, 0x61, 0x62, 0x63]); // PP2_TYPE_NOOP, 3 bytes
    const hdr = v2(PROXY, TCP4, Buffer.concat([inet4([203, 0, 113, 7], [10, 0, 0, 1], 56324, 443), tlv]));
    const h = parseProxyHeader(Buffer.concat([hdr, ascii('GET /')]));
    expect(h).toEqual({
      kind: 'proxy',
      version: 2,
      length: 16 + 12 + 6,
      family: 'IPv4',
      sourceAddress: '203.0.113.7',
      sourcePort: 56324,
      destinationAddress: '10.0.0.1',
      destinationPort: 443,
    });
  });

  it('parses PROXY over TCP/IPv6', () => {
    const src = Buffer.from('20010db8000000000000000000000007', 'hex');
    const dst = Buffer.from('00000000000000000000ffffc0000201', 'hex');
    const h = parseProxyHeader(v2(PROXY, TCP6, inet6(src, dst, 1, 65535)));
    expect(h).toMatchObject({ kind: 'proxy', family: 'IPv6', sourceAddress: '2001:db8::7', destinationAddress: '::ffff:192.0.2.1', sourcePort: 1, destinationPort: 65535 });
  });

  it('parses LOCAL with or without an address block, ignoring the family (spec §2.2)', () => {
    expect(parseProxyHeader(v2(LOCAL, 0x00, Buffer.alloc(0)))).toEqual({ kind: 'local', version: 2, length: 16 });
    expect(parseProxyHeader(v2(LOCAL, TCP4, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)))).toEqual({ kind: 'local', version: 2, length: 28 });
    expect(parseProxyHeader(v2(LOCAL, 0x31, Buffer.alloc(216)))).toEqual({ kind: 'local', version: 2, length: 232 });
  });

  it('is incomplete on every strict prefix, including inside the address block and TLVs', () => {
    const hdr = v2(PROXY, TCP6, Buffer.concat([inet6(Buffer.alloc(16, 1), Buffer.alloc(16, 2), 3, 4), Buffer.from([0x04, 0x00, 0x01, 0x00])]));
    for (let n = 0; n < hdr.length; n++) expect(parseProxyHeader(hdr.subarray(0, n)).kind, `prefix of ${n}`).toBe('incomplete');
    expect(parseProxyHeader(hdr).kind).toBe('proxy');
  });

  it('rejects a bad signature at the first wrong byte', () => {
    const hdr = v2(PROXY, TCP4, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    for (let i = 1; i < 12; i++) {
      const bad = Buffer.from(hdr);
      bad[i] = bad[i]! ^ 0x20;
      expect(reason(parseProxyHeader(bad.subarray(0, i + 1)))).toBe('bad v2 signature');
    }
  });

  it.each([
    ['version 1', v2(PROXY, TCP4, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), 1), 'unsupported PROXY protocol version 1'],
    ['version 3', v2(PROXY, TCP4, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), 3), 'unsupported PROXY protocol version 3'],
    ['command 2', v2(0x2, TCP4, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'unknown v2 command 2'],
    ['command 15', v2(0xf, TCP4, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'unknown v2 command 15'],
    ['PROXY with UNSPEC family', v2(PROXY, 0x00, Buffer.alloc(0)), 'UNSPEC'],
    ['PROXY with UNIX family', v2(PROXY, 0x31, Buffer.alloc(216)), 'UNIX'],
    ['PROXY over UDP/IPv4', v2(PROXY, 0x12, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'UDP'],
    ['PROXY over UDP/IPv6', v2(PROXY, 0x22, Buffer.alloc(36)), 'UDP'],
    ['PROXY with transport UNSPEC', v2(PROXY, 0x10, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'transport 0'],
    ['PROXY with family 4', v2(PROXY, 0x41, Buffer.alloc(12)), 'family 4'],
    ['IPv4 block too short', v2(PROXY, TCP4, Buffer.alloc(11)), 'too short'],
    ['IPv6 block too short', v2(PROXY, TCP6, Buffer.alloc(12)), 'too short'],
  ])('rejects %s', (_name, hdr, why) => {
    expect(reason(parseProxyHeader(hdr))).toContain(why);
  });

  it('rejects a bad version or command as soon as byte 13 arrives', () => {
    const hdr = v2(PROXY, TCP4, inet4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), 3);
    expect(parseProxyHeader(hdr.subarray(0, 13)).kind).toBe('invalid');
  });

  it('rejects an unusable family before the declared (up to 64 KiB) block has arrived', () => {
    const hdr = v2(PROXY, 0x31, Buffer.alloc(60000));
    expect(reason(parseProxyHeader(hdr.subarray(0, 16)))).toContain('UNIX');
  });
});

describe('PROXY protocol round trip on random addresses (seeded)', () => {
  const seed = testSeed('proxy-protocol.test.ts');
  const rnd = mulberry32(seed);
  const byte = () => Math.floor(rnd() * 256);
  const port = () => Math.floor(rnd() * 65536);

  it('v1 and v2 of the same connection agree, and the text re-parses to the same address', () => {
    const words = new Uint32Array(4);
    for (let i = 0; i < 500; i++) {
      const v6 = rnd() < 0.5;
      const src = Buffer.from(Array.from({ length: v6 ? 16 : 4 }, byte));
      // Zero runs, so "::" compression is exercised.
      if (v6 && rnd() < 0.5) src.fill(0, Math.floor(rnd() * 8) * 2, 16 - Math.floor(rnd() * 8) * 2);
      const dst = Buffer.from(Array.from({ length: v6 ? 16 : 4 }, byte));
      const sport = port();
      const dport = port();
      const fromV2 = parseProxyHeader(v2(PROXY, v6 ? TCP6 : TCP4, v6 ? inet6(src, dst, sport, dport) : inet4([...src], [...dst], sport, dport)));
      expect(fromV2.kind).toBe('proxy');
      if (fromV2.kind !== 'proxy') continue;
      const fromV1 = parseProxyHeader(ascii(`PROXY ${v6 ? 'TCP6' : 'TCP4'} ${fromV2.sourceAddress} ${fromV2.destinationAddress} ${sport} ${dport}\r\n`));
      expect(fromV1).toEqual({ ...fromV2, version: 1, length: fromV1.kind === 'proxy' ? fromV1.length : -1 });
      if (v6) {
        expect(parseIPv6(fromV2.sourceAddress, words)).toBe(true);
        expect(Buffer.from(new Uint32Array(words).buffer).swap32()).toEqual(src);
      } else {
        expect(fromV2.sourceAddress).toBe([...src].join('.'));
      }
    }
  });
});

describe('proxyProtocol config', () => {
  const parse = (pp: unknown) => parseConfigText(JSON.stringify({ proxyProtocol: pp }), 'pp.yaml');

  it('is off by default, and headerTimeoutMs defaults to 10 s', () => {
    expect(parseConfigText('{}', 'empty.yaml').proxyProtocol).toBeNull();
    expect(parse({ trustedLoadBalancers: ['10.0.0.0/8', '2001:db8::1'] }).proxyProtocol).toEqual({ trustedLoadBalancers: ['10.0.0.0/8', '2001:db8::1'], headerTimeoutMs: 10000 });
  });

  it.each([
    [{ trustedLoadBalancers: ['10.0.0.1/8'] }, 'proxyProtocol.trustedLoadBalancers[0]: 10.0.0.1/8: host bits set'],
    [{ trustedLoadBalancers: ['10.0.0.1-10.0.0.9'] }, 'proxyProtocol.trustedLoadBalancers[0]: 10.0.0.1-10.0.0.9: must be an IP address or a CIDR'],
    [{ trustedLoadBalancers: ['10.*.*.*'] }, 'must be an IP address or a CIDR'],
    [{ trustedLoadBalancers: ['loopback'] }, 'proxyProtocol.trustedLoadBalancers[0]: loopback: not a valid IP address'],
    [{ trustedLoadBalancers: ['010.0.0.1'] }, 'proxyProtocol.trustedLoadBalancers[0]'],
    [{ trustedLoadBalancers: [] }, 'proxyProtocol.trustedLoadBalancers: must list at least one'],
    [{}, 'proxyProtocol.trustedLoadBalancers'],
    [{ trustedLoadBalancers: ['10.0.0.1'], headerTimeoutMs: 0 }, 'proxyProtocol.headerTimeoutMs'],
    [{ trustedLoadBalancers: ['10.0.0.1'], trustedLoadBalancer: ['x'] }, 'proxyProtocol'],
  ])('rejects %j naming the key', (pp, message) => {
    expect(() => parse(pp)).toThrow(message);
  });
});
