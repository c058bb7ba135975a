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

function invalidCursor(): AdminError {
  return new AdminError('BAD_REQUEST', 'invalid cursor', [{ path: 'cursor', message: 'not a cursor this API issued' }]);
}

/** Cursor = base64url of a non-negative integer (the audit's: an id). */
export function parseCursor(q: URLSearchParams): number | null {
  const raw = q.get('cursor');
  if (raw === null) return null;
  const text = Buffer.from(raw, 'base64url').toString('utf8');
  if (!/^\d{1,15}$/.test(text) || Buffer.from(text).toString('base64url') !== raw) throw invalidCursor();
  return Number(text);
}

export function cursorOf(n: number): string {
  return Buffer.from(String(n)).toString('base64url');
}

/**
 * A cursor into a list whose items have no id: `key` names the last item returned and `at` is
 * the position after it. A position alone skips as many items as were removed before it between
 * two pages; the key lets the next page resume after that very item.
 */
export interface KeyCursor {
  readonly at: number;
  readonly key: string;
}

/** Key cursor = base64url of the JSON [at, key]. */
export function parseKeyCursor(q: URLSearchParams): KeyCursor | null {
  const raw = q.get('cursor');
  if (raw === null) return null;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (!Array.isArray(v) || v.length !== 2 || !Number.isSafeInteger(v[0]) || (v[0] as number) < 1 || typeof v[1] !== 'string') throw invalidCursor();
  const c = { at: v[0] as number, key: v[1] };
  if (keyCursorOf(c) !== raw) throw invalidCursor();
  return c;
}

export function keyCursorOf(c: KeyCursor): string {
  return Buffer.from(JSON.stringify([c.at, c.key])).toString('base64url');
}

/** The path+query of the next page, keeping the other query parameters. */
export function nextPageUri(path: string, q: URLSearchParams, cursor: string): string {
  const next = new URLSearchParams(q);
  next.set('cursor', cursor);
  return `${path}?${next.toString()}`;
}
