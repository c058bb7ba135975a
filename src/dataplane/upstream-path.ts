/**
 * The path an upstream request goes to: the upstream URL's path prefix, the canonical path below
 * the basePath, and the query as it came. One function for plain requests and WebSocket upgrades,
 * so the two can never address different upstream paths for the same request target.
 */
import type { CompiledProxy } from '../policy/snapshot.js';

/**
 * `path` is the whole canonical path, `relPath` the part below the basePath ("/" for the basePath
 * itself). With a prefix, the basePath itself maps to the prefix itself ("/pfx" → "/v1", not
 * "/v1/"), unless the client wrote the trailing slash.
 */
export function upstreamPath(proxy: CompiledProxy, path: string, relPath: string, search: string): string {
  const prefix = proxy.upstream.pathPrefix;
  const rel = prefix !== '' && relPath === '/' && !path.endsWith('/') ? '' : relPath;
  return prefix + rel + search;
}
