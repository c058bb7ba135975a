#!/usr/bin/env node
/**
 * Micro-benchmark of the per-request IP decision (parseClientIp from the address string + IpTrie
 * lookup + reading allowEntry/denyEntry) and of compiling rule lists the way compilePolicy does
 * (IpTrieBuilder.addEntry, which parses each rule text with parseIpEntry's syntax and adds its
 * prefixes, then build).
 *
 * Usage (needs the compiled output):
 *   npx tsc -p tsconfig.json && node --expose-gc bench/micro/lookup.mjs
 *   IPGATE_DIST=/tmp/iptrie-dist node --expose-gc bench/micro/lookup.mjs   # another build dir
 * Env: SIZES=10,10000,100000,1000000  FAMILIES=4,6  LOOKUPS=1000000  SEED=1  REF_CAP=10000
 *      MIX=hosts (lists of /32 + /24, IPv6 /128 + /64, allow entries only: see below)
 *      COMPILE_RUNS=3 (compile time is the fastest of these runs; memory is from the first)
 * Run it on an otherwise idle machine: on a shared 2-core box the rates move by +-30% run to run.
 *
 * Each (family, size) row runs in a fresh child process so that memory numbers and JIT state do
 * not leak between rows. Workload: SIZE random CIDRs (IPv4: 40% /32, 30% /24, 30% /8-/31; IPv6
 * inside 2000::/3: 30% /128, 20% /64, 20% /48, 30% /16-/127), 30% allow / 70% deny, given as rule
 * text; LOOKUPS pre-generated client address strings, half inside a random listed prefix and half
 * uniformly random (mostly misses). Lookup rate is the best of 5 passes over the whole array.
 * "hot 1k" repeats the same passes over only 1,000 distinct addresses (a cache-resident working
 * set, like a gateway serving a bounded set of clients) to separate CPU cost from memory latency.
 * The list is compiled as an allow list (kind 0), as compilePolicy does. With MIX=hosts the list is
 * 60% /32 and 40% /24 (IPv6 60% /128, 40% /64), all allow: the decision changes at nearly every
 * prefix, unlike the default mix, whose many short deny prefixes cover the whole IPv4 space and so
 * make an allow list's decision the same everywhere (the "parse+decision" column of that mix is
 * not a measure of large-list lookups; MIX=hosts is).
 *
 * "floor" measures this machine's memory on the same addresses: the parse, then one random read
 * into an array as large as the decision index (or the trie), successive reads overlapping: the
 * rate no lookup into that much data can beat. Memory speed differs several-fold between otherwise
 * equal VMs, and within minutes on one, so the 1M rows are read against it. It is given twice: with
 * the values read summed, and with a branch on each that goes the way the decision went for that
 * address (the decision column branches on its answers, and a mispredicted branch stops the reads
 * of the next addresses from overlapping).
 *
 * References on the same workload: node's net.BlockList (addSubnet + check; a linear scan that
 * only answers listed / not listed) and a linear ipaddr.js scan computing the longest allow and
 * deny match like ipgate. Both are O(list) per lookup, so their lists are cut to REF_CAP prefixes
 * and their lookups stop after ~1.5 s; the table says so when that happened.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { mulberry32 } from '../macro/lists.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.IPGATE_DIST ?? path.join(here, '../../dist/policy');
const SIZES = (process.env.SIZES ?? '10,10000,100000,1000000').split(',').map(Number);
const FAMILIES = (process.env.FAMILIES ?? '4,6').split(',').map(Number);
const LOOKUPS = Number(process.env.LOOKUPS ?? 1_000_000);
const REF_CAP = Number(process.env.REF_CAP ?? 10_000);
const SEED = Number(process.env.SEED ?? 1);
const REF_BUDGET_MS = 1500;
/** MIX=hosts: lists of host and /24 (IPv6: /128 and /64) allow entries only, where the decision flips at almost every prefix. */
const HOSTS = process.env.MIX === 'hosts';

