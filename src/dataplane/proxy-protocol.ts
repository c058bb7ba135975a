/**
 * PROXY protocol v1 and v2 header parser (HAProxy's "The PROXY protocol", versions 1 and 2,
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt).
 *
 * Pure: it looks at the bytes received so far and says whether they are a complete header, a
 * prefix of one, or not a header at all. It runs once per connection, never per request.
 *
 * Strict, because the address it yields decides who the client is:
 * - v1: exactly `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n`, single spaces, at most 107
 *   bytes (§2.1). Addresses go through ipgate's strict parser (no leading zeros, no short forms),
 *   TCP4 must carry IPv4 and TCP6 IPv6. Ports are decimal 0-65535 without leading zeros.
 *   `PROXY UNKNOWN...` is the v1 way to say "use the real connection" (§2.1): it parses as LOCAL.
 * - v2: the 12-byte signature, version 2, command LOCAL or PROXY (§2.2). LOCAL (health checks)
 *   ignores the address block. PROXY must be TCP over IPv4 or IPv6 with a long-enough address
 *   block; TLVs after the addresses are skipped. PROXY with the UNSPEC or UNIX family, or over UDP,
 *   is invalid: the client cannot be expressed as an IP address, and using the load balancer's
 *   own address in its place would judge an unknown client by the balancer's address. The caller
 *   closes such connections (fail closed).
 * - Anything else is invalid as soon as the first byte that cannot start a header arrives, so a
 *   plain HTTP request on a PROXY listener is refused at once rather than after a timeout.
 */
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../policy/ip-address.js';

/** §2.1: the longest possible v1 line, CRLF included. */
export const V1_MAX_LENGTH = 107;
/** §2.2: the fixed part of a v2 header; the address block and TLVs follow. */
export const V2_FIXED_LENGTH = 16;
/** §2.2: the v2 signature. */
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

/** The header is not complete yet: read more bytes. */
export interface HeaderIncomplete {
  readonly kind: 'incomplete';
}

/** Not a valid header; the connection must be closed. */
export interface HeaderInvalid {
  readonly kind: 'invalid';
  readonly reason: string;
}

/** v2 LOCAL or v1 UNKNOWN: the sender speaks for itself (health checks); keep the real peer. */
export interface HeaderLocal {
  readonly kind: 'local';
  readonly version: 1 | 2;
  /** Header bytes to drop; the connection's own data starts after them. */
  readonly length: number;
}

/** A proxied TCP connection: the source is the client the load balancer accepted. */
export interface HeaderProxied {
  readonly kind: 'proxy';
  readonly version: 1 | 2;
  readonly length: number;
  readonly family: 'IPv4' | 'IPv6';
  /** Canonical text: dotted decimal, or RFC 5952 IPv6 (IPv4-mapped as ::ffff:a.b.c.d). */
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
}

export type ProxyHeader = HeaderIncomplete | HeaderInvalid | HeaderLocal | HeaderProxied;

const INCOMPLETE: HeaderIncomplete = { kind: 'incomplete' };

function invalid(reason: string): HeaderInvalid {
  return { kind: 'invalid', reason };
}

/** Parse the bytes received so far on a connection. */
export function parseProxyHeader(buf: Uint8Array): ProxyHeader {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf);
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf);
  return invalid('not a PROXY protocol header');
}

// ---- v1 ------------------------------------------------------------------------------------------

function parseV1(buf: Uint8Array): ProxyHeader {
  const n = Math.min(buf.length, V1_PREFIX.length);
  for (let i = 0; i < n; i++) if (buf[i] !== V1_PREFIX[i]) return invalid('not a PROXY protocol header');
  const limit = Math.min(buf.length, V1_MAX_LENGTH);
  let lf = -1;
  for (let i = 0; i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x0a) {
      lf = i;
      break;
    }
    // Only printable US-ASCII and the final CR belong in a v1 line.
    if ((c < 0x20 || c > 0x7e) && c !== 0x0d) return invalid('v1 header contains a control or non-ASCII byte');
  }
  if (lf === -1) return buf.length >= V1_MAX_LENGTH ? invalid(`v1 header longer than ${V1_MAX_LENGTH} bytes`) : INCOMPLETE;
  if (lf === 0 || buf[lf - 1] !== 0x0d) return invalid('v1 header must end with CRLF');
  const line = Buffer.from(buf.buffer, buf.byteOffset, lf - 1).toString('latin1');
  if (line.indexOf('\r') !== -1) return invalid('v1 header contains a bare CR');
  const length = lf + 1;
  const parts = line.split(' ');
  // §2.1: after UNKNOWN the receiver ignores everything up to the CRLF.
  if (parts[1] === 'UNKNOWN') return { kind: 'local', version: 1, length };
  if (parts[1] !== 'TCP4' && parts[1] !== 'TCP6') return invalid(`v1 protocol must be TCP4, TCP6 or UNKNOWN, got ${JSON.stringify(parts[1] ?? '')}`);
  if (parts.length !== 6) return invalid('v1 header must have exactly 6 space-separated fields');
  const v4 = parts[1] === 'TCP4';
  const src = v1Address(parts[2]!, v4);
  const dst = v1Address(parts[3]!, v4);
  if (src === null || dst === null) return invalid(`v1 ${parts[1]} address is not a valid ${v4 ? 'IPv4' : 'IPv6'} address`);
  const sport = v1Port(parts[4]!);
  const dport = v1Port(parts[5]!);
  if (sport < 0 || dport < 0) return invalid('v1 port must be a decimal number 0-65535 without leading zeros');
  return { kind: 'proxy', version: 1, length, family: v4 ? 'IPv4' : 'IPv6', sourceAddress: src, sourcePort: sport, destinationAddress: dst, destinationPort: dport };
}

