/**
 * The decoder and the decoded-instruction cache.
 *
 * An instruction is decoded once into a slot of parallel typed arrays (handler id, length,
 * ModRM, prefixes, effective-address parts, immediates) and found again through a per
 * physical frame block that maps the byte offset to the slot. A write to a frame drops its
 * block (cpu.codeWritten), so self-modifying code is seen. Nothing here allocates per
 * instruction.
 *
 * Handler ids: id = (o16 << 12) | (map0F << 11) | (opcode << 3) | sub, where sub is the
 * ModRM reg field for group opcodes (and x87 escapes) and 0 otherwise.
 */
import type { Cpu } from "./cpu.js";
import { DS, EBP, ESP, GP, SS } from "./regs.js";
import { codeBlocks } from "./wasm/arena.js";

// Prefix bits in DecodeCache.pfx.
export const P_REP = 1; // F3
export const P_REPNE = 2; // F2
export const P_LOCK = 4; // F0
export const P_A16 = 8; // 67
export const P_O16 = 16; // 66
export const P_SEG = 32; // a segment override was given

// Effective-address kinds in DecodeCache.eam.
export const EA_DISP = 0;
export const EA_BASE = 1;
export const EA_SIB = 2;
export const EA_SLOW = 3;

/** Handler id for an opcode in the one-byte (map 0) or 0F (map 1) table. */
export function opId(map: number, opcode: number, sub: number, o16: boolean): number {
  return ((o16 ? 1 : 0) << 12) | (map << 11) | (opcode << 3) | sub;
}
/** Number of handler ids. */
export const OP_COUNT = 1 << 13;
/** The id that raises #UD: one-byte opcode 0F is the escape and never a handler of its own. */
export const OP_UD = 0x0f << 3;

// Immediate kinds.
const I_NONE = 0;
const I_B = 1; // imm8
const I_V = 2; // imm16/32 by operand size
const I_W = 3; // imm16
const I_WB = 4; // imm16 then imm8 (enter)
const I_FAR = 5; // offset16/32 then selector16
const I_MOFFS = 6; // offset by address size, no ModRM
const I_GRP3 = 7; // F6/F7: imm only when reg is 0 or 1 (test)
const M = 8; // has ModRM
const G = 16; // group: sub = ModRM reg

/**
 * Per-opcode decoding attributes for both maps: bits 0-2 immediate kind, M, G.
 * Built from compact row strings: one char per opcode:
 *   . none   m modrm   b imm8   v immv   w imm16   e enter   f far   o moffs
 *   B modrm+imm8   V modrm+immv   g group modrm   h group modrm+imm8   i group modrm+immv
 *   t group F6/F7   x x87 escape (group modrm)
 */
const ROWS0 = [
  "mmmmbv..mmmmbv..", // 00
  "mmmmbv..mmmmbv..", // 10
  "mmmmbv..mmmmbv..", // 20
  "mmmmbv..mmmmbv..", // 30
  "................", // 40
  "................", // 50
  "..mm....vVbB....", // 60
  "bbbbbbbbbbbbbbbb", // 70
  "hihhmmmmmmmmmmmm", // 80
  "..........f.....", // 90
  "oooo....bv......", // A0
  "bbbbbbbbvvvvvvvv", // B0
  "hhw.mmBVe.w..b..", // C0
  "ggggbb..xxxxxxxx", // D0
  "bbbbbbbbvvfb....", // E0
  "......tt......gg", // F0
];
const ROWS1 = [
  "gggm......m..m..", // 0F 00
  "........mmmmmmmm", // 0F 10
  "mmmm............", // 0F 20
  "................", // 0F 30
  "mmmmmmmmmmmmmmmm", // 0F 40
  "................", // 0F 50
  "................", // 0F 60
  "................", // 0F 70
  "vvvvvvvvvvvvvvvv", // 0F 80
  "mmmmmmmmmmmmmmmm", // 0F 90
  "...mBm.....mBmmm", // 0F A0
  "mmmmmmmm.mhmmmmm", // 0F B0
  "mm.....g........", // 0F C0
  "................", // 0F D0
  "................", // 0F E0
  "................", // 0F F0
];
const CODE: Record<string, number> = {
  ".": I_NONE,
  m: M,
  b: I_B,
  v: I_V,
  w: I_W,
  e: I_WB,
  f: I_FAR,
  o: I_MOFFS,
  B: M | I_B,
  V: M | I_V,
  g: M | G,
  h: M | G | I_B,
  i: M | G | I_V,
  t: M | G | I_GRP3,
  x: M | G,
};
const ATTR = new Uint8Array(512);
[ROWS0, ROWS1].forEach((rows, map) => {
  rows.forEach((row, hi) => {
    for (let lo = 0; lo < 16; lo++) ATTR[(map << 8) | (hi << 4) | lo] = CODE[row[lo]];
  });
});

