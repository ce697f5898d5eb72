/**
 * Guest RAM and the CPU state a WebAssembly block touches, in one WebAssembly.Memory: RAM at
 * address 0 (a guest-physical address is a wasm address) and, after it, one state area of the
 * arrays the JS CPU also uses (registers, the segment checks, codePage, the TLB) and a few
 * words the blocks and their JS wrapper exchange (EIP, the lazy-flag record). The JS CPU
 * sees the same bytes through typed arrays, so nothing is copied between the two back ends.
 *
 * A memory has one state area, claimed by the first Cpu made on it (a machine has one); a
 * Cpu on a plain buffer, on a machine whose RAM and state area do not fit 4 GiB, or second on
 * a memory, keeps its state in its own arrays and runs the JS back end only.
 */

const PAGE = 65536;
/** A wasm32 memory holds at most 2^32 bytes. */
const MAX_PAGES = 65536;

// Byte offsets within the state area.
export const ST_REGS = 0; // Int32 x 8
/** The lazy-flag record and EIP exchanged with a block: Int32 words at ST_IO + 4 * IO_*. */
export const ST_IO = 32;
/**
 * The segments that are flat, kept by Cpu.syncSegChk: bit seg when the segment's base is 0
 * and every offset may be read, bit 8 + seg when every offset may be written too; bits 16 +
 * seg and 24 + seg when its base is 0 and offsets from 0 up to a bound (at least 3) may be
 * read, written (zero-based: XenLinux's, which end below Xen). A wasm block compiled while a
 * segment was flat leaves its accesses' segment check out (gen.ts check), or all of it but
 * the upper bound when it was zero-based: it does not start when one is so no more (and sets
 * IO_BAIL, for its wrapper or chain to run its JS function instead), and leaves after a
 * handler that made one so.
 * Anything that changes a segment's cache keeps this word (only loadSegmentCache does).
 */
export const IO_FLAT = 22;
export const IO_BAIL = 23;
/** The io words' view: IO_WORDS words, then IO_FLAT and IO_BAIL (which must come after them). */
const IO_VIEW = 24;
export const IO_EIP = 0;
export const IO_FLAGS = 1;
export const IO_LZOP = 2;
export const IO_LZA = 3;
export const IO_LZB = 4;
export const IO_LZRES = 5;
export const IO_LZSIZE = 6;
export const IO_RDMASK = 7;
export const IO_WRMASK = 8;
/** SS is a 32-bit stack (its B bit): pushes and pops inline, else through JS. */
export const IO_SS32 = 9;
/**
 * Instructions retired in this call before the running block's pass: a chain's blocks before
 * it, and the passes it finished (a looping block). Written by a block just before each import
 * call (the only way to JS from inside a block: a handler, a slow access, a fault), for the
 * handler's retired count and a fault's unwinding; stale at any other time.
 */
export const IO_DONE = 10;
/** ESP before the current instruction, when it moves ESP itself (blocks.ts F_STACK). */
export const IO_SAVEDESP = 11;
/** (Words 12 and 13 are free.) In a chain: the running block's id, and the blocks run. */
export const IO_BLK = 14;
export const IO_RBLOCKS = 15;
/**
 * Set by the imports when the JS they ran moved the fetch window (a code write, a change of
 * CS, CPL or paging: Cpu.fetchDrops) or the run's end (Cpu.runEnd): a chain of blocks stops.
 */
export const IO_STOP = 16;
/**
 * Set by a memory import whose access took a #PF (recorded by Cpu.reach, not thrown): the
 * block returns -1 to its wrapper, or to the chain (IO_STOP set too), which unwinds.
 */
export const IO_FAULT = 17;
/** Page crossings a chain took inside wasm (Cpu.regionHops counts them). */
export const IO_HOPS = 18;
/**
 * The CPL and GDTR (Cpu.setCpl, Cpu.gdtrBase and gdtrLimit keep them), for a wasm block's
 * segment load and iret, which check the descriptor as segments.ts does (gen.ts segFast).
 */
export const IO_CPL = 19;
export const IO_GDTB = 20;
export const IO_GDTL = 21;
export const IO_WORDS = 22;
export const ST_SEGCHK = 128; // Int32 x 256 (Cpu.segChk)
/** In each segment's 32 words of segChk: the unbiased read and write bounds (words free before). */
export const SEG_RDU = 26;
export const SEG_WRU = 10;
/** ...and the segment's limit and attributes (Cpu.segLimit, segAttr) in two more free words. */
export const SEG_LIMIT = 6;
export const SEG_ATTR = 7;
export const ST_CODEPAGE = 4096; // Uint8 x frames (Cpu.codePage)
export const TLB_BYTES = 4 << 20; // Int32 x 2^20 (Cpu.tlb)
/**
 * Chains of wasm blocks (backend.ts): block ids are 16 bits; per id its length (Uint8, 0: not
 * chainable) and table entry (Int32); per frame block of the decode cache a map of page
 * offsets to the ids of its region's wasm blocks (Uint16 x 4096); per physical frame the
 * frame block whose map is the frame's, plus one (Uint16, 0: none; DecodeCache.chainPage,
 * cleared when the frame's decoded instructions are dropped), for a chain crossing pages.
 */
