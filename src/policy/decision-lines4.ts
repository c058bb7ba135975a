/**
 * The IPv4 decision index of a very large policy (2^20 flips or more), laid out so that a lookup
 * reads one 64-byte cache line.
 *
 * WHY. The blocks layout (decision-index.ts) reads the block index, then the block's keys: two
 * dependent reads, and a block of ~30 keys at an arbitrary offset spans two lines, so often three.
 * Below 2^20 flips that data mostly stays in cache. Above, it does not (the 1M-entry hosts list
 * has 1.94M flips: 4 MB of keys), every one of those reads is a miss, and they cannot overlap
 * because each address depends on the one before. Here block h's flips sit at a fixed place, line
 * h, so the address of the one read is computed from the client address alone:
 *
 *  - `lines`: 2^B lines of 32 Uint16 slots, in page-aligned memory so that a line is a cache line.
 *    Slot 0 is the header: bit 0 the decision's parity at the block's start (`first` XOR the
 *    parity of the flips below the block), bit 1 set when the block has more than 31 flips, bit 2
 *    the parity of the block's own flip count. Slots 1..31 hold the block's first (up to) 31
 *    flips' low 32 - B bits, ascending, then 0xFFFF;
 *  - `ovIdx` / `ovKeys`: a block's flips after its 31st, read only for an address above that
 *    31st flip (with ~30 flips per block on average, a few percent of lookups).
 *
 * The search counts the slots <= the address's low bits in five branch-free steps (16, 8, 4, 2, 1)
 * inside the line. The padding 0xFFFF is above every low part except 0xFFFF itself, which exists
 * only at B = 16: that one address per block is at or above all of the block's flips, so the
 * header answers it. Measured on the 2-core EPYC VM, 1M hosts list, parse included, in 38 paired
 * rounds each of two runs: 1.11x and 1.16x the blocks layout's rate (bench/RESULTS.md, session 11).
 * It costs 64 bytes per block however few flips the block has (4 MB at B = 16), hence only for
 * lists whose flips would fill the lines about half or more.
 */
import { bisectAbove } from './decision-flips.js';
import { pace } from './pace.js';

/** Flips a block's line holds; the rest go to the overflow store. */
export const LINE_SLOTS = 31;
const PAD = 0xffff;

/** A line-layout decision index as structured-clonable data. */
export interface DecisionLinesWire {
  readonly layout: 'lines';
  readonly bits: number;
  /** 32 slots per block (see the file comment). */
  readonly lines: Uint16Array;
  /** Block h's overflow flips are ovKeys[ovIdx[h] .. ovIdx[h + 1]). */
  readonly ovIdx: Int32Array;
  readonly ovKeys: Uint16Array;
  /** The number of flips. */
  readonly flips: number;
  /** 1 when the policy rejects address 0. */
  readonly first: number;
}

export class DecisionLines4 {
  private readonly shift: number;
  private readonly lowMask: number;
  private readonly lines: Uint16Array;
  private readonly ovIdx: Int32Array;
  private readonly ovKeys: Uint16Array;

  constructor(readonly wire: DecisionLinesWire) {
    this.shift = 32 - wire.bits;
    this.lowMask = (1 << this.shift) - 1;
    // A copy that crossed a process boundary (snapshotToPortableWire) sits wherever malloc put it;
    // put it back on line boundaries once. Shared ones come from build() and already are.
    this.lines = wire.lines.buffer instanceof SharedArrayBuffer ? wire.lines : alignedCopy(wire.lines);
    this.ovIdx = wire.ovIdx;
    this.ovKeys = wire.ovKeys;
  }

  /** The bytes a lookup reads from (the overflow store aside). */
  get bytes(): number {
    return this.lines.byteLength;
  }

