/**
 * Admin request bodies: validated once, at the boundary. JSON only (415 otherwise), bounded size
 * (413), bounded nesting, and no "__proto__"/"constructor"/"prototype" keys, so a body can never
 * reach an object's prototype chain however it is merged later. No key may be repeated in an
 * object (JSON.parse would silently keep the last: {"ipList": [...], "ipList": []}), and none may
 * be written with an escape sequence: JSON.parse in Node 24.21.0 can decode such a key as another
 * one (config/json-config.ts), and every key the API accepts is a plain name.
 */
import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { firstKeyIssue } from '../../config/json-config.js';
import { formatPath } from '../../config/load.js';
import { pace } from '../../policy/pace.js';
import { AdminError } from './errors.js';

const MAX_DEPTH = 32;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw new AdminError('PAYLOAD_TOO_LARGE', `body exceeds ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AdminError('PAYLOAD_TOO_LARGE', `body exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, size);
}

function checkShape(v: unknown, path: (string | number)[], depth: number): void {
  if (depth > MAX_DEPTH) throw new AdminError('BAD_REQUEST', `JSON nested deeper than ${MAX_DEPTH} levels`, [{ path: formatPath(path), message: 'too deep' }]);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const item: unknown = v[i];
      pace();
      if (item !== null && typeof item === 'object') checkShape(item, [...path, i], depth + 1);
    }
  } else if (v !== null && typeof v === 'object') {
    for (const key of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(key)) throw new AdminError('BAD_REQUEST', `forbidden key ${JSON.stringify(key)}`, [{ path: formatPath([...path, key]), message: 'forbidden key' }]);
      const item = (v as Record<string, unknown>)[key];
      if (item !== null && typeof item === 'object') checkShape(item, [...path, key], depth + 1);
    }
  }
}

/** Parse a JSON body and validate it with `schema`. An empty body counts as `{}` when allowEmpty. */
export async function jsonBody<S extends z.ZodType>(req: IncomingMessage, schema: S, limit: number, allowEmpty = false): Promise<z.output<S>> {
  const raw = await readBody(req, limit);
  let value: unknown = {};
  if (raw.length > 0 || !allowEmpty) {
    const ct = req.headers['content-type'];
    const mt = ct === undefined ? '' : (ct.split(';')[0] ?? '').trim().toLowerCase();
    if (mt !== 'application/json') throw new AdminError('UNSUPPORTED_MEDIA_TYPE', `content-type must be application/json, got ${ct === undefined ? 'none' : JSON.stringify(ct)}`);
    const text = raw.toString('utf8');
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new AdminError('BAD_REQUEST', `malformed JSON: ${(err as Error).message}`);
    }
    // JSON.parse keeps the last of two equal keys and may misread an escaped one: either way the
    // value differs from what the text says, so such a body is refused (json-config.ts).
    const bad = firstKeyIssue(text, 0, true);
    if (bad !== null) {
      const where = formatPath(bad.path);
      throw new AdminError(
        'BAD_REQUEST',
        bad.issue === 'escaped key'
          ? `an object key is written with an escape sequence (${JSON.stringify(where)}): write keys as plain text`
          : `invalid body: ${where}: duplicate key (each key may appear once per object)`,
        [{ path: where, message: bad.issue }],
      );
    }
    checkShape(value, [], 0);
  }
  const r = schema.safeParse(value, { reportInput: true });
  if (!r.success) {
    const details = r.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message }));
    throw new AdminError('BAD_REQUEST', `invalid body: ${details.map((d) => `${d.path || '(body)'}: ${d.message}`).join('; ')}`, details);
  }
  return r.data;
}