export const CHAIN_IDS = 1 << 16;
const CHAIN_IDS_BYTES = CHAIN_IDS * 5;
const CHAIN_MAP_BYTES = 0x1000 * 2;

/**
 * Frame blocks of the decode cache for `frames` frames (DecodeCache takes this many; the
 * chain's page maps are one per block).
 */
export function codeBlocks(frames: number): number {
  return Math.max(16, Math.min(frames, 1024));
}

/** The state area's layout for a RAM of `ram` bytes: its TLB's offset, the chain's, its size. */
function layout(ram: number): { tlb: number; chain: number; pages: number; size: number } {
  const tlb = (ST_CODEPAGE + (ram >>> 12) + 0xfff) & ~0xfff;
  const chain = tlb + TLB_BYTES;
  const pages = chain + CHAIN_IDS_BYTES + codeBlocks(ram >>> 12) * CHAIN_MAP_BYTES;
  return { tlb, chain, pages, size: pages + (ram >>> 12) * 2 };
}

// The io words end before IO_FLAT, and the view before segChk.
if (IO_WORDS > IO_FLAT || ST_IO + 4 * IO_VIEW > ST_SEGCHK) throw new Error("arena.ts: the io words overlap");

export interface Arena {
  readonly memory: WebAssembly.Memory;
  /** Byte address of the state area (after RAM). */
  readonly state: number;
  readonly ramBytes: number;
  claimed: boolean;
}

const arenas = new WeakMap<ArrayBufferLike, Arena>();

/**
 * The wasm pages a memory holding a RAM of `bytes` bytes and its state area needs, or 0 when
 * they do not fit a wasm32 memory (4 GiB).
 */
export function arenaPages(bytes: number): number {
  const pages = Math.ceil((bytes + layout(bytes).size) / PAGE);
  return pages <= MAX_PAGES ? pages : 0;
}

/**
 * The RAM of `bytes` bytes at address 0 of memory (arenaPages(bytes) pages), recorded with
 * the state area after it, for the first Cpu made on it (src/machine/ram.ts allocates).
 */
export function arenaRam(memory: WebAssembly.Memory, bytes: number): Uint8Array {
  const pages = memory.buffer.byteLength / PAGE;
  arenas.set(memory.buffer, {
    memory,
    state: pages * PAGE - layout(bytes).size,
    ramBytes: bytes,
    claimed: false,
  });
  return new Uint8Array(memory.buffer, 0, bytes);
}

/** The CPU state arrays, in a claimed arena when there is one. */
export interface CpuState {
  readonly arena: Arena | null;
  readonly regs: Int32Array;
  readonly io: Int32Array;
  readonly segChk: Int32Array;
  readonly codePage: Uint8Array;
  readonly tlb: Int32Array;
}

/** State arrays for a Cpu on RAM `ram`: views on its arena's state area when it is free. */
export function cpuState(ram: Uint8Array): CpuState {
  const frames = ram.byteLength >>> 12;
  const a = arenas.get(ram.buffer);
  if (a === undefined || a.claimed || a.ramBytes !== ram.byteLength || ram.byteOffset !== 0) {
    return {
      arena: null,
      regs: new Int32Array(8),
      io: new Int32Array(IO_VIEW),
      segChk: new Int32Array(256),
      codePage: new Uint8Array(frames),
      tlb: new Int32Array(1 << 20),
    };
  }
  a.claimed = true;
  const b = a.memory.buffer;
  const s = a.state;
  return {
    arena: a,
    regs: new Int32Array(b, s + ST_REGS, 8),
    io: new Int32Array(b, s + ST_IO, IO_VIEW),
    segChk: new Int32Array(b, s + ST_SEGCHK, 256),
    codePage: new Uint8Array(b, s + ST_CODEPAGE, frames),
    tlb: new Int32Array(b, s + layout(a.ramBytes).tlb, 1 << 20),
  };
}

/** The TLB's byte address in the arena (for generated code). */
export function tlbAddress(a: Arena): number {
  return a.state + layout(a.ramBytes).tlb;
}

/**
 * Byte addresses of the chain's arrays: lengths by id, table entries by id, the page maps,
 * the frames' maps.
 */
export function chainAddress(a: Arena): { lens: number; index: number; maps: number; pages: number } {
  const l = layout(a.ramBytes);
  const lens = a.state + l.chain;
  return { lens, index: lens + CHAIN_IDS, maps: lens + CHAIN_IDS_BYTES, pages: a.state + l.pages };
}

export type Backend = "js" | "wasm";

/**
 * The compiled-block back end a new Cpu takes: wasm, unless TSXEN_CPU_BACKEND=js. A Cpu whose
 * state is not in a WebAssembly.Memory (a plain buffer, RAM and state beyond 4 GiB, a second
 * Cpu on a memory, a host without WebAssembly) runs JS blocks whatever this says.
 */
export function defaultBackend(): Backend {
  const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
  const v = env?.TSXEN_CPU_BACKEND;
  if (v === undefined || v === "" || v === "wasm") return "wasm";
  if (v === "js") return "js";
  // A typo must not silently measure or test the other back end.
  throw new Error(`TSXEN_CPU_BACKEND="${v}": expected "wasm" (the default) or "js"`);
}
