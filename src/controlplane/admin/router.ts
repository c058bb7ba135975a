/**
 * A small router for the admin API. Paths end with "/" as in the Apinizer document; ":name"
 * segments are captured, percent-decoded and validated as resource names, so a handler only ever
 * sees a safe name.
 */
import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { NAME_RE } from '../../config/schema.js';
import type { Role } from '../auth.js';
import { jsonBody } from './body.js';
import { AdminError } from './errors.js';

export interface RouteContext {
  readonly req: IncomingMessage;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly actor: string;
  readonly role: Role;
  readonly ifMatch: string | undefined;
  /** The caller's address (socket, then X-Forwarded-For through trusted proxies); null if undeterminable. */
  readonly callerIp: string | null;
  /** ?force=true: the caller accepts a change that locks itself out. */
  readonly force: boolean;
  json<S extends z.ZodType>(schema: S, limit: number, allowEmpty?: boolean): Promise<z.output<S>>;
}

export interface RouteReply {
  readonly status?: number;
  readonly body: unknown;
  readonly etag?: string;
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** e.g. /apiops/projects/:project/ */
  readonly path: string;
  /** Needs the admin role; defaults to true for every method but GET. */
  readonly write?: boolean;
  handler(c: RouteContext): Promise<RouteReply>;
}

interface CompiledRoute {
  readonly route: Route;
  readonly parts: readonly string[];
}

export interface RouteMatch {
  readonly route: Route;
  readonly params: Record<string, string>;
}

export class Router {
  private readonly routes: CompiledRoute[];
  constructor(routes: readonly Route[]) {
    this.routes = routes.map((route) => ({ route, parts: route.path.split('/') }));
  }

  /** The route for method+path, or an AdminError: 404 for no path, 405 (with Allow) for a known path with another method. */
  match(method: string, path: string): RouteMatch {
    const parts = path.split('/');
    const allowed = new Set<string>();
    for (const c of this.routes) {
      const params = matchParts(c.parts, parts);
      if (params === null) continue;
      if (c.route.method === method || (method === 'HEAD' && c.route.method === 'GET')) return { route: c.route, params };
      allowed.add(c.route.method);
      if (c.route.method === 'GET') allowed.add('HEAD');
    }
    // RFC 9110 §15.5.6: a 405 must list the methods the resource does support.
    if (allowed.size > 0) throw new AdminError('METHOD_NOT_ALLOWED', `${method} is not supported on ${path}`, [], { allow: [...allowed].join(', ') });
    throw new AdminError('NOT_FOUND', `no admin route ${path}${path.endsWith('/') ? '' : ' (admin paths end with "/")'}`);
  }

  get all(): readonly Route[] {
    return this.routes.map((c) => c.route);
  }
}

function matchParts(pattern: readonly string[], parts: readonly string[]): Record<string, string> | null {
  if (pattern.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const v = parts[i]!;
    if (p.startsWith(':')) {
      let name: string;
      try {
        name = decodeURIComponent(v);
      } catch {
        return null;
      }
      if (!NAME_RE.test(name)) throw new AdminError('BAD_REQUEST', `invalid ${p.slice(1)} name ${JSON.stringify(name)}`, [{ path: p.slice(1), message: 'must be 1-128 letters, digits, ".", "_" or "-"' }]);
      params[p.slice(1)] = name;
    } else if (p !== v) return null;
  }
  return params;
}

export function makeContext(req: IncomingMessage, params: Record<string, string>, query: URLSearchParams, actor: string, role: Role, callerIp: string | null): RouteContext {
  const im = req.headers['if-match'];
  return {
    req,
    params,
    query,
    actor,
    role,
    ifMatch: im,
    callerIp,
    force: query.get('force') === 'true',
    json: (schema, limit, allowEmpty = false) => jsonBody(req, schema, limit, allowEmpty),
  };
}
