#!/usr/bin/env node
/**
 * The container's HEALTHCHECK probe (an entry point, like cli.ts): GET /healthz on the admin
 * listener, exit 0 on a 2xx answer and 1 otherwise. Slim images have no curl, so node probes.
 *
 * The address is IPGATE_ADMIN_LISTEN, else the default admin.listen, 127.0.0.1:9090. It does not
 * read the config file, so that a probe every few seconds stays cheap: an admin.listen changed in
 * the file must also be given in IPGATE_ADMIN_LISTEN. A wildcard bind is probed on loopback.
 */
import { parseListen } from './config/schema.js';

const TIMEOUT_MS = 3_000;

function probeUrl(listen: string): string | null {
  const l = parseListen(listen);
  if (l === null) return null;
  let host = l.host;
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${l.port}/healthz`;
}

const listen = process.env.IPGATE_ADMIN_LISTEN || '127.0.0.1:9090';
const url = probeUrl(listen);
if (url === null) {
  process.stderr.write(`healthcheck: IPGATE_ADMIN_LISTEN: expected host:port, got ${JSON.stringify(listen)}\n`);
  process.exit(1);
}
fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) }).then(
  (res) => {
    process.stdout.write(`healthcheck: ${url}: ${res.status}\n`);
    process.exit(res.ok ? 0 : 1);
  },
  (err: unknown) => {
    process.stderr.write(`healthcheck: ${url}: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
