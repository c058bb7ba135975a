#!/usr/bin/env node
/**
 * Micro-benchmark of the per-request IP decision: parseClientIp(string) + IpTrie lookup, and of
 * compiling rule lists (parseIpEntry + IpTrieBuilder.add + build).
 *
 * Usage:
 *   npx tsc -p tsconfig.json && node --expose-gc bench/micro/lookup.mjs
 *   IPGATE_DIST=/tmp/iptrie-dist node --expose-gc bench/micro/lookup.mjs     # other build output
 * Options (env): SIZES=10,10000,100000,1000000  LOOKUPS=1000000  SEED=1  REF_CAP=10000
 *
 * References, run on the same workload: node's net.BlockList (addSubnet + check; it scans its rules
 * linearly and only answers "listed or not") and a linear ipaddr.js scan (longest allow and deny
 * match, like ipgate). Both are linear in the list size, so their lists are capped at REF_CAP
 * prefixes and their lookups at a time budget; the table says when that happened.
 */
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ipaddr from 'ipaddr.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.IPGATE_DIST ?? path.join(here, '../../dist/policy');
const load = (f) => import(pathToFileURL(path.join(dist, f)).href);
const { parseClientIp, formatIPv4, formatIPv6 } = await load('ip-address.js');
const { parseIpEntry } = await load('ip-entry.js');
const { IpTrieBuilder } = await load('ip-trie.js');

const SIZES = (process.env.SIZES ?? '10,10000,100000,1000000').split(',').map(Number);
const LOOKUPS = Number(process.env.LOOKUPS ?? 1_000_000);
const REF_CAP = Number(process.env.REF_CAP ?? 10_000);
const SEED = Number(process.env.SEED ?? 1);
const REF_BUDGET_MS = 1500;

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
let rnd = mulberry32(SEED);
const u32 = () => Math.floor(rnd() * 4294967296) >>> 0;
const maskWord = (w, len, i) => {
  const bits = len - i * 32;
  if (bits >= 32) return w >>> 0;
  if (bits <= 0) return 0;
  return (w & (0xffffffff << (32 - bits))) >>> 0;
};

/** A random prefix: { family, words, length }. IPv6 ones are inside 2000::/3 like real lists. */
function randomPrefix(family) {
  const r = rnd();
  if (family === 4) {
    const length = r < 0.4 ? 32 : r < 0.7 ? 24 : 8 + Math.floor(rnd() * 24);
    return { family, words: [maskWord(u32(), length, 0)], length };
  }
  const length = r < 0.3 ? 128 : r < 0.5 ? 64 : r < 0.7 ? 48 : 16 + Math.floor(rnd() * 112);
  const raw = [((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32()];
  return { family, words: raw.map((w, i) => maskWord(w, length, i)), length };
}

function prefixText(p) {
  return p.family === 4 ? `${formatIPv4(p.words[0])}/${p.length}` : `${formatIPv6(p.words)}/${p.length}`;
}

/** Half inside a listed prefix (random host bits), half random (mostly misses). */
function randomAddress(family, prefixes) {
  if (prefixes.length > 0 && rnd() < 0.5) {
    const p = prefixes[Math.floor(rnd() * prefixes.length)];
    const words = p.words.map((w, i) => (maskWord(w, p.length, i) | (u32() & ~maskWord(0xffffffff, p.length, i))) >>> 0);
    return family === 4 ? formatIPv4(words[0]) : formatIPv6(words);
  }
  if (family === 4) return formatIPv4(u32());
  return formatIPv6([((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32()]);
}

const gc = globalThis.gc ?? (() => {});
const mem = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const MB = (b) => (b / 1048576).toFixed(1);
const fmtRate = (r) => (r >= 1e6 ? `${(r / 1e6).toFixed(2)} M/s` : `${(r / 1e3).toFixed(1)} k/s`);

function benchIpgate(trie, addrs) {
  const out = new Uint32Array(4);
  const allow = trie.allowEntry;
  const deny = trie.denyEntry;
  let sink = 0;
  let best = 0;
  for (let rep = 0; rep < 5; rep++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < addrs.length; i++) {
      const f = parseClientIp(addrs[i], out);
      if (f === 0) {
        sink--;
        continue;
      }
      const leaf = trie.lookup(f, out);
      sink += allow[leaf] + deny[leaf];
    }
    const ns = Number(process.hrtime.bigint() - t0);
    best = Math.max(best, (addrs.length / ns) * 1e9);
  }
  return { rate: best, sink };
}

function benchParseOnly(addrs) {
  const out = new Uint32Array(4);
  let sink = 0;
  let best = 0;
  for (let rep = 0; rep < 5; rep++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < addrs.length; i++) sink += parseClientIp(addrs[i], out) + out[0];
    const ns = Number(process.hrtime.bigint() - t0);
    best = Math.max(best, (addrs.length / ns) * 1e9);
  }
  return { rate: best, sink };
}

/** Run fn over addrs until done or out of budget; returns lookups/s and how many were done. */
function timed(addrs, fn) {
  let sink = 0;
  let done = 0;
  const t0 = performance.now();
  for (let i = 0; i < addrs.length; i++) {
    sink += fn(addrs[i]);
    done++;
    if ((i & 63) === 63 && performance.now() - t0 > REF_BUDGET_MS) break;
  }
  const ms = performance.now() - t0;
  return { rate: (done / ms) * 1000, done, sink };
}

function benchBlockList(family, prefixes, addrs) {
  const bl = new net.BlockList();
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const p of prefixes) bl.addSubnet(family === 4 ? formatIPv4(p.words[0]) : formatIPv6(p.words), p.length, type);
  return timed(addrs, (a) => (bl.check(a, type) ? 1 : 0));
}

function benchIpaddr(prefixes, actions, addrs) {
  const ranges = prefixes.map((p) => ipaddr.parseCIDR(prefixText(p)));
  return timed(addrs, (a) => {
    if (!ipaddr.isValid(a)) return -1;
    const ip = ipaddr.process(a);
    const kind = ip.kind();
    let bestAllow = -1;
    let bestDeny = -1;
    let allowLen = -1;
    let denyLen = -1;
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i];
      if (r[0].kind() !== kind || !ip.match(r)) continue;
      if (actions[i] === 0 ? r[1] > allowLen : r[1] > denyLen) {
        if (actions[i] === 0) {
          allowLen = r[1];
          bestAllow = i;
        } else {
          denyLen = r[1];
          bestDeny = i;
        }
      }
    }
    return bestAllow + bestDeny;
  });
}

