/**
 * Seeded random allowlists for the HTTP benchmark: a mix of IPv4 and IPv6 CIDRs that never
 * covers 127.0.0.0/8 or 203.0.113.0/24, so the benchmark's client addresses match only the
 * entries a scenario adds on purpose (or none, for the deny flood).
 *
 * Self-contained on purpose: the test data must not come from the code under test.
 */

/** mulberry32: a small, fast, seedable PRNG returning floats in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Keep the top `len` bits of a 32-bit word. */
function mask(word, len) {
  if (len >= 32) return word >>> 0;
  if (len <= 0) return 0;
  return (word & (0xffffffff << (32 - len))) >>> 0;
}

function ipv4Cidr(rnd) {
  const r = rnd();
  // 40% /32, 30% /24, 30% /8-/31, as in bench/micro/lookup.mjs.
  const len = r < 0.4 ? 32 : r < 0.7 ? 24 : 8 + Math.floor(rnd() * 24);
  let first;
  do first = 1 + Math.floor(rnd() * 223); // 1..223: unicast, no 0/8 and no multicast
  while (first === 127 || first === 203);
  const word = mask(((first << 24) | Math.floor(rnd() * 0x1000000)) >>> 0, len);
  const text = `${word >>> 24}.${(word >>> 16) & 255}.${(word >>> 8) & 255}.${word & 255}`;
  return len === 32 ? text : `${text}/${len}`;
}

function ipv6Cidr(rnd) {
  const r = rnd();
  // 30% /128, 20% /64, 20% /48, 30% /16-/127, inside 2000::/3 (global unicast).
  const len = r < 0.3 ? 128 : r < 0.5 ? 64 : r < 0.7 ? 48 : 16 + Math.floor(rnd() * 112);
  const words = [((Math.floor(rnd() * 0x20000000) | 0x20000000) >>> 0), 0, 0, 0].map((w, i) =>
    mask(i === 0 ? w : Math.floor(rnd() * 4294967296), len - i * 32),
  );
  const groups = [];
  for (const w of words) groups.push((w >>> 16).toString(16), (w & 0xffff).toString(16));
  // Compress a trailing run of zero groups (what a masked prefix mostly has) to "::".
  let end = 8;
  while (end > 0 && groups[end - 1] === '0') end--;
  const text = end <= 6 ? `${groups.slice(0, end).join(':')}::` : groups.join(':');
  return len === 128 ? text : `${text}/${len}`;
}

/**
 * `n` random entries, half IPv4 and half IPv6, deterministic for a given seed. Duplicates are
 * possible and harmless (the gateway accepts overlapping entries).
 */
export function randomCidrs(n, seed) {
  const rnd = mulberry32(seed);
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = i % 2 === 0 ? ipv4Cidr(rnd) : ipv6Cidr(rnd);
  return out;
}
