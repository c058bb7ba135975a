/**
 * The data plane's one error table. Every response the gateway itself produces uses one of these
 * codes, and the README documents each (a test checks that). Codes are stable API: clients and
 * dashboards key on them, so never rename one.
 */
export const FAULTS = {
  IP_NOT_ALLOWED: { status: 403, text: 'Client IP is not in the allowed list' },
  IP_BLOCKED: { status: 403, text: 'Client IP is blocked' },
  CLIENT_IP_UNRESOLVED: { status: 403, text: 'Client IP could not be determined' },
  BAD_REQUEST_TARGET: { status: 400, text: 'Malformed or disallowed request target' },
  HOST_MISMATCH: { status: 400, text: 'Absolute-form request target disagrees with Host' },
  NO_ROUTE: { status: 404, text: 'No API proxy matches this request' },
  UPGRADE_REFUSED: { status: 400, text: 'Only GET WebSocket upgrades are forwarded' },
  PAYLOAD_TOO_LARGE: { status: 413, text: 'Request body exceeds the limit' },
  UPSTREAM_UNAVAILABLE: { status: 502, text: 'Upstream refused or reset the connection' },
  UPSTREAM_TIMEOUT: { status: 504, text: 'Upstream did not answer in time' },
  INTERNAL_ERROR: { status: 500, text: 'Internal gateway error' },
  NOT_READY: { status: 503, text: 'No policy snapshot is loaded yet' },
} as const satisfies Record<string, { status: number; text: string }>;

export type FaultCode = keyof typeof FAULTS;

/**
 * The JSON fault envelope. Built by concatenation because rejection is on the hot path of a deny
 * flood; JSON.stringify only escapes the free-text part.
 */
export function faultBody(correlationId: string, code: string, faultString: string, status: number): string {
  return (
    '{"fault":{"correlationId":"' +
    correlationId +
    '","faultCode":"' +
    code +
    '","faultString":' +
    JSON.stringify(faultString) +
    ',"faultStatusCode":' +
    status +
    '}}'
  );
}