const words = new Uint32Array(4);

/** Strictly parsed, canonically formatted address of the given family, or null. */
function v1Address(text: string, v4: boolean): string | null {
  if (v4) {
    const a = parseIPv4(text);
    return a < 0 ? null : formatIPv4(a);
  }
  if (text.indexOf('%') !== -1 || !parseIPv6(text, words)) return null;
  return formatIPv6(words);
}

/** 0-65535 in plain decimal ("0", "80", never "080" or "+80"), or -1. */
function v1Port(text: string): number {
  if (text.length === 0 || text.length > 5 || (text.length > 1 && text.charCodeAt(0) === 48)) return -1;
  let v = 0;
  for (let i = 0; i < text.length; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v <= 65535 ? v : -1;
}

// ---- v2 ------------------------------------------------------------------------------------------

const CMD_LOCAL = 0x0;
const CMD_PROXY = 0x1;
const TCP_OVER_IPV4 = 0x11;
const TCP_OVER_IPV6 = 0x21;
const IPV4_BLOCK = 12; // 2 addresses of 4 bytes, 2 ports
const IPV6_BLOCK = 36; // 2 addresses of 16 bytes, 2 ports

function parseV2(buf: Uint8Array): ProxyHeader {
  const n = Math.min(buf.length, V2_SIGNATURE.length);
  for (let i = 0; i < n; i++) if (buf[i] !== V2_SIGNATURE[i]) return invalid('bad v2 signature');
  if (buf.length > 12) {
    const version = buf[12]! >> 4;
    const command = buf[12]! & 0x0f;
    if (version !== 2) return invalid(`unsupported PROXY protocol version ${version}`);
    if (command !== CMD_LOCAL && command !== CMD_PROXY) return invalid(`unknown v2 command ${command}`);
  }
  if (buf.length < V2_FIXED_LENGTH) return INCOMPLETE;
  const command = buf[12]! & 0x0f;
  const familyTransport = buf[13]!;
  const blockLength = (buf[14]! << 8) | buf[15]!;
  const length = V2_FIXED_LENGTH + blockLength;
  // Decide what can be decided before waiting for the (up to 64 KiB) address block.
  if (command === CMD_PROXY) {
    if (familyTransport !== TCP_OVER_IPV4 && familyTransport !== TCP_OVER_IPV6) return invalid(v2FamilyReason(familyTransport));
    const need = familyTransport === TCP_OVER_IPV4 ? IPV4_BLOCK : IPV6_BLOCK;
    if (blockLength < need) return invalid(`v2 address block of ${blockLength} bytes is too short for its family (needs ${need})`);
  }
  if (buf.length < length) return INCOMPLETE;
  // §2.2: with LOCAL the receiver must ignore the protocol block, family included.
  if (command === CMD_LOCAL) return { kind: 'local', version: 2, length };
  const b = V2_FIXED_LENGTH;
  if (familyTransport === TCP_OVER_IPV4) {
    return {
      kind: 'proxy',
      version: 2,
      length,
      family: 'IPv4',
      sourceAddress: `${buf[b]}.${buf[b + 1]}.${buf[b + 2]}.${buf[b + 3]}`,
      destinationAddress: `${buf[b + 4]}.${buf[b + 5]}.${buf[b + 6]}.${buf[b + 7]}`,
      sourcePort: (buf[b + 8]! << 8) | buf[b + 9]!,
      destinationPort: (buf[b + 10]! << 8) | buf[b + 11]!,
    };
  }
  return {
    kind: 'proxy',
    version: 2,
    length,
    family: 'IPv6',
    sourceAddress: v2IPv6(buf, b),
    destinationAddress: v2IPv6(buf, b + 16),
    sourcePort: (buf[b + 32]! << 8) | buf[b + 33]!,
    destinationPort: (buf[b + 34]! << 8) | buf[b + 35]!,
  };
}

function v2IPv6(buf: Uint8Array, at: number): string {
  for (let i = 0; i < 4; i++) {
    const o = at + 4 * i;
    words[i] = ((buf[o]! << 24) | (buf[o + 1]! << 16) | (buf[o + 2]! << 8) | buf[o + 3]!) >>> 0;
  }
  return formatIPv6(words);
}

function v2FamilyReason(ft: number): string {
  const family = ft >> 4;
  const transport = ft & 0x0f;
  if (family === 0) return 'v2 PROXY with the UNSPEC family carries no client address';
  if (family === 3) return 'v2 PROXY with the UNIX family carries no IP client address';
  if (family > 3) return `unknown v2 address family ${family}`;
  if (transport === 2) return 'v2 PROXY over UDP (DGRAM) on a TCP listener';
  return `unsupported v2 transport ${transport}`;
}
