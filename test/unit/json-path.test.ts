import { describe, expect, it } from 'vitest';
import { extractJsonString } from '../../src/dataplane/json-path.js';

const get = (json: string, path = 'client.ip') => extractJsonString(Buffer.from(json), path.split('.'));

describe('extractJsonString', () => {
  it('reads a string at a dotted path', () => {
    expect(get('{"client":{"ip":"192.0.2.1"}}')).toBe('192.0.2.1');
    expect(get(' { "a" : [1, {"b": null}], "client" : { "x": true, "ip" : "2001:db8::1" } } ')).toBe('2001:db8::1');
    expect(get('{"ip":"1.2.3.4"}', 'ip')).toBe('1.2.3.4');
    expect(get('{"client":{"ip":"\\u0031.2.3.4"}}')).toBe('1.2.3.4');
  });

  it('reports duplicate keys on the path (JSON.parse would silently keep the last)', () => {
    expect(get('{"client":{"ip":"10.0.0.1","ip":"203.0.113.9"}}')).toEqual({ reason: 'body has duplicate key "ip"' });
    expect(get('{"client":{"ip":"10.0.0.1"},"client":{"ip":"203.0.113.9"}}')).toEqual({ reason: 'body has duplicate key "client"' });
  });

  it('tolerates duplicate keys off the path', () => {
    expect(get('{"other":{"k":1,"k":2},"client":{"ip":"10.0.0.1"}}')).toBe('10.0.0.1');
  });

  it('reports missing and non-string values', () => {
    expect(get('{"client":{}}')).toEqual({ reason: 'body field client.ip is missing' });
    expect(get('{"client":{"ip":167772161}}')).toEqual({ reason: 'body field client.ip is not a string' });
    expect(get('{"client":{"ip":{"v":"1.2.3.4"}}}')).toEqual({ reason: 'body field client.ip is not a string' });
    expect(get('{"client":"1.2.3.4"}')).toEqual({ reason: 'body field client.ip is missing' });
  });

  it.each(['', '{', '{"client":{"ip":"1.2.3.4"}', '{"client":{"ip":"1.2.3.4"}} x', "{'client':1}", '{"a":01}', '{"a":"\t"}', '{"a":tru}', '[1,]', '{"a":1,}'])(
    'rejects invalid JSON %j',
    (bad) => {
      const r = get(bad);
      expect(typeof r).toBe('object');
      expect((r as { reason: string }).reason).toMatch(/not valid JSON/);
    },
  );

  it('bounds nesting depth instead of overflowing the stack', () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    expect(get(deep)).toEqual({ reason: 'body JSON is nested too deeply' });
  });
});