const MB = (b) => (b / 1048576).toFixed(1);
const fmtRate = (r) => (r >= 1e6 ? `${(r / 1e6).toFixed(2)} M/s` : `${(r / 1e3).toFixed(1)} k/s`);

if (process.argv[2] === '--row') {
  const family = Number(process.argv[3]);
  const size = Number(process.argv[4]);
  console.log(JSON.stringify(await row(family, size)));
} else {
  await main();
}

async function main() {
  const rows = [];
  for (const family of FAMILIES) {
    for (const size of SIZES) {
      const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--row', String(family), String(size)], {
        encoding: 'utf8',
        env: process.env,
        maxBuffer: 1 << 24,
      });
      if (r.status !== 0) {
        console.error(r.stdout, r.stderr);
        throw new Error(`row IPv${family} ${size} failed`);
      }
      const res = JSON.parse(r.stdout.trim().split('\n').pop());
      rows.push(res);
      process.stderr.write(`done IPv${family} ${size}\n`);
    }
  }
  console.log(
    `\nipgate micro-benchmark: node ${process.version}, ${rows[0]?.cpus ?? '?'} CPUs; ${LOOKUPS.toLocaleString('en-US')} pre-generated address ` +
      `strings per row (half inside a listed prefix, half random), best of 5 passes; seed ${SEED}\n`,
  );
  const header = [
    'family',
    'entries',
    'compile ms, best of 3 (parse+add / build)',
    'heap+buffers at end of build',
    'retained after GC',
    'compile peak RSS growth',
    'trie bytes / objects',
    'parseClientIp only',
    'ipgate parse+lookup',
    'ipgate parse+decision (flips)',
    'floor: parse + 1 random read into that size (value summed / branched on)',
    'ipgate hot 1k',
    'net.BlockList',
    'ipaddr.js linear',
    'agreement with references',
  ];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const r of rows) {
    const ref = (x) => `${fmtRate(x.rate)}${r.refCapped ? ` (first ${r.refPrefixes.toLocaleString('en-US')} prefixes, ${x.done} lookups)` : x.done < LOOKUPS ? ` (${x.done} lookups)` : ''}`;
    console.log(
      `| IPv${r.family} | ${r.size.toLocaleString('en-US')} | ${r.compileMs.toFixed(0)} (${r.parseAddMs.toFixed(0)} / ${r.buildMs.toFixed(0)}) | ` +
        `${MB(r.peakBytes)} MB | ${MB(r.retainedBytes)} MB | ${r.compilePeakRss === null ? 'n/a' : `${MB(r.compilePeakRss)} MB`} | ${MB(r.trieBytes)} MB / ${r.trieObjects.toLocaleString('en-US')} | ` +
        `${fmtRate(r.parseRate)} | ${fmtRate(r.rate)} | ${fmtRate(r.decisionRate)} (${r.flips === null ? 'no index' : r.flips.toLocaleString('en-US')}) | ` +
        `${fmtRate(r.floorRate)} / ${fmtRate(r.floorBranchRate)} (${MB(r.floorBytes)} MB) | ${fmtRate(r.hotRate)} | ${ref(r.blockList)} | ${ref(r.ipaddr)} | ` +
        `${r.checked === 0 ? 'not checked (list cut)' : `${r.mismatches} mismatches in ${r.checked.toLocaleString('en-US')}`} |`,
    );
  }
  const bad = rows.filter((r) => r.mismatches > 0);
  if (bad.length > 0) {
    console.error(`\nDISAGREEMENT with the reference matchers in ${bad.length} row(s): ipgate's lookups are wrong.`);
    process.exitCode = 1;
  }
  console.log(
    `\n"parse+decision" is what checkPolicy asks per request of an allow list: does it reject the address? For lists of ` +
      `65,536 intervals or more (per family) it is answered by the decision index (flips: where the answer changes; a list whose short ` +
      `prefixes cover the whole space has almost none), otherwise by the trie. "agreement" also counts the decision index ` +
      `against the trie's answer on every address.\n` +
      `"floor" is this machine's bound for a structure of the decision's size (what its index reads from: IPv4 block index and keys, ` +
      `IPv6 block index and window keys, or the trie without an index): the same parse, then one random read into an array ` +
      `that large, the reads of successive addresses overlapping in the CPU. No lookup that makes at least one random read into that ` +
      `much data can beat it; where it is below a target, the target is out of reach on this machine. The first figure sums the values ` +
      `read; the second branches on each, the way the decision went for that address, as the decision column branches on each ` +
      `answer: a mispredicted branch discards the reads already started for the next addresses, so the second figure is the ` +
      `decision column's bound.\n` +
      `References are linear scans: lists above ${REF_CAP.toLocaleString('en-US')} prefixes are cut to the first ${REF_CAP.toLocaleString('en-US')} ` +
      `and each reference stops after ~${REF_BUDGET_MS} ms. net.BlockList only answers listed / not listed. ` +
      `"heap+buffers at end of build" and "retained" are process.memoryUsage() heapUsed + arrayBuffers growth over the state before ` +
      `compiling (rule text and test addresses already allocated), right after build() (before any GC) and after a full GC; ` +
      `"compile peak RSS growth" is the process's peak RSS during the first compile (VmHWM, reset just before) minus its RSS before it.`,
  );
}