/**
 * Opcodes that accept a lock prefix (with a memory destination), as a mask of the ModRM reg
 * values allowed: add..xor, inc/dec, not/neg, xchg, bts/btr/btc, xadd, cmpxchg, cmpxchg8b.
 * Index: map << 8 | opcode.
 */
const LOCKABLE = new Uint8Array(512);
for (const base of [0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30]) {
  LOCKABLE[base] = LOCKABLE[base + 1] = 0xff;
}
for (const op of [0x80, 0x81, 0x82, 0x83]) LOCKABLE[op] = 0x7f; // not cmp
LOCKABLE[0x86] = LOCKABLE[0x87] = 0xff;
LOCKABLE[0xf6] = LOCKABLE[0xf7] = 0x0c; // not, neg
LOCKABLE[0xfe] = LOCKABLE[0xff] = 0x03; // inc, dec
for (const op of [0xab, 0xb3, 0xbb, 0xb0, 0xb1, 0xc0, 0xc1]) LOCKABLE[0x100 | op] = 0xff;
LOCKABLE[0x1ba] = 0xe0; // bts, btr, btc
LOCKABLE[0x1c7] = 0x02; // cmpxchg8b

/** Whether opc (map << 8 | opcode, as decoded ids hold it) is a jcc: 70-7F or 0F 80-8F. */
export function isJcc(opc: number): boolean {
  return (opc & 0x1f0) === 0x70 || (opc & 0x1f0) === 0x180;
}

/** Whether an opcode of map 0 (one-byte) or 1 (0F xx) has a ModRM byte. */
export function hasModrm(map: number, opcode: number): boolean {
  return (ATTR[(map << 8) | opcode] & M) !== 0;
}

/**
 * A compiled block (blocks.ts): runs a straight line of decoded instructions starting at
 * cpu.eip and retires them, leaving the CPU as the run loop would have.
 */
export type BlockFn = (cpu: Cpu) => void;

/**
 * A region (blocks.ts compileRegion): the compiled blocks of a code page linked, entered at
 * any of them; pb is the EIP of the page's first byte.
 */
export type RegionFn = (cpu: Cpu, pb: number) => void;

/**
 * A JS region's tables (blocks.ts linkRegion): B[X[page offset]] is the block starting there
 * (index 0: none), L[i] its length. A region that leaves its page goes on in the next page's
 * region through these (Cpu.hopFetch), without returning to the run loop.
 */
export interface RegionTab {
  readonly X: Uint16Array;
  readonly L: Uint8Array;
  readonly B: BlockFn[];
}

/** The slot bits of a DecodeCache.slotOf entry (the length is at bit 18, the hot case at 22). */
export const SLOT_MASK = (1 << 18) - 1;