const rows = [];
const notes = [];
for (const family of [4, 6]) {
  for (const size of SIZES) {
    rnd = mulberry32(SEED * 1000 + family * 100 + SIZES.indexOf(size));
    const prefixes = Array.from({ length: size }, () => randomPrefix(family));
    const texts = prefixes.map(prefixText);
    const actions = Array.from({ length: size }, () => (rnd() < 0.3 ? 0 : 1));
    const addrs = Array.from({ length: LOOKUPS }, () => randomAddress(family, prefixes));

    // Compile: parse rule text, add, build.
    gc();
    gc();
    const before = mem();
    const t0 = performance.now();
    const builder = new IpTrieBuilder();
    for (let i = 0; i < size; i++) {
      const r = parseIpEntry(texts[i]);
      if (!r.ok) throw new Error(r.error);
      for (const p of r.prefixes) builder.add(p, actions[i], i);
    }
    const t1 = performance.now();
    let trie = builder.build();
    const t2 = performance.now();
    const peak = mem() - before;
    gc();
    gc();
    const retained = mem() - before;

    const { rate, sink } = benchIpgate(trie, addrs);
    const parse = benchParseOnly(addrs);

    const refPrefixes = size > REF_CAP ? prefixes.slice(0, REF_CAP) : prefixes;
    const refActions = actions.slice(0, refPrefixes.length);
    const bl = benchBlockList(family, refPrefixes, addrs);
    const ia = benchIpaddr(refPrefixes, refActions, addrs);
    const capNote = (r) =>
      `${fmtRate(r.rate)}${refPrefixes.length < size ? ` (${refPrefixes.length} prefixes` : ' ('}${refPrefixes.length < size ? ', ' : ''}${r.done} lookups)`;
    rows.push([
      `IPv${family}`,
      size.toLocaleString('en-US'),
      (t1 - t0).toFixed(0),
      (t2 - t1).toFixed(0),
      (t2 - t0).toFixed(0),
      MB(peak),
      MB(retained),
      `${MB(trie.stats.bytes)} / ${trie.stats.nodes}`,
      fmtRate(parse.rate),
      fmtRate(rate),
      capNote(bl),
      capNote(ia),
    ]);
    if (sink === 0.5 || parse.sink === 0.5) console.log('unreachable');
    trie = null;
  }
}

console.log(
  `\nipgate micro-benchmark: node ${process.version}, ${LOOKUPS.toLocaleString('en-US')} pre-generated address strings per row ` +
    `(half inside a listed prefix, half random), best of 5 passes; seed ${SEED}${globalThis.gc ? '' : ' (run with --expose-gc for meaningful memory columns)'}\n`,
);
const header = [
  'family',
  'entries',
  'parse+add ms',
  'build ms',
  'compile ms',
  'compile peak MB',
  'retained MB',
  'trie MB / nodes',
  'parseClientIp only',
  'ipgate parse+lookup',
  'net.BlockList',
  'ipaddr.js linear',
];
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log(
  `\nReferences are linear scans: lists above ${REF_CAP.toLocaleString('en-US')} prefixes are cut to the first ${REF_CAP.toLocaleString('en-US')} ` +
    `and each reference stops after ~${REF_BUDGET_MS} ms (lookup counts in brackets). net.BlockList only answers listed/not listed.`,
);
for (const n of notes) console.log(n);
