import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../src/config/load.js';
import { isRfc3339 } from '../../src/config/schema.js';

function issuesOf(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfigText(text, 't.yaml', env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
  }
  throw new Error('expected a ConfigError');
}

const proxyYaml = (policyYaml: string) => `
projects:
  - name: p
    apiProxies:
      - name: a
        basePath: /a
        upstream: { url: "http://127.0.0.1:1" }
        policies:
${policyYaml}
`;

describe('config loading', () => {
  it('loads the shipped sample config with defaults filled in', () => {
    const c = parseConfigText(readFileSync('config/gateway.yaml', 'utf8'), 'config/gateway.yaml');
    expect(c.listen).toBe('0.0.0.0:8080');
    expect(c.environment).toBe('production');
    expect(c.trustedProxies).toEqual(['loopback']);
    expect(c.limits).toEqual({ requestBodyBytes: 10 * 1024 * 1024, bodyBufferBytes: 1024 * 1024 });
    expect(c.projects[0]!.apiProxies[0]!.policies[0]!.policy.ipList).toContain('127.0.0.0/8');
  });

  it('names the key path and the bad value', () => {
    const issues = issuesOf('listen: "nonsense"\nlimits: { requestBodyBytes: -5 }\n');
    expect(issues).toContainEqual(expect.stringMatching(/^listen: expected host:port .*"nonsense"/));
    expect(issues).toContainEqual(expect.stringMatching(/^limits\.requestBodyBytes: .*-5/));
  });

  it('reports a wrongly typed parent in the file even when an environment variable sets a key inside it', () => {
    const text = 'log: "debug"\nadmin: { tokens: "oops" }\n';
    const alone = issuesOf(text);
    expect(alone).toContainEqual(expect.stringMatching(/^log: /));
    expect(alone).toContainEqual(expect.stringMatching(/^admin\.tokens: /));
    const withEnv = issuesOf(text, { IPGATE_LOG_LEVEL: 'info', IPGATE_ADMIN_TOKEN: 'x'.repeat(32) });
    expect(withEnv).toContainEqual(expect.stringMatching(/^log: must be a mapping, not "debug" \(IPGATE_LOG_LEVEL sets log\.level inside it\)/));
    expect(withEnv).toContainEqual(expect.stringMatching(/^admin\.tokens: must be a list, not "oops"/));
    expect(issuesOf('tls: "yes"\n', { IPGATE_TLS_CERT: '/c.pem', IPGATE_TLS_KEY: '/k.pem' })).toContainEqual(expect.stringMatching(/^tls: must be a mapping, not "yes"/));
  });

  it('IPGATE_TRUSTED_PROXIES=none trusts no proxy; an empty value counts as unset', () => {
    expect(parseConfigText('listen: "127.0.0.1:0"\n', 't.yaml', { IPGATE_TRUSTED_PROXIES: 'none' }).trustedProxies).toEqual([]);
    expect(parseConfigText('listen: "127.0.0.1:0"\n', 't.yaml', { IPGATE_TRUSTED_PROXIES: '' }).trustedProxies).toEqual(parseConfigText('listen: "127.0.0.1:0"\n', 't.yaml').trustedProxies);
    expect(parseConfigText('listen: "127.0.0.1:0"\n', 't.yaml').trustedProxies).not.toEqual([]);
  });

  it("refuses an API proxy that names one environment twice, in any case", () => {
    const issues = issuesOf(`projects:
  - name: p
    apiProxies:
      - name: a
        basePath: /a
        upstream: { url: "http://127.0.0.1:9" }
        environments: [production, PRODUCTION]
`);
    expect(issues).toContainEqual(expect.stringMatching(/^projects\[0\]\.apiProxies\[0\]\.environments\[1\]: PRODUCTION: the same environment as \[0\]/));
  });

  it('names store.postgres.url when a bare "%" would fail only at connect time', () => {
    expect(issuesOf('store: { postgres: { url: "postgres://ipgate:50%off@127.0.0.1:5432/x" } }\n')).toContainEqual(
      expect.stringMatching(/^store\.postgres\.url: has a "%" that is not a percent-escape/),
    );
    expect(parseConfigText('store: { postgres: { url: "postgres://ipgate:50%25off@127.0.0.1:5432/x" } }\n', 'pg.yaml').store.postgres?.url).toContain('50%25off');
  });

  it('rejects unknown keys, so a typo cannot silently drop a list', () => {
    const issues = issuesOf(proxyYaml(`          - operationMetadata: { targetScope: ALL, targetPipeline: REQUEST }
            policy: { type: policy-white-ip, name: w, ipLsit: [10.0.0.0/8], ipList: [10.0.0.0/8] }`));
    expect(issues).toContainEqual(expect.stringMatching(/^projects\[0\]\.apiProxies\[0\]\.policies\[0\]\.policy: Unrecognized key: "ipLsit"/));
  });

  it('reports a CIDR with host bits set at its exact index, naming the network meant', () => {
    const issues = issuesOf(proxyYaml(`          - operationMetadata: { targetScope: ALL, targetPipeline: REQUEST }
            policy: { type: policy-white-ip, name: w, ipList: [192.0.2.1, 10.0.0.1/8] }`));
    expect(issues).toContainEqual(
      expect.stringMatching(/^projects\[0\]\.apiProxies\[0\]\.policies\[0\]\.policy\.ipList\[1\]: 10\.0\.0\.1\/8: host bits set, did you mean 10\.0\.0\.0\/8\?/),
    );
  });

  it('requires targetEndpoint and method for ENDPOINT scope, and at least one entry', () => {
    const issues = issuesOf(proxyYaml(`          - operationMetadata: { targetScope: ENDPOINT, targetPipeline: REQUEST }
            policy: { type: policy-white-ip, name: w, ipList: [] }`));
    const base = 'projects[0].apiProxies[0].policies[0]';
    expect(issues).toContainEqual(expect.stringContaining(`${base}.operationMetadata.targetEndpoint: required when targetScope is ENDPOINT`));
    expect(issues).toContainEqual(expect.stringContaining(`${base}.operationMetadata.targetEndpointHTTPMethod: required when targetScope is ENDPOINT`));
    expect(issues).toContainEqual(expect.stringContaining(`${base}.policy.ipList: must contain at least one entry`));
  });

  it('rejects an unknown enum value, order below 1, and a SCRIPT that does not compile', () => {
    const issues = issuesOf(proxyYaml(`          - operationMetadata: { targetScope: ALL, targetPipeline: BEFORE, order: 0 }
            policy:
              type: policy-white-ip
              name: w
              ipList: [10.0.0.0/8]
              targetVariableForIP: { type: SCRIPT, script: "headers[" }`));
    expect(issues).toContainEqual(expect.stringMatching(/operationMetadata\.targetPipeline: .*"BEFORE"/));
    expect(issues).toContainEqual(expect.stringMatching(/operationMetadata\.order: order is 1-based/));
    expect(issues).toContainEqual(expect.stringMatching(/policy\.targetVariableForIP\.script: does not compile/));
  });

  it('requires the field each targetVariableForIP type reads', () => {
    const issues = issuesOf(proxyYaml(`          - operationMetadata: { targetScope: ALL, targetPipeline: REQUEST }
            policy: { type: policy-black-ip, name: b, ipList: [10.0.0.0/8], targetVariableForIP: { type: HEADER } }`));
    expect(issues).toContainEqual(expect.stringContaining('policy.targetVariableForIP.headerName: required when type is HEADER'));
  });

  it('rejects duplicate YAML keys instead of keeping the last one', () => {
    const issues = issuesOf('listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n');
    expect(issues.join('\n')).toMatch(/unique|duplicate/i);
  });

  it('applies environment overrides, and names the variable when one is bad', () => {
    const c = parseConfigText('listen: 127.0.0.1:1\n', 't.yaml', {
      IPGATE_LISTEN: '127.0.0.1:9999',
      IPGATE_ENVIRONMENT: 'staging',
      IPGATE_TRUSTED_PROXIES: 'loopback, 10.0.0.0/8 ,',
      IPGATE_LOG_LEVEL: 'warn',
    });
    expect(c.listen).toBe('127.0.0.1:9999');
    expect(c.environment).toBe('staging');
    expect(c.trustedProxies).toEqual(['loopback', '10.0.0.0/8']);
    expect(c.log.level).toBe('warn');
    expect(issuesOf('{}', { IPGATE_LISTEN: 'nope' })).toContainEqual(expect.stringMatching(/^listen: .*\[set by IPGATE_LISTEN\]/));
    expect(issuesOf('{}', { IPGATE_TRUSTED_PROXIES: 'loopback,not-a-cidr' })).toContainEqual(expect.stringMatching(/^trustedProxies\[1\]: .*\[set by IPGATE_TRUSTED_PROXIES\]/));
  });

  it('reads controlPlanePacing (default on) from the file or IPGATE_CONTROL_PLANE_PACING, and names the variable when it is not a boolean', () => {
    expect(parseConfigText('{}', 't.yaml').controlPlanePacing).toBe(true);
    expect(parseConfigText('controlPlanePacing: false\n', 't.yaml').controlPlanePacing).toBe(false);
    expect(parseConfigText('{}', 't.yaml', { IPGATE_CONTROL_PLANE_PACING: 'false' }).controlPlanePacing).toBe(false);
    expect(parseConfigText('controlPlanePacing: false\n', 't.yaml', { IPGATE_CONTROL_PLANE_PACING: ' true ' }).controlPlanePacing).toBe(true);
    expect(issuesOf('{}', { IPGATE_CONTROL_PLANE_PACING: 'yes' })).toContainEqual(expect.stringMatching(/^controlPlanePacing: .*\[set by IPGATE_CONTROL_PLANE_PACING\]/));
    expect(issuesOf('controlPlanePacing: 1\n')).toContainEqual(expect.stringMatching(/^controlPlanePacing: /));
  });
});

