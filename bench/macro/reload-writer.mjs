/**
 * Scenario 9's admin client: replaces the policy through the apiops API, one write every
 * `periodMs`, alternating between two pre-serialised bodies (so building them costs nothing
 * during the run).
 *
 * Never more than one write in flight: writes are serialised in the gateway anyway, so firing
 * on a fixed clock would only queue them. When a write takes longer than the period (a
 * 100,000-entry write takes over a second), the next one starts as soon as it returns, so the
 * gateway is reloading back to back: at least as much pressure as the schedule asks for.
 */
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { POLICY, PROJECT, PROXY } from './scenarios.mjs';

function put(port, token, body) {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'PUT',
        path: `/apiops/projects/${PROJECT}/apiProxies/${PROXY}/policies/${POLICY}/`,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          let deployed = false;
          try {
            deployed = JSON.parse(Buffer.concat(chunks).toString('utf8')).deploymentResult?.success === true;
          } catch {
            // not JSON: counted as a failed write below
          }
          resolve({ status: res.statusCode, deployed });
        });
      },
    );
    req.on('error', (err) => resolve({ status: 0, deployed: false, error: err.message }));
    req.end(body);
  });
}

/** Start writing; `stop()` waits for the write in flight and returns what happened. */
export function startReloadWriter({ adminPort, token, bodies, periodMs }) {
  let running = true;
  const writes = [];
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const t0 = performance.now();
      const r = await put(adminPort, token, bodies[i % bodies.length]);
      const ms = performance.now() - t0;
      writes.push({ ms: Math.round(ms), status: r.status, deployed: r.deployed, ...(r.error ? { error: r.error } : {}) });
      if (running && ms < periodMs) await sleep(periodMs - ms);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const ms = writes.map((w) => w.ms).sort((a, b) => a - b);
      return {
        periodMs,
        writes: writes.length,
        failedWrites: writes.filter((w) => w.status !== 200 || !w.deployed).length,
        writeMs: ms.length === 0 ? null : { min: ms[0], median: ms[Math.floor(ms.length / 2)], max: ms[ms.length - 1] },
        log: writes,
      };
    },
  };
}
