/**
 * undici error codes mapped explicitly to gateway outcomes: a timeout is a 504, a refused or
 * reset connection a 502. Unknown errors count as resets (502): the upstream did not give us a
 * usable answer, and claiming a timeout would mislead the operator.
 */
export type UpstreamErrorKind = 'connect' | 'reset' | 'timeout' | 'aborted';

export function classifyUpstreamError(err: unknown): UpstreamErrorKind {
  let e = err as { code?: string; name?: string; cause?: unknown } | undefined;
  for (let depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    switch (e.code) {
      case 'UND_ERR_CONNECT_TIMEOUT':
      case 'UND_ERR_HEADERS_TIMEOUT':
      case 'UND_ERR_BODY_TIMEOUT':
      case 'ETIMEDOUT':
        return 'timeout';
      case 'ECONNREFUSED':
      case 'ENOTFOUND':
      case 'EHOSTUNREACH':
      case 'ENETUNREACH':
      case 'EAI_AGAIN':
        return 'connect';
      case 'ECONNRESET':
      case 'EPIPE':
      case 'UND_ERR_SOCKET':
      case 'UND_ERR_CLOSED':
        return 'reset';
      case 'UND_ERR_ABORTED':
      case 'ABORT_ERR':
        return 'aborted';
    }
    if (e.name === 'AbortError') return 'aborted';
    e = e.cause as typeof e;
  }
  return 'reset';
}
