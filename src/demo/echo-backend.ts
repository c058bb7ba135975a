/**
 * The demo upstream that `npm start` runs next to the gateway: it answers every request with a
 * JSON description of what it received, so a newcomer can see exactly what the gateway forwarded.
 */
import { listenOn } from '../listen.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export async function startEchoBackend(host: string, port: number): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      const body = JSON.stringify({
        echo: true,
        method: req.method,
        path: req.url,
        bodyBytes: bytes,
        headers: {
          'x-forwarded-for': req.headers['x-forwarded-for'],
          'x-forwarded-proto': req.headers['x-forwarded-proto'],
          'x-forwarded-host': req.headers['x-forwarded-host'],
          'x-correlation-id': req.headers['x-correlation-id'],
        },
      }) + '\n';
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  return { server, address: await listenOn(server, host, port) };
}