  /** HOT PATH. Does the policy reject the IPv4 address `addr` (a uint32; an int32 works too)? */
  rejects(addr: number): boolean {
    const a = addr >>> 0;
    const o = (a >>> this.shift) << 5;
    const lo = a & this.lowMask;
    const L = this.lines;
    const hd = L[o]!;
    if (lo === PAD) return ((hd ^ (hd >>> 2)) & 1) === 1;
    // p - o = the slots in 1..31 holding a flip <= lo: a slot <= lo makes (slot - lo - 1) negative,
    // and its sign, spread to a mask, picks the step. Padding never counts (see above).
    let p = o;
    p += 16 & ((L[p + 16]! - lo - 1) >> 31);
    p += 8 & ((L[p + 8]! - lo - 1) >> 31);
    p += 4 & ((L[p + 4]! - lo - 1) >> 31);
    p += 2 & ((L[p + 2]! - lo - 1) >> 31);
    p += 1 & ((L[p + 1]! - lo - 1) >> 31);
    let c = p - o;
    if (c === LINE_SLOTS && (hd & 2) !== 0) c += this.overflow(a >>> this.shift, lo);
    return ((c ^ hd) & 1) === 1;
  }

  /** Block h's overflow flips <= lo. Cold. */
  private overflow(h: number, lo: number): number {
    const s = this.ovIdx[h]!;
    return bisectAbove(this.ovKeys, s, this.ovIdx[h + 1]!, lo) - s;
  }
}

/**
 * The line index of `count` flips (ascending addresses) with a block index of `bits` bits (16 or
 * more, so that a flip's low part fits a Uint16).
 */
export function buildDecisionLines4(flips: Uint32Array, count: number, first: number, bits: number): DecisionLines4 {
  if (bits < 16) throw new RangeError(`buildDecisionLines4: bits ${bits} < 16`);
  const blocks = 1 << bits;
  const shift = 32 - bits;
  const lowMask = (1 << shift) - 1;
  const lines = new Uint16Array(alignedShared(64 * blocks), 0, 32 * blocks).fill(PAD);
  const ovIdx = new Int32Array(new SharedArrayBuffer(4 * (blocks + 1)));
  // Flips per block (in ovIdx, shifted by one), then the headers and the overflow offsets.
  for (let j = 0; j < count; j++) {
    if ((j & 15) === 0) pace();
    const slot = (flips[j]! >>> shift) + 1;
    ovIdx[slot] = ovIdx[slot]! + 1;
  }
  let parity = first;
  let over = 0;
  for (let h = 0; h < blocks; h++) {
    if ((h & 255) === 0) pace();
    const n = ovIdx[h + 1]!;
    lines[h << 5] = parity | (n > LINE_SLOTS ? 2 : 0) | ((n & 1) << 2);
    parity ^= n & 1;
    ovIdx[h] = over;
    if (n > LINE_SLOTS) over += n - LINE_SLOTS;
  }
  ovIdx[blocks] = over;
  const ovKeys = new Uint16Array(new SharedArrayBuffer(2 * Math.max(over, 1)));
  let h = -1;
  let k = 0;
  for (let j = 0; j < count; j++) {
    if ((j & 15) === 0) pace();
    const f = flips[j]!;
    if (f >>> shift !== h) {
      h = f >>> shift;
      k = 0;
    }
    if (k < LINE_SLOTS) lines[(h << 5) + 1 + k] = f & lowMask;
    else ovKeys[ovIdx[h]! + k - LINE_SLOTS] = f & lowMask;
    k++;
  }
  return new DecisionLines4({ layout: 'lines', bits, lines, ovIdx, ovKeys, flips: count, first });
}

/**
 * `bytes` of shared memory starting on a page boundary. A WebAssembly memory is page-aligned; a
 * plain SharedArrayBuffer comes from malloc, typically 16 bytes past a cache line, which would
 * split every line in two. Where WebAssembly is unavailable (node --jitless) the answers are the
 * same, only slower.
 */
function alignedShared(bytes: number): SharedArrayBuffer {
  const pages = Math.ceil(bytes / 65536);
  try {
    return new (globalThis as unknown as WasmGlobal).WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
  } catch {
    return new SharedArrayBuffer(bytes);
  }
}

/** The part of the WebAssembly global used above (the project's type libraries do not declare it). */
interface WasmGlobal {
  readonly WebAssembly: {
    readonly Memory: new (d: { initial: number; maximum: number; shared: true }) => { readonly buffer: SharedArrayBuffer };
  };
}

function alignedCopy(a: Uint16Array): Uint16Array {
  const out = new Uint16Array(alignedShared(a.byteLength), 0, a.length);
  out.set(a);
  return out;
}
