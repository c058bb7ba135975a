#!/usr/bin/env node
/**
 * The baseline: the least a Node reverse proxy can do (node:http in, an undici Pool out, no
 * policy, no logging, no metrics). Its cost is the floor every Node proxy pays; the benchmark's
 * targets are ipgate's numbers relative to this one's, measured in the same run.
 *
 * Usage: node bench/baseline.mjs <upstream origin> [port=0] [host=127.0.0.1]; prints "listening <port>".
 */
import { createServer } from 'node:http';
import { pipeline } from 'node:stream';
import { Pool } from 'undici';

const [origin = 'http://127.0.0.1:9001', port = '0', host = '127.0.0.1'] = process.argv.slice(2);
// The same pool settings ipgate uses (src/dataplane/upstream-pools.ts), so only the gateway's own work differs.
const pool = new Pool(origin, { connections: 256, keepAliveTimeout: 4_000 });
// RFC 9110 §7.6.1 hop-by-hop fields, plus host (undici sets the upstream's).
const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);
const copy = (from) => {
  const to = {};
  for (const k in from) if (!HOP.has(k)) to[k] = from[k];
  return to;
};

const server = createServer((req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.request({ method: req.method, path: req.url, headers: copy(req.headers), body: hasBody ? req : null }).then(
    (up) => {
      res.writeHead(up.statusCode, copy(up.headers));
      pipeline(up.body, res, () => undefined);
    },
    () => res.writeHead(502).end(),
  );
});
server.listen(Number(port), host, () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => pool.close().then(() => process.exit(0)));
});