/** The decoded-instruction cache: slots plus a block per physical frame. */
export class DecodeCache {
  // One entry per decoded instruction (slot 0 is never used).
  readonly op: Uint16Array;
  readonly len: Uint8Array;
  readonly modrm: Uint8Array;
  readonly pfx: Uint8Array;
  /** Segment of the memory operand (or of a string source): the default or the override. */
  readonly seg: Uint8Array;
  /** Base and index registers of the effective address (-1: none), scale as a shift. */
  readonly base: Int8Array;
  readonly index: Int8Array;
  readonly scale: Uint8Array;
  readonly disp: Int32Array;
  /**
   * The effective-address form, so cpu.ea needs one load besides disp: bits 0-1 the kind
   * (EA_DISP disp only, EA_BASE base+disp, EA_SIB base+index*scale+disp, EA_SLOW anything else:
   * 16-bit forms, index without base), bits 2-4 base, bits 5-7 index, bits 8-9 scale,
   * bits 10-12 the segment (as in seg).
   */
  readonly eam: Uint16Array;
  /** First immediate (sign-extended imm8 for most opcodes; see decodeInto), second immediate. */
  readonly imm: Int32Array;
  readonly imm2: Int32Array;
  /** The compiled block starting at each slot's instruction, or null (see blocks.ts). */
  readonly blockFn: (BlockFn | null)[];
  /** Instructions in blockFn[slot]. */
  readonly blockLen: Uint8Array;
  /** The region holding blockFn[slot], or null (the block runs standalone). */
  readonly regionFn: (RegionFn | null)[];
  /** The tables of regionFn[slot] when it is a JS region, else null. */
  readonly regionTab: (RegionTab | null)[];
  /** Per frame block: standalone runs of its compiled blocks since its region was built. */
  readonly regionDue: Uint16Array;
  /** Times each slot ran in the interpreter: a block is compiled when it reaches a threshold. */
  readonly hits: Uint8Array;
  private nextSlot = 1;
  private readonly slotCount: number;

  /** Block offset (block number << 12) of each physical frame, or -1. */
  private readonly frameBlock: Int32Array;
  /**
   * Per block: the instruction starting at each byte offset, or 0. An entry packs what the
   * run loop needs with a single load: the slot (bits 0-17), the length (bits 18-21) and the
   * CPU's hot-switch case (bits 22-28); see SLOT_MASK.
   */
  readonly slotOf: Int32Array;
  /** The offset of a block that is never given to a frame: every lookup in it misses. */
  readonly emptyBlock: number;
  private readonly blockFrame: Int32Array;
  /** Per block: 1 when a compiled block starts in it (invalidation must drop it). */
  private readonly compiled: Uint8Array;
  private readonly freeBlocks: Int32Array;
  private freeCount: number;

  constructor(frames: number, slots = SLOT_MASK + 1) {
    if (slots > SLOT_MASK + 1) throw new Error("DecodeCache: slot numbers must fit SLOT_MASK");
    this.slotCount = slots;
    this.op = new Uint16Array(slots);
    this.len = new Uint8Array(slots);
    this.modrm = new Uint8Array(slots);
    this.pfx = new Uint8Array(slots);
    this.seg = new Uint8Array(slots);
    this.base = new Int8Array(slots);
    this.index = new Int8Array(slots);
    this.scale = new Uint8Array(slots);
    this.disp = new Int32Array(slots);
    this.eam = new Uint16Array(slots);
    this.imm = new Int32Array(slots);
    this.imm2 = new Int32Array(slots);
    this.blockFn = new Array<BlockFn | null>(slots).fill(null);
    this.blockLen = new Uint8Array(slots);
    this.regionFn = new Array<RegionFn | null>(slots).fill(null);
    this.regionTab = new Array<RegionTab | null>(slots).fill(null);
    this.hits = new Uint8Array(slots);
    const blocks = codeBlocks(frames);
    this.frameBlock = new Int32Array(frames).fill(-1);
    // One block more than frames can use: EMPTY, always all zeros (see emptyBlock).
    this.slotOf = new Int32Array((blocks + 1) << 12);
    this.emptyBlock = blocks << 12;
    this.blockFrame = new Int32Array(blocks).fill(-1);
    this.compiled = new Uint8Array(blocks);
    this.regionDue = new Uint16Array(blocks);
    this.freeBlocks = new Int32Array(blocks);
    for (let i = 0; i < blocks; i++) this.freeBlocks[i] = blocks - 1 - i;
    this.freeCount = blocks;
  }

  blockOf(frame: number): number {
    return this.frameBlock[frame];
  }

  /** The frame whose decoded instructions are in the block at offset off, or -1. */
  frameOf(off: number): number {
    return this.blockFrame[off >>> 12];
  }

  /**
   * The wasm back end's frame-to-map array (arena.ts, backend.ts link), or null: a frame's
   * entry is cleared with its decoded instructions, so a chain crossing pages inside wasm
   * never finds the map of code that is gone.
   */
  chainPage: Uint16Array | null = null;