describe('isRfc3339 (IP group entry times)', () => {
  it('accepts real instants only, where Date.parse would roll an impossible one over', () => {
    for (const s of ['2024-02-29T00:00:00Z', '2000-02-29T12:00:00.5Z', '2026-12-31T23:59:59.999+14:00', '2026-01-31T00:00:00-00:30', '0000-01-01T00:00:00Z']) {
      expect(isRfc3339(s), s).toBe(true);
    }
    for (const s of [
      '2026-02-30T00:00:00Z', // Date.parse: March 2
      '2026-04-31T00:00:00Z',
      '2023-02-29T00:00:00Z',
      '1900-02-29T00:00:00Z', // a century that is not a leap year
      '2026-01-01T24:00:00Z', // Date.parse: the next midnight
      '2026-01-01T00:60:00Z',
      '2026-01-01T23:59:60Z', // a leap second: Date cannot hold it
      '2026-13-01T00:00:00Z',
      '2026-00-10T00:00:00Z',
      '2026-01-00T00:00:00Z',
      '2026-01-01T00:00:00+24:00',
      '2026-01-01T00:00:00+00:60',
      '2026-01-01 00:00:00Z',
      'tomorrow',
    ]) {
      expect(isRfc3339(s), s).toBe(false);
    }
  });
});
