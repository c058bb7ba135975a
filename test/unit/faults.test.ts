import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FAULTS, faultBody } from '../../src/dataplane/faults.js';

describe('fault table', () => {
  const readme = readFileSync('README.md', 'utf8');

  it.each(Object.entries(FAULTS))('documents %s with its status in the README fault table', (code, f) => {
    expect(readme).toMatch(new RegExp(`^\\| \`${code}\` \\| ${f.status} \\|`, 'm'));
  });

  it('builds valid JSON envelopes even when the text needs escaping', () => {
    const body = faultBody('id-1', 'IP_BLOCKED', 'quote " backslash \\ newline \n', 403);
    expect(JSON.parse(body)).toEqual({ fault: { correlationId: 'id-1', faultCode: 'IP_BLOCKED', faultString: 'quote " backslash \\ newline \n', faultStatusCode: 403 } });
  });
});