  allocBlock(frame: number): number {
    if (this.freeCount === 0) this.flush();
    const b = this.freeBlocks[--this.freeCount];
    this.blockFrame[b] = frame;
    this.frameBlock[frame] = b << 12;
    return b << 12;
  }

  invalidateFrame(frame: number): void {
    const off = this.frameBlock[frame];
    if (off < 0) return;
    if (this.chainPage !== null) this.chainPage[frame] = 0;
    if (this.compiled[off >>> 12] !== 0) {
      this.compiled[off >>> 12] = 0;
      for (let i = off; i < off + 4096; i++) {
        const e = this.slotOf[i];
        if (e !== 0) this.setBlock(e & SLOT_MASK, null, 0);
      }
    }
    this.slotOf.fill(0, off, off + 4096);
    this.regionDue[off >>> 12] = 0;
    this.frameBlock[frame] = -1;
    this.blockFrame[off >>> 12] = -1;
    this.freeBlocks[this.freeCount++] = off >>> 12;
  }

  /** Whole-cache flushes so far (slots or frame blocks ran out), for benches. */
  flushes = 0;

  /** Drops every decoded instruction. */
  flush(): void {
    this.flushes++;
    for (let b = 0; b < this.blockFrame.length; b++) {
      const f = this.blockFrame[b];
      if (f >= 0) this.invalidateFrame(f);
    }
    this.nextSlot = 1;
    this.hits.fill(0);
  }

  /** Records the compiled block starting at slot (of the frame block at blockOff). */
  setBlock(slot: number, fn: BlockFn | null, len: number, blockOff = -1): void {
    this.blockFn[slot] = fn;
    this.regionFn[slot] = null;
    this.regionTab[slot] = null;
    this.blockLen[slot] = len;
    this.hits[slot] = 0;
    if (blockOff >= 0) this.compiled[blockOff >>> 12] = 1;
  }

  allocSlot(): number {
    if (this.nextSlot >= this.slotCount) this.flush();
    return this.nextSlot++;
  }

  /**
   * Gives back the last slot allocated, which nothing refers to (an instruction crossing a
   * page end, decoded afresh at each run): the next decode reuses it.
   */
  releaseSlot(slot: number): void {
    if (slot !== this.nextSlot - 1) return;
    this.hits[slot] = 0;
    this.nextSlot = slot;
  }
}

/**
 * Decodes the instruction at linear address lin (= CS.base + cpu.eip) into a fresh slot and
 * returns it (or into the slot `into`). Raises #GP for an instruction longer than 15 bytes, #PF / #GP from the fetch.
 * Invalid encodings decode to OP_UD (raised when executed, so a fault on a path never taken
 * costs nothing).
 */
