/**
 * A SCRIPT client-IP source is admin-authored code: whatever it does, a request it cannot answer
 * fails closed, and the gateway process stays up for every other request. Run against a real
 * `ipgate start` process, because the failures in question (an unhandled rejection, an exception
 * in an event handler) end a process, which an in-process gateway would not show.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { policy, rawFault, rawStatus, send, sendRaw, startUpstream, type Reply, type Upstream } from '../helpers/harness.js';
import { startNode, type NodeProcess } from '../helpers/node-process.js';

const script = (s: string) => ({ targetVariableForIP: { type: 'SCRIPT', script: s } });

function expectUnresolved(r: Reply, reason: string): void {
  expect(r.status).toBe(403);
  const fault = r.json().fault;
  expect(fault.faultCode).toBe('CLIENT_IP_UNRESOLVED');
  expect(fault.faultString).toContain(reason);
}

describe('SCRIPT sources that fail: the request fails closed, the process stays up', () => {
  let up: Upstream;
  let node: NodeProcess;

  beforeAll(async () => {
    up = await startUpstream();
    const proxy = (name: string, basePath: string, policies: unknown[]) => ({ name, basePath, upstream: { url: up.url }, policies });
    node = await startNode('scripts', {
      trustedProxies: ['127.0.0.1'],
      projects: [
        {
          name: 'p',
          apiProxies: [
            // Without X-Client the async function rejects: nothing awaits that promise.
            proxy('async', '/async', [policy('policy-white-ip', 'async', ['0.0.0.0/0'], script("(async () => headers['x-client'].split(',')[0].trim())()"))]),
            // A rejection the script neither returns nor handles.
            proxy('stray', '/stray', [policy('policy-white-ip', 'stray', ['0.0.0.0/0'], script("(Promise.reject(new Error('stray')), '127.0.0.1')"))]),
            proxy('null', '/null', [policy('policy-white-ip', 'null', ['0.0.0.0/0'], script('(() => { throw null })()'))]),
            // The BODY policy makes the request buffer its body, so the SCRIPT policy runs in the
            // body's 'end' handler rather than under the request handler.
            proxy('body-null', '/body-null', [
              policy('policy-white-ip', 'body', ['0.0.0.0/0'], { targetVariableForIP: { type: 'BODY', bodyPath: 'ip' } }),
              policy('policy-white-ip', 'null', ['0.0.0.0/0'], script('(() => { throw undefined })()')),
            ]),
            proxy('nbsp', '/nbsp', [policy('policy-white-ip', 'nbsp', ['192.0.2.0/24'], script("headers['x-client']"))]),
          ],
        },
      ],
    });
  });
  afterAll(async () => {
    await node.stop();
    await up.close();
  });

  const stillServing = async () => {
    // Any answer at all proves the process is alive; this one is the script's own 403.
    expect((await send(node.trafficPort, '/null/x')).status).toBe(403);
    expect(node.child.exitCode).toBeNull();
  };

  it('a script whose promise rejects: 403, and no crash', async () => {
    expectUnresolved(await send(node.trafficPort, '/async/x'), 'did not return a string');
    expectUnresolved(await send(node.trafficPort, '/async/x'), 'did not return a string');
    await node.waitForLog((l) => l.event === 'script_rejection', 5_000);
    await stillServing();
    expect(node.events('crash')).toEqual([]);
  });

  it('a rejected promise the script drops: the request goes on, and no crash', async () => {
    expect((await send(node.trafficPort, '/stray/x')).status).toBe(200);
    expect((await send(node.trafficPort, '/stray/x')).status).toBe(200);
    await stillServing();
    expect(node.events('crash')).toEqual([]);
  });

  it('a script that throws null: 403 naming it, not a 500', async () => {
    expectUnresolved(await send(node.trafficPort, '/null/x'), 'script threw: null');
  });

  it('a script that throws undefined while the body is buffered: 403, and no crash', async () => {
    const r = await send(node.trafficPort, '/body-null/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"ip":"127.0.0.1"}' });
    expectUnresolved(r, 'script threw: undefined');
    await stillServing();
  });

  it('a script that throws null on a WebSocket upgrade: 403, and no crash', async () => {
    const raw = await sendRaw(
      node.trafficPort,
      'GET /null/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(rawStatus(raw)).toBe(403);
    expect(rawFault(raw).faultCode).toBe('CLIENT_IP_UNRESOLVED');
    await stillServing();
  });

  it('a script result is trimmed of spaces and tabs only: a no-break space makes it undeterminable', async () => {
    expect((await send(node.trafficPort, '/nbsp/x', { headers: { 'x-client': ' \t192.0.2.1 ' } })).status).toBe(200);
    const r = await send(node.trafficPort, '/nbsp/x', { headers: { 'x-client': Buffer.from([0xa0, ...Buffer.from('192.0.2.1')]).toString('latin1') } });
    expectUnresolved(r, 'is not an IP address');
  });
});
