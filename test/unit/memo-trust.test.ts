import proxyaddr from 'proxy-addr';
import { describe, expect, it } from 'vitest';
import { memoTrust } from '../../src/dataplane/client-ip.js';
import { mulberry32 } from '../helpers/seeded.js';

describe('memoTrust', () => {
  it('answers exactly like the proxy-addr function it wraps, past the memo bound and on repeats', () => {
    const raw = proxyaddr.compile(['loopback', '10.0.0.0/8', '2001:db8::/32', '192.168.1.7']);
    let calls = 0;
    const counted = (a: string, i: number) => {
      calls++;
      return raw(a, i);
    };
    const trust = memoTrust(counted);
    const rnd = mulberry32(7);
    const pick = (): string => {
      const r = rnd();
      if (r < 0.25) return `10.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}`;
      if (r < 0.5) return `${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}.${Math.floor(rnd() * 256)}`;
      if (r < 0.6) return `2001:db8::${Math.floor(rnd() * 65536).toString(16)}`;
      if (r < 0.7) return `::ffff:127.0.0.${Math.floor(rnd() * 256)}`;
      if (r < 0.8) return ['127.0.0.1', '192.168.1.7', '192.168.1.8', 'unknown', '', '::1'][Math.floor(rnd() * 6)]!;
      return `2002::${Math.floor(rnd() * 65536).toString(16)}`;
    };
    const seen: string[] = [];
    for (let n = 0; n < 20_000; n++) {
      const a = n % 3 === 0 && seen.length > 0 ? seen[Math.floor(rnd() * seen.length)]! : pick();
      seen.push(a);
      expect(trust(a, 0), a).toBe(raw(a, 0));
    }
    // Repeats are answered from the memo: far fewer calls than lookups.
    const before = calls;
    for (let n = 0; n < 1000; n++) trust('127.0.0.1', 0);
    expect(calls - before).toBeLessThanOrEqual(1);
  });
});
