/**
 * Cursor pagination shared by list endpoints: `limit` (1..1000) and an opaque `cursor`; the reply
 * carries `next_page_uri` (null on the last page), as ngrok's API does.
 */
import { AdminError } from './errors.js';

export const MAX_LIMIT = 1000;

export function parseLimit(q: URLSearchParams, dflt = 100): number {
  const raw = q.get('limit');
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > MAX_LIMIT) throw new AdminError('BAD_REQUEST', `limit must be an integer from 1 to ${MAX_LIMIT}`, [{ path: 'limit', message: `got ${JSON.stringify(raw)}` }]);
  return n;
}

/** Cursor = base64url of a non-negative integer position. */
export function parseCursor(q: URLSearchParams): number | null {
  const raw = q.get('cursor');
  if (raw === null) return null;
  const text = Buffer.from(raw, 'base64url').toString('utf8');
  if (!/^\d{1,15}$/.test(text) || Buffer.from(text).toString('base64url') !== raw) throw new AdminError('BAD_REQUEST', 'invalid cursor', [{ path: 'cursor', message: 'not a cursor this API issued' }]);
  return Number(text);
}

export function cursorOf(position: number): string {
  return Buffer.from(String(position)).toString('base64url');
}

/** The path+query of the next page, keeping the other query parameters. */
export function nextPageUri(path: string, q: URLSearchParams, position: number): string {
  const next = new URLSearchParams(q);
  next.set('cursor', cursorOf(position));
  return `${path}?${next.toString()}`;
}
