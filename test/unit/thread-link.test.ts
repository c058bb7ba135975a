/**
 * src/threaded/link.ts: what the control plane reports as enforced is what the traffic thread
 * enforces, whatever order the traffic thread's answers come in.
 */
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { compileConfig, configToState } from '../../src/main.js';
import type { PolicyState } from '../../src/policy/model.js';
import type { Snapshot } from '../../src/policy/snapshot.js';
import { ThreadLink } from '../../src/threaded/link.js';
import type { FromControl, ToControl } from '../../src/threaded/protocol.js';

function compiled(revision: number, ip: string): { snapshot: Snapshot; state: PolicyState } {
  const config = parseConfigText(
    JSON.stringify({
      listen: '127.0.0.1:0',
      projects: [
        {
          name: 'p',
          apiProxies: [
            {
              name: 'api',
              basePath: '/api',
              upstream: { url: 'http://127.0.0.1:9' },
              environments: ['production'],
              policies: [{ operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'allow', ipList: [ip] } }],
            },
          ],
        },
      ],
    }),
    'link.yaml',
  );
  const state = configToState(config, revision);
  const r = compileConfig(config, state);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return { snapshot: r.snapshot, state };
}

describe('ThreadLink', () => {
  it('report() must not go back to the start revision when a later install was confirmed first', async () => {
    const { port1, port2 } = new MessageChannel();
    const link = new ThreadLink(port1 as never);
    const got: Extract<FromControl, { type: 'install' }>[] = [];
    port2.on('message', (m: FromControl) => {
      if (m.type === 'install') got.push(m);
      // The traffic thread answers the second install at once (host.ts: listenStarted), and the first
      // one only when its listener has opened.
      if (got.length === 2) {
        port2.postMessage({ type: 'installed', id: got[1]!.id } satisfies ToControl);
        setTimeout(() => port2.postMessage({ type: 'installed', id: got[0]!.id, address: { address: '127.0.0.1', port: 1, family: 'IPv4' } } satisfies ToControl), 20);
      }
    });
    const a = compiled(1, '127.0.0.2');
    const b = compiled(2, '127.0.0.3');
    const started = link.start(a.snapshot, a.state);
    // A remote change (cluster store) or an expiry while the traffic listener opens.
    const enforced = await link.enforce(b.snapshot, b.state);
    expect(enforced.success).toBe(true);
    await started;
    port1.close();
    // Revision 2 is what the traffic thread enforces.
    expect(link.report()?.revision).toBe(2);
  });
});
