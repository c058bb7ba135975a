/**
 * Binding a server: resolves with its address once listening, rejects with the bind error
 * (EADDRINUSE, EACCES) instead of leaving it to an 'error' event nobody waits for.
 */
import type { AddressInfo, Server } from 'node:net';

export async function listenOn(server: Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}