export function decodeInto(cpu: Cpu, lin: number, into = 0): number {
  const dc = cpu.dc;
  const eip = cpu.eip;
  let n = 0;
  const next = (): number => {
    if (n >= 15) cpu.fault(GP, 0);
    const b = cpu.fetchByte((lin + n) | 0, (eip + n) | 0);
    n++;
    return b;
  };
  let pfx = 0;
  let seg = -1;
  let b = next();
  for (;;) {
    if (b === 0x66) pfx |= P_O16;
    else if (b === 0x67) pfx |= P_A16;
    else if (b === 0xf0) pfx |= P_LOCK;
    else if (b === 0xf2) pfx = (pfx & ~P_REP) | P_REPNE;
    else if (b === 0xf3) pfx = (pfx & ~P_REPNE) | P_REP;
    else if (b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e) seg = (b >> 3) & 3;
    else if (b === 0x64 || b === 0x65) seg = b - 0x60;
    else break;
    b = next();
  }
  let map = 0;
  if (b === 0x0f) {
    map = 1;
    b = next();
  }
  const attr = ATTR[(map << 8) | b];
  const o16 = (pfx & P_O16) !== 0;
  const a16 = (pfx & P_A16) !== 0;
  let modrm = 0;
  let base = -1;
  let index = -1;
  let scale = 0;
  let disp = 0;
  let defSeg = DS;
  if (attr & M) {
    modrm = next();
    // mov to/from CR/DR (0F 20-23) always names a register, whatever mod says.
    const mod = map === 1 && (b & 0xfc) === 0x20 ? 3 : modrm >> 6;
    const rm = modrm & 7;
    if (mod !== 3) {
      if (!a16) {
        if (rm === 4) {
          const sib = next();
          scale = sib >> 6;
          index = (sib >> 3) & 7;
          if (index === ESP) index = -1;
          base = sib & 7;
          if (base === EBP && mod === 0) {
            base = -1;
            disp = next() | (next() << 8) | (next() << 16) | (next() << 24);
          }
        } else if (rm === 5 && mod === 0) {
          disp = next() | (next() << 8) | (next() << 16) | (next() << 24);
        } else {
          base = rm;
        }
        if (mod === 1) disp = (next() << 24) >> 24;
        else if (mod === 2) disp = next() | (next() << 8) | (next() << 16) | (next() << 24);
        if (base === ESP || base === EBP) defSeg = SS;
      } else {
        // 16-bit forms: BX+SI, BX+DI, BP+SI, BP+DI, SI, DI, BP (disp16 when mod 0), BX.
        if (rm === 6 && mod === 0) {
          disp = next() | (next() << 8);
        } else {
          base = rm < 4 ? (rm < 2 ? 3 : 5) : rm === 4 ? 6 : rm === 5 ? 7 : rm === 6 ? 5 : 3;
          index = rm < 4 ? (rm & 1 ? 7 : 6) : -1;
          if (base === EBP) defSeg = SS;
        }
        if (mod === 1) disp = (next() << 24) >> 24;
        else if (mod === 2) disp = ((next() | (next() << 8)) << 16) >> 16;
      }
    }
  }
  let imm = 0;
  let imm2 = 0;
  switch (attr & 7) {
    case I_B:
      imm = (next() << 24) >> 24;
      break;
    case I_V:
      imm = o16
        ? ((next() | (next() << 8)) << 16) >> 16
        : next() | (next() << 8) | (next() << 16) | (next() << 24);
      break;
    case I_W:
      imm = next() | (next() << 8);
      break;
    case I_WB:
      imm = next() | (next() << 8);
      imm2 = next();
      break;
    case I_FAR:
      imm = o16 ? next() | (next() << 8) : next() | (next() << 8) | (next() << 16) | (next() << 24);
      imm2 = next() | (next() << 8);
      break;
    case I_MOFFS:
      disp = a16 ? next() | (next() << 8) : next() | (next() << 8) | (next() << 16) | (next() << 24);
      break;
    case I_GRP3:
      if (((modrm >> 3) & 7) < 2) {
        if (b & 1) {
          imm = o16
            ? ((next() | (next() << 8)) << 16) >> 16
            : next() | (next() << 8) | (next() << 16) | (next() << 24);
        } else {
          imm = (next() << 24) >> 24;
        }
      }
      break;
  }
  let op = opId(map, b, attr & G ? (modrm >> 3) & 7 : 0, o16);
  if (pfx & P_LOCK && ((LOCKABLE[(map << 8) | b] >> ((modrm >> 3) & 7)) & 1) === 0) op = OP_UD;
  if (pfx & P_LOCK && (modrm & 0xc0) === 0xc0) op = OP_UD;
  // into: a slot of the Cpu's page-crossing instructions, decoded again (cpu.ts fetchSlot).
  const s = into > 0 ? into : dc.allocSlot();
  dc.op[s] = op;
  dc.len[s] = n;
  dc.modrm[s] = modrm;
  dc.pfx[s] = pfx | (seg >= 0 ? P_SEG : 0);
  const segment = seg >= 0 ? seg : defSeg;
  dc.seg[s] = segment;
  dc.base[s] = base;
  dc.index[s] = index;
  dc.scale[s] = scale;
  dc.disp[s] = disp;
  const kind = a16 ? EA_SLOW : base < 0 ? (index < 0 ? EA_DISP : EA_SLOW) : index < 0 ? EA_BASE : EA_SIB;
  dc.eam[s] = kind | ((base & 7) << 2) | ((index & 7) << 5) | (scale << 8) | (segment << 10);
  dc.imm[s] = imm;
  dc.imm2[s] = imm2;
  return s;
}