/** VmRSS / VmHWM (peak RSS) of this process from /proc, in bytes; null where unavailable. */
function procStatus(field) {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
/** Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs). */
function resetPeakRss() {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}

async function row(family, size) {
  const load = (f) => import(pathToFileURL(path.join(dist, f)).href);
  const { parseClientIp, formatIPv4, formatIPv6 } = await load('ip-address.js');
  const { IpTrieBuilder, rejects } = await load('ip-trie.js');
  const ipaddr = (await import('ipaddr.js')).default;
  const os = await import('node:os');

  const rnd = mulberry32(SEED * 1000 + family * 100 + Math.round(Math.log10(size + 1) * 10));
  const u32 = () => Math.floor(rnd() * 4294967296) >>> 0;
  const maskWord = (w, len, i) => {
    const bits = len - i * 32;
    if (bits >= 32) return w >>> 0;
    if (bits <= 0) return 0;
    return (w & (0xffffffff << (32 - bits))) >>> 0;
  };
  const randomPrefix = () => {
    const r = rnd();
    if (family === 4) {
      const length = HOSTS ? (r < 0.6 ? 32 : 24) : r < 0.4 ? 32 : r < 0.7 ? 24 : 8 + Math.floor(rnd() * 24);
      return { family, words: [maskWord(u32(), length, 0)], length };
    }
    const length = HOSTS ? (r < 0.6 ? 128 : 64) : r < 0.3 ? 128 : r < 0.5 ? 64 : r < 0.7 ? 48 : 16 + Math.floor(rnd() * 112);
    const raw = [((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32()];
    return { family, words: raw.map((w, i) => maskWord(w, length, i)), length };
  };
  const addrText = (words) => (family === 4 ? formatIPv4(words[0]) : formatIPv6(words));
  const randomAddress = (prefixes) => {
    if (prefixes.length > 0 && rnd() < 0.5) {
      const p = prefixes[Math.floor(rnd() * prefixes.length)];
      return addrText(p.words.map((w, i) => (w | (u32() & ~maskWord(0xffffffff, p.length, i))) >>> 0));
    }
    return addrText(family === 4 ? [u32()] : [((u32() & 0x1fffffff) | 0x20000000) >>> 0, u32(), u32(), u32()]);
  };
  // JSON round trip: flat strings, as they would arrive from a config file or a socket.
  const flat = (xs) => JSON.parse(JSON.stringify(xs));

  // Generated in a function of its own so that no temporary of it is still held by this frame
  // when memory is measured.
  const makeData = () => {
    const prefixes = Array.from({ length: size }, randomPrefix);
    const texts = flat(prefixes.map((p) => `${addrText(p.words)}/${p.length}`));
    const actions = Array.from({ length: size }, () => (HOSTS || rnd() < 0.3 ? 0 : 1));
    const addrs = flat(Array.from({ length: LOOKUPS }, () => randomAddress(prefixes)));
    const hot = flat(Array.from({ length: LOOKUPS }, (_, i) => addrs[i % 1000]));
    return { prefixes, texts, actions, addrs, hot };
  };
  const { prefixes, texts, actions, addrs, hot } = makeData();

  const gc = globalThis.gc ?? (() => {});
  const mem = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  // Compile = parse every rule text + add (addEntry, as compilePolicy does) + build. In a function so that the builder is garbage
  // afterwards, as in real use. Run COMPILE_RUNS times (default 3): the time reported is the
  // fastest run (this is a shared 2-core box), memory is from the first run.
  const compile = () => {
    const t0 = performance.now();
    const builder = new IpTrieBuilder();
    for (let i = 0; i < size; i++) {
      const added = builder.addEntry(texts[i], actions[i], i);
      if (typeof added === 'string') throw new Error(added);
    }
    const t1 = performance.now();
    // An allow list, as compilePolicy builds one (kind 0): large lists get the IPv4 decision index.
    const built = builder.build(0);
    const t2 = performance.now();
    return { built, parseAddMs: t1 - t0, buildMs: t2 - t1, endBytes: mem() };
  };
  gc();
  gc();
  const before = mem();
  const peakReset = resetPeakRss();
  const rssBefore = procStatus('VmRSS');
  let first = compile();
  const hwm = procStatus('VmHWM');
  const compilePeakRss = peakReset && rssBefore !== null && hwm !== null ? hwm - rssBefore : null;
  const peakBytes = first.endBytes - before;
  const trie = first.built;
  let parseAddMs = first.parseAddMs;
  let buildMs = first.buildMs;
  let compileMs = first.parseAddMs + first.buildMs;
  first = null;
  gc();
  gc();
  const retainedBytes = mem() - before;
  for (let run = 1; run < Number(process.env.COMPILE_RUNS ?? 3); run++) {
    const again = compile();
    if (again.built.stats.bytes !== trie.stats.bytes) throw new Error('non-deterministic build');
    if (again.parseAddMs + again.buildMs < compileMs) {
      parseAddMs = again.parseAddMs;
      buildMs = again.buildMs;
      compileMs = again.parseAddMs + again.buildMs;
    }
    gc();
  }

  const out = new Uint32Array(4);
  const allow = trie.allowEntry;
  const deny = trie.denyEntry;
  function passes(list) {
    let best = 0;
    let sink = 0;
    for (let rep = 0; rep < 5; rep++) {
      const s0 = process.hrtime.bigint();
      for (let i = 0; i < list.length; i++) {
        const f = parseClientIp(list[i], out);
        if (f === 0) {
          sink--;
          continue;
        }
        const leaf = trie.lookup(f, out);
        sink += allow[leaf] + deny[leaf];
      }
      best = Math.max(best, (list.length / Number(process.hrtime.bigint() - s0)) * 1e9);
    }
    if (sink === 0.5) console.error('unreachable');
    return best;
  }
  const rate = passes(addrs);
  const hotRate = passes(hot);
  // What checkPolicy asks per request: does the policy (an allow list) reject this address? The
  // decision indexes answer large lists; small ones take the trie's answer.
  const d4 = trie.decision4;
  const d6 = trie.decision6;
  const decides = (f) => {
    if (f === 4 && d4 !== null) return d4.rejects(out[0]);
    if (f === 6 && d6 !== null) return d6.rejects(out);
    const leaf = trie.lookup(f, out);
    return rejects(0, allow[leaf], deny[leaf]);
  };
  let decisionRate = 0;
  // The same loop as passes(), written out rather than passed a callback: a shared loop calling
  // several functions would not inline them, and would measure the call instead of the lookup.
  {
    let sink = 0;
    for (let rep = 0; rep < 5; rep++) {
      const s0 = process.hrtime.bigint();
      for (let i = 0; i < addrs.length; i++) {
        const f = parseClientIp(addrs[i], out);
        if (f === 0) {
          sink--;
          continue;
        }
        if (decides(f)) sink++;
      }
      decisionRate = Math.max(decisionRate, (addrs.length / Number(process.hrtime.bigint() - s0)) * 1e9);
    }
    if (sink === 0.5) console.error('unreachable');
  }
  // The memory floor of this machine for a structure of the decision's size: the same parse, then
  // ONE read at a position that depends on the parsed address (a multiplicative hash, scaled to
  // the array, so uniform over it), into an array of exactly as many bytes as the decision index
  // reads from (IPv4: its block index and keys; IPv6: its block index and window
  // keys, not the whole addresses it reads on a tie; the trie when there is no index). Reads of
  // successive addresses do not depend on each other, so the CPU overlaps them: the floor is the
  // rate no lookup making at least one random read into that much data can beat, not the latency
  // of one read. Measured twice: with the values read summed, and branched on. The array holds
  // zeros and the branch tests the value read XOR the decision's own answer for that address, so it
  // waits for the read and goes exactly the way the decision loop's branch went (as predictable or
  // not: on MIX=hosts about half the answers are rejections, in no order; on the default mix all
  // are). Each mispredicted branch discards the reads already started for the next addresses, as in
  // the decision loop above, which branches on its answer as the data plane does: so the branched
  // floor is that loop's bound.
  const answers = new Uint8Array(addrs.length);
  for (let i = 0; i < addrs.length; i++) {
    const f = parseClientIp(addrs[i], out);
    answers[i] = f !== 0 && decides(f) ? 1 : 0;
  }
  const decisionBytes = d4 !== null ? d4.wire.idx.byteLength + d4.wire.keys.byteLength : d6 !== null ? d6.wire.idx.byteLength + d6.wire.keys.byteLength : trie.stats.bytes;
  const floorWords = Math.max(16, Math.ceil(decisionBytes / 4));
  const floorArray = new Int32Array(floorWords);
  let floorRate = 0;
  let floorBranchRate = 0;
  let floorSink = 0;
  for (let rep = 0; rep < 5; rep++) {
    const s0 = process.hrtime.bigint();
    for (let i = 0; i < addrs.length; i++) {
      const f = parseClientIp(addrs[i], out);
      const h = Math.imul(out[0] ^ out[3] ^ f, 0x9e3779b1) >>> 0;
      floorSink = (floorSink + floorArray[Math.floor((h / 4294967296) * floorWords)]) | 0;
    }
    floorRate = Math.max(floorRate, (addrs.length / Number(process.hrtime.bigint() - s0)) * 1e9);
    const s1 = process.hrtime.bigint();
    for (let i = 0; i < addrs.length; i++) {
      const f = parseClientIp(addrs[i], out);
      const h = Math.imul(out[0] ^ out[3] ^ f, 0x9e3779b1) >>> 0;
      if ((floorArray[Math.floor((h / 4294967296) * floorWords)] ^ answers[i]) === 1) floorSink++;
    }
    floorBranchRate = Math.max(floorBranchRate, (addrs.length / Number(process.hrtime.bigint() - s1)) * 1e9);
  }
  let parseRate = 0;
  {
    let sink = 0;
    for (let rep = 0; rep < 5; rep++) {
      const s0 = process.hrtime.bigint();
      for (let i = 0; i < addrs.length; i++) sink += parseClientIp(addrs[i], out) + out[0];
      parseRate = Math.max(parseRate, (addrs.length / Number(process.hrtime.bigint() - s0)) * 1e9);
    }
    if (sink === 0.5) console.error('unreachable');
  }

  const timed = (fn) => {
    let sink = 0;
    let done = 0;
    const s0 = performance.now();
    for (let i = 0; i < addrs.length; i++) {
      sink += fn(addrs[i]);
      done++;
      if ((i & 63) === 63 && performance.now() - s0 > REF_BUDGET_MS) break;
    }
    if (sink === 0.5) console.error('unreachable');
    return { rate: (done / (performance.now() - s0)) * 1000, done };
  };
  const refPrefixes = prefixes.slice(0, REF_CAP);
  const refActions = actions.slice(0, refPrefixes.length);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  const bl = new net.BlockList();
  for (const p of refPrefixes) bl.addSubnet(addrText(p.words), p.length, type);
  const blockList = timed((a) => (bl.check(a, type) ? 1 : 0));
  const ranges = refPrefixes.map((p) => ipaddr.parseCIDR(`${addrText(p.words)}/${p.length}`));
  const ipaddrRes = timed((a) => {
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
      if (refActions[i] === 0 && r[1] > allowLen) {
        allowLen = r[1];
        bestAllow = i;
      } else if (refActions[i] === 1 && r[1] > denyLen) {
        denyLen = r[1];
        bestDeny = i;
      }
    }
    return bestAllow + bestDeny;
  });

  // Agreement: on lists the references hold whole, ipgate's answer (longest allow, longest deny,
  // and "listed at all") must equal the linear ipaddr.js scan and net.BlockList for every checked
  // address. A disagreement is a bug; the row reports it and the run exits non-zero.
  let checked = 0;
  let mismatches = 0;
  // The decision index against the trie's own answer, on every address and at every size (the
  // references below check the trie itself, on the lists they hold whole).
  if (d4 !== null || d6 !== null) {
    for (let i = 0; i < addrs.length; i++) {
      const f = parseClientIp(addrs[i], out);
      if (f === 0) continue;
      const leaf = trie.lookup(f, out);
      const byIndex = f === 4 ? d4?.rejects(out[0]) : d6?.rejects(out);
      if (byIndex === undefined) continue;
      if (byIndex !== rejects(0, allow[leaf], deny[leaf])) mismatches++;
      checked++;
    }
  }
  if (refPrefixes.length === size) {
    const n = Math.min(addrs.length, Number(process.env.CHECK_LOOKUPS ?? 20_000));
    for (let i = 0; i < n; i++) {
      const a = addrs[i];
      const f = parseClientIp(a, out);
      const leaf = f === 0 ? 0 : trie.lookup(f, out);
      const ip = ipaddr.process(a);
      let bestAllow = -1;
      let bestDeny = -1;
      let allowLen = -1;
      let denyLen = -1;
      for (let k = 0; k < ranges.length; k++) {
        const r = ranges[k];
        if (r[0].kind() !== ip.kind() || !ip.match(r)) continue;
        if (refActions[k] === 0 && r[1] > allowLen) [allowLen, bestAllow] = [r[1], k];
        else if (refActions[k] === 1 && r[1] > denyLen) [denyLen, bestDeny] = [r[1], k];
      }
      const listed = bl.check(a, type);
      if (allow[leaf] !== bestAllow || deny[leaf] !== bestDeny || listed !== (bestAllow >= 0 || bestDeny >= 0)) mismatches++;
      checked++;
    }
  }

  // texts must stay reachable until here, or the retained-memory figure would count their
  // collection (V8 drops dead locals) as negative growth.
  if (texts.length !== size) throw new Error('unreachable');
  return {
    family,
    size,
    cpus: os.cpus().length,
    parseAddMs,
    buildMs,
    compileMs,
    peakBytes,
    retainedBytes,
    compilePeakRss,
    trieBytes: trie.stats.bytes,
    trieObjects: trie.stats.nodes,
    parseRate,
    rate,
    decisionRate,
    floorRate,
    floorBranchRate,
    floorBytes: floorWords * 4,
    floorSink,
    flips: (d4 ?? d6)?.wire.flips ?? null,
    hotRate,
    refCapped: refPrefixes.length < size,
    checked,
    mismatches,
    refPrefixes: refPrefixes.length,
    blockList,
    ipaddr: ipaddrRes,
  };
}
