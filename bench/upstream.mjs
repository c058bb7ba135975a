#!/usr/bin/env node
/**
 * The benchmark's upstream: a bare node:http server that answers every request with the same
 * small JSON body. It does as little as a server can, so that the gateway's cost is what varies.
 *
 * Usage: node bench/upstream.mjs [port=0] [host=127.0.0.1]; prints "listening <port>".
 */
import { createServer } from 'node:http';

const [port = '0', host = '127.0.0.1'] = process.argv.slice(2);
const body = Buffer.from('{"ok":true,"from":"bench-upstream"}');
const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };

const server = createServer((req, res) => {
  req.resume(); // drain any request body so the connection stays reusable
  res.writeHead(200, headers);
  res.end(body);
});
server.listen(Number(port), host, () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
