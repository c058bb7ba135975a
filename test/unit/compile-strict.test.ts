/**
 * compileSnapshot fails closed on a state no validator would have let through: one a store was
 * filled with by another writer (a checksum-valid file, a row written by hand). A value the
 * compiler branches on that is outside its set must fail the compile, naming the key, and must
 * never throw or quietly compile into something looser (a mistyped allowlist as a blocklist, an
 * unknown pipeline dropped).
 */
import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../src/config/load.js';
import { compileConfig, configToState } from '../../src/main.js';
import type { PolicyState } from '../../src/policy/model.js';

function validState(): { config: ReturnType<typeof parseConfigText>; state: PolicyState } {
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
              policies: [
                { operationMetadata: { targetScope: 'ALL', targetPipeline: 'REQUEST' }, policy: { type: 'policy-white-ip', name: 'allow', ipList: ['127.0.0.0/8'] } },
                {
                  operationMetadata: { targetScope: 'ENDPOINT', targetPipeline: 'REQUEST', targetEndpoint: '/admin/**', targetEndpointHTTPMethod: 'GET' },
                  policy: { type: 'policy-black-ip', name: 'block', ipList: ['127.0.0.5'] },
                },
              ],
            },
          ],
        },
      ],
    }),
    'strict.yaml',
  );
  return { config, state: configToState(config) };
}

/** The same valid state with one thing changed, as a raw (unvalidated) store write could. */
function tampered(change: (s: Record<string, any>) => void): { ok: boolean; issues: string[] } {
  const { config, state } = validState();
  const copy = structuredClone(state) as unknown as Record<string, any>;
  change(copy);
  const r = compileConfig(config, copy as unknown as PolicyState);
  return { ok: r.ok, issues: r.ok ? [] : r.issues.map((i) => `${i.path}: ${i.message}`) };
}

const policy0 = (s: Record<string, any>) => s.projects[0].apiProxies[0].policies[0];
const policy1 = (s: Record<string, any>) => s.projects[0].apiProxies[0].policies[1];

describe('compileSnapshot on a state no validator checked', () => {
  it('compiles the untouched state', () => {
    expect(tampered(() => undefined)).toEqual({ ok: true, issues: [] });
  });

  it.each<[string, (s: Record<string, any>) => void, string]>([
    ['a mistyped policy type (not read as a blocklist)', (s) => (policy0(s).policy.type = 'policy-white-IP'), 'policies[0].policy.type: must be policy-white-ip or policy-black-ip'],
    ['an unknown pipeline (not dropped)', (s) => (policy0(s).operationMetadata.targetPipeline = 'request'), 'policies[0].operationMetadata.targetPipeline: must be REQUEST, RESPONSE or ERROR'],
    ['an unknown scope', (s) => (policy0(s).operationMetadata.targetScope = 'all'), 'policies[0].operationMetadata.targetScope: must be ALL or ENDPOINT'],
    ['an unknown endpoint method (never matching)', (s) => (policy1(s).operationMetadata.targetEndpointHTTPMethod = 'FETCH'), 'policies[1].operationMetadata.targetEndpointHTTPMethod: unknown method "FETCH"'],
    ['an ipList that is not a list', (s) => (policy0(s).policy.ipList = { a: '10.0.0.0/8' }), 'policies[0].policy.ipList: must be a list'],
    ['an unknown client IP source', (s) => (policy0(s).policy.targetVariableForIP = { type: 'COOKIE' }), 'policies[0].policy.targetVariableForIP: type: unknown client IP source "COOKIE"'],
    ['an upstream URL that is not a URL (no throw)', (s) => (s.projects[0].apiProxies[0].upstream.url = 'not a url'), 'apiProxies[0].upstream.url: not a URL'],
    ['an upstream URL of another scheme', (s) => (s.projects[0].apiProxies[0].upstream.url = 'ftp://127.0.0.1/'), 'apiProxies[0].upstream.url: must be an http or https URL'],
    ['a shape the compiler cannot walk (no throw)', (s) => (s.projects[0].ipGroups = 7), 'projects: cannot be compiled:'],
  ])('%s fails the compile, naming the key', (_what, change, issue) => {
    const r = tampered(change);
    expect(r.ok).toBe(false);
    expect(r.issues.join('\n')).toContain(issue);
  });
});
