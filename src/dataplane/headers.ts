/**
 * Header rewriting between client and upstream.
 *
 * RFC 9110 §7.6.1: a proxy removes the hop-by-hop fields (Connection, Proxy-Connection, Keep-Alive,
 * TE, Transfer-Encoding, Upgrade) and every field named in Connection before forwarding. After
 * that the gateway sets its own X-Forwarded-* and X-Correlation-Id, so a client can neither remove
 * them (via Connection) nor forge them (its copies are dropped unless it is a trusted proxy). The
 * same holds for Forwarded (RFC 7239) and X-Real-IP, which the gateway does not set.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

/** Lower-case field names the gateway never forwards as received. */
function isHopByHop(name: string): boolean {
  switch (name) {
    case 'connection':
    case 'proxy-connection':
    case 'keep-alive':
    case 'te':
    case 'transfer-encoding':
    case 'upgrade':
    case 'trailer':
    case 'http2-settings':
    // Credentials meant for this proxy, not the origin.
    case 'proxy-authorization':
    case 'proxy-authenticate':
      return true;
    default:
      return false;
  }
}

/** Tokens listed in Connection (lower-cased), or null when there are none. */
export function connectionTokens(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  const joined = Array.isArray(value) ? value.join(',') : value;
  let set: Set<string> | null = null;
  for (const part of joined.split(',')) {
    const t = part.trim().toLowerCase();
    if (t === '' || t === 'close' || t === 'keep-alive' || t === 'upgrade') continue;
    (set ??= new Set()).add(t);
  }
  return set;
}

export interface ForwardedInfo {
  readonly peerAddress: string;
  readonly peerTrusted: boolean;
  readonly encrypted: boolean;
  readonly correlationId: string;
}

const TOKEN_PROTO = /^https?$/;

/**
 * HOT PATH. Builds the upstream request's header list as a flat [name, value, ...] array, which
 * undici accepts as-is and which keeps repeated fields and their order.
 */
export function upstreamRequestHeaders(req: IncomingMessage, info: ForwardedInfo): string[] {
  const raw = req.rawHeaders;
  const named = connectionTokens(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (isHopByHop(name)) continue;
    if (named !== null && named.has(name)) continue;
    switch (name) {
      // Set by the gateway below.
      case 'x-forwarded-for':
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
      case 'x-correlation-id':
      // undici derives Host from the upstream origin; the original goes in X-Forwarded-Host.
      case 'host':
      // 100-continue was already answered by this gateway; undici refuses to send Expect.
      case 'expect':
        continue;
      // Other ways of naming the client: believed from a trusted proxy, like X-Forwarded-For, and
      // dropped from anyone else, so a backend that reads them cannot be handed a forged address.
      case 'forwarded':
      case 'x-real-ip':
        if (!info.peerTrusted) continue;
    }
    out.push(raw[i]!, raw[i + 1]!);
  }
  const h = req.headers;
  const xff = h['x-forwarded-for'];
  out.push('x-forwarded-for', info.peerTrusted && xff !== undefined && xff !== '' ? `${xff}, ${info.peerAddress}` : info.peerAddress);
  const proto = h['x-forwarded-proto'];
  out.push('x-forwarded-proto', info.peerTrusted && typeof proto === 'string' && TOKEN_PROTO.test(proto) ? proto : info.encrypted ? 'https' : 'http');
  const fhost = h['x-forwarded-host'];
  const host = info.peerTrusted && typeof fhost === 'string' && fhost !== '' ? fhost : h.host;
  if (host !== undefined) out.push('x-forwarded-host', host);
  out.push('x-correlation-id', info.correlationId);
  // For a WebSocket handshake undici's upgrade() sets Upgrade and Connection itself.
  return out;
}

/** Response headers from undici's object form, without hop-by-hop fields, plus the correlation id. */
export function clientResponseHeaders(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>, correlationId: string): Record<string, string | string[]> {
  const named = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    if (isHopByHop(name) || (named !== null && named.has(name))) continue;
    // An upstream header named __proto__ would set the object's prototype instead of a field.
    if (name === '__proto__') continue;
    const v = headers[name];
    if (v !== undefined) out[name] = v;
  }
  out['x-correlation-id'] = correlationId;
  return out;
}
