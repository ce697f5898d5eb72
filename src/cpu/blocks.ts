/**
 * Compiled blocks: a run of hot decoded instructions turned into one JS function, so the run
 * loop's per-instruction work (slot lookup, switch, indirect jump, retired/instrStart/
 * savedEsp bookkeeping) is paid once per block. The commonest forms are written inline with
 * their operands as constants (codegen.ts); the others call their handler with a constant
 * slot, one call site per handler, which TurboFan inlines.
 *
 * A block follows the code as it ran: past a jcc that is not taken (a taken one leaves the
 * block, or goes on at its target when that is further on in the block: an if without an
 * else), to the target of a jmp or call in the same page, and back from a ret to the call it
 * followed (leaving when the return address is not the expected one); a block that jumps
 * back to its own start loops inside its function. Code in the page that has not run yet is
 * decoded ahead (entryAt). It stops at any other control transfer, at an instruction that is
 * not hot, at the page's end, or after MAX_BLOCK.
 *
 * A block runs whole or not at all (the run loop enters it only when its longest path fits
 * the budget), so retired counts, exits and timing are exactly the interpreter's. A fault
 * inside a block sets instrStart, savedEsp and retired to what the interpreter would have had
 * at the faulting instruction, then returns to the run loop with the fault pending (Cpu.held:
 * not thrown a second time, the loop ends as runEnd is 0). A write to a code frame
 * (cpu.codeHit) ends the block after the writing instruction, so self-modifying code is seen
 * by the next instruction, as on a P6.
 *
 * Only the hot handlers (ops/table.ts HOT_FNS) are compiled: none of them changes paging, or
 * reads EIP except the control transfers, whose EIP the block sets first. The one that may
 * change CS, CPL or the debug state (iret) ends its block, and a region returns after it when
 * it did (the fetch window was dropped); a load of SS is never compiled.
 */
import { type FlagState, followedJump, inlineCode, predictedReturn } from "./codegen.js";
import { CPU_FAULT, type Cpu } from "./cpu.js";
import * as decodeNs from "./decode.js";
import {
  type BlockFn,
  type DecodeCache,
  decodeInto,
  hasModrm,
  isJcc,
  type RegionFn,
  type RegionTab,
} from "./decode.js";
import * as tableNs from "./ops/table.js";
import { type Handler, hotCase } from "./ops/table.js";
import { CS, SS } from "./regs.js";
import { type WasmBackend, wasmBackend } from "./wasm/backend.js";
import type { BlockPlan } from "./wasm/gen.js";

// Module-level copies of imported bindings the pending runner reads per instruction: each use
// of an imported binding in optimized code costs a module-cell load and a hole check.
const { SLOT_MASK } = decodeNs;
const { HOT_CASES, HOT_FNS } = tableNs;

/**
 * The pending runner's bits in W[2k] (interpreted), above the slot (18 bits) and the hot case
 * (7): the instruction moves ESP before it can fault (F_STACK: savedEsp set before it), sets
 * EIP (its end set before it, the path checked after), may write memory (codeHit checked).
 */
const W_STACK = 1 << 25;
const W_CONTROL = 1 << 26;
const W_CHECK = 1 << 27;

/** Interpreted runs of an instruction before a block starting there is compiled. */
export const BLOCK_THRESHOLD = 40;
/**
 * Standalone runs of a frame's compiled blocks (those in no region) before its region is
 * rebuilt: high enough that a page whose hot code is still being found is not recompiled
 * at each new block.
 */
export const REGION_THRESHOLD = 64;
/** Longest block, in instructions (blockLen is a byte). */
const MAX_BLOCK = 64;
/** rdtsc's opcode as blocks see it (0F 31: map 1). */
const OPC_RDTSC = 0x131;

/** Near jumps, calls and returns: they set EIP (see compileBlock for those a block goes past). */
function isControl(opc: number, sub: number): boolean {
  return (
    (opc >= 0x70 && opc <= 0x7f) ||
    (opc >= 0x180 && opc <= 0x18f) ||
    opc === 0xe8 ||
    opc === 0xe9 ||
    opc === 0xeb ||
    opc === 0xc2 ||
    opc === 0xc3 ||
    opc === 0xcf ||
    (opc === 0xff && (sub === 2 || sub === 4))
  );
}

/** Instructions that move ESP before they can fault: a fault rolls ESP back. */
function movesStack(opc: number, sub: number): boolean {
  return (
    (opc >= 0x50 && opc <= 0x5f) ||
    opc === 0x68 ||
    opc === 0x6a ||
    opc === 0x8f ||
    opc === 0xc9 ||
    opc === 0xe8 ||
    opc === 0xc2 ||
    opc === 0xc3 ||
    opc === 0xcf ||
    opc === 0x60 ||
    opc === 0x61 ||
    (opc & 0x1e6) === 0x06 || // push/pop es, cs, ss, ds
    (opc & 0x1f6) === 0x1a0 || // push/pop fs, gs
    (opc === 0xff && (sub === 2 || sub === 6))
  );
}

/**
 * Forms without a ModRM memory operand that may write memory: pushes, and segment loads
 * (the descriptor's accessed bit).
 */
function writesImplicitly(opc: number, sub: number): boolean {
  return (
    (opc >= 0x50 && opc <= 0x57) ||
    opc === 0x68 ||
    opc === 0x6a ||
    (opc === 0xff && sub === 6) ||
    opc === 0x60 ||
    opc === 0xa2 ||
    opc === 0xa3 ||
    opc === 0x8e ||
    (opc & 0x1e6) === 0x06 ||
    (opc & 0x1f6) === 0x1a0
  );
}

/** Memory-operand forms that only read memory (everything else with a memory operand may write). */
function readsOnly(opc: number, sub: number): boolean {
  if (opc < 0x40) return (opc & 0x38) === 0x38; // cmp
  if (opc >= 0x80 && opc <= 0x83) return sub === 7;
  if (opc === 0xf6 || opc === 0xf7) return sub !== 2 && sub !== 3; // test, mul, imul, div, idiv
  return (
    opc === 0x84 ||
    opc === 0x85 ||
    opc === 0x8a ||
    opc === 0x8b ||
    opc === 0x8d ||
    opc === 0x69 ||
    opc === 0x6b ||
    opc === 0x1af ||
    opc === 0x1b6 ||
    opc === 0x1b7 ||
    opc === 0x1be ||
    opc === 0x1bf ||
    opc === 0x1a3 ||
    (opc === 0x1ba && sub === 4) ||
    (opc >= 0x140 && opc <= 0x14f) // cmovcc
  );
}

/**
 * Block factories by generated source. A source names no decode slot (a handler's slot is
 * S[k], bound per block), only what the code's bytes give, so the same code compiled again
 * (after its frame was written, on another CPU, or in another domain running the same kernel)
 * reuses its factory, and all the blocks it made share V8's feedback and optimised code: 100
 * idle domains tick through one stub's function instead of 100 cold copies. Nothing else is
 * shared: each block reads its own domain's decoded slots and memory.
 */
const factories = new Map<string, (...a: unknown[]) => BlockFn>();
const MAX_FACTORIES = 16384;

/** Slot s is a near jmp/jcc (no prefix) whose target is the block's start (end: its end offset). */
function loops(dc: DecodeCache, s: number, end: number): boolean {
  const id = dc.op[s];
  const opc = (id >> 3) & 0x1ff;
  const rel = id >> 12 === 0 && (isJcc(opc) || opc === 0xeb || opc === 0xe9);
  return rel && end + dc.imm[s] === 0;
}

/**
 * The instruction index j > k of a block at block offset target (j = n: past the last one,
 * when it is not a control transfer), or -1.
 */
function skipTarget(offs: number[], target: number, k: number, flags: number[]): number {
  const n = flags.length;
  for (let j = k + 1; j < n; j++) if (offs[j] === target) return j;
  return offs[n] === target && (flags[n - 1] & F_CONTROL) === 0 ? n : -1;
}

/**
 * Closes the forward-branch labels that end before instruction k. Two paths meet there, so
 * the block's flag record is unknown (read from the CPU, where it is always written).
 */
function closeSkips(open: number[], k: number, st: FlagState): string {
  let s = "";
  while (open.length > 0 && open[open.length - 1] === k) {
    open.pop();
    s += "}";
    st.op = 0;
  }
  return s;
}

/**
 * The block's JS source. offs[k]: where instruction k starts, relative to the block's start
 * (offs[n]: where execution goes on after the last one); ends[k]: where instruction k ends.
 * They differ after a jmp or call the block follows to its target.
 */
function blockSource(
  dc: DecodeCache,
  slots: number[],
  offs: number[],
  ends: number[],
  flags: number[],
): string {
  const n = flags.length;
  const st: FlagState = { op: 0, size: 32 };
  let body = "";
  let round = false;
  /** Where the open forward-branch labels end (instruction indexes), innermost last. */
  const open: number[] = [];
  for (let k = 0; k < n; k++) {
    const f = flags[k];
    body += closeSkips(open, k, st);
    if (k > 0) body += `k=${k};`;
    if (f & F_STACK) body += "c.savedEsp=r[4];";
    if (f & F_CONTROL) body += `c.eip=(e0+${ends[k]})|0;`;
    let taken = f & F_BRANCH ? `c.retired+=${k + 1};return;` : "";
    // A jump to the block's own start (at its end, or a jcc taken inside it: a loop whose
    // exit the block goes on past) goes round inside the function while the budget allows
    // another whole pass (as the run loop would have run it again).
    if ((k === n - 1 || f & F_BRANCH) && loops(dc, slots[k], ends[k])) {
      taken = `c.retired+=${k + 1};if(c.retired+${n}<=c.runEnd)continue;return;`;
      round = true;
    } else if (f & F_BRANCH) {
      // A jcc taken forward to an instruction j further on in the block (an if without else)
      // goes on there: the instructions it skips did not retire. Labels must nest.
      const j = skipTarget(offs, ends[k] + dc.imm[slots[k]], k, flags);
      if (j > 0 && (open.length === 0 || j <= open[open.length - 1])) {
        open.push(j);
        body += `S${k}:{`;
        taken = j === k + 1 ? `break S${k};` : `c.retired-=${j - k - 1};break S${k};`;
      }
    }
    let code: string | null;
    if (f & F_TRACE) code = followedJump(dc, slots[k], ends[k]);
    else if (f & F_RETURN) code = predictedReturn(offs[k + 1], k);
    else code = inlineCode(dc, slots[k], ends[k], st, taken);
    if (code !== null) {
      body += `${code}\n`;
    } else {
      body += `h${k}(c,S[${k}]);\n`;
      st.op = 0;
    }
    if (f & F_CHECK)
      body += `if(c.codeHit!==0){c.codeHit=0;c.eip=(e0+${offs[k + 1]})|0;c.retired+=${k + 1};return;}\n`;
  }
  body += closeSkips(open, n, st);
  if ((flags[n - 1] & F_CONTROL) === 0) body += `c.eip=(e0+${offs[n]})|0;`;
  // The function in parentheses: V8 then compiles it with the factory instead of pre-parsing
  // it and parsing it again at its first call (a quarter of a block's compile time).
  return (
    "return (function block(c){const e0=c.eip,r=c.regs,r8=c.regs8;let k=0,fa=0,fb=0,fx=0;" +
    `try{${round ? `for(;;){k=0;\n${body}break}` : body}}catch(x){` +
    "c.retired+=k;c.instrStart=(e0+O[k])|0;if((F[k]&1)===0)c.savedEsp=r[4];c.held(x);return}" +
    `c.retired+=${n}})`
  );
}

/** Blocks that took a factory already made for their source (tests). */
let factoryReuses = 0;

/** How many block factories there are (one per distinct source): for tests. */
export function blockFactories(): number {
  return factories.size;
}

/**
 * How many blocks took a factory another block had made (two domains' copies of one code):
 * for tests.
 */
export function blockFactoryReuses(): number {
  return factoryReuses;
}

function factoryFor(source: string, n: number): (...a: unknown[]) => BlockFn {
  let make = factories.get(source);
  if (make !== undefined) factoryReuses++;
  if (make === undefined) {
    // One per distinct piece of hot code run since the last clear: keep the map bounded.
    if (factories.size >= MAX_FACTORIES) factories.clear();
    const params = Array.from({ length: n }, (_, i) => `h${i}`);
    make = new Function("O", "F", "S", ...params, source) as (...a: unknown[]) => BlockFn;
    factories.set(source, make);
  }
  return make;
}

// Per-instruction flags of a block.
const F_STACK = 1; // moves ESP before it can fault
const F_CONTROL = 2; // sets EIP: ends the block
const F_CHECK = 4; // may write memory: stop if it wrote a code frame
const F_BRANCH = 8; // a jcc the block goes on after when it is not taken
const F_TRACE = 16; // a jmp or call the block follows to its target
const F_RETURN = 32; // a ret to the instruction after a call the block followed: goes on there
/** Decode-cache flushes when the block being compiled was started: one since ends it. */
let flushesAtStart = 0;

/**
 * The slotOf entry of the instruction at page offset pos of the frame whose decoded
 * instructions are in slotOf block blockOff (base: the EIP of the page's first byte),
 * decoding it first when it is not yet (0: none). Decoding ahead lets a block go on where the
 * interpreter has not been yet (past a jcc always taken so far, to a jump's target): only in
 * the page being run (its TLB entry allows the fetch), not within 15 bytes of its end (an
 * instruction there may cross it) nor near the CS limit, so the fetch cannot fault or walk
 * the page tables; any other fault of the decode (too long) leaves the entry empty.
 */
function entryAt(cpu: Cpu, blockOff: number, pos: number, base: number): number {
  const dc = cpu.dc;
  const e = dc.slotOf[blockOff + pos];
  // Not into the block every lookup misses (no fetch window: after a flush in a fetch).
  if (
    e !== 0 ||
    !cpu.decodeAhead ||
    pos > 0x1000 - 15 ||
    dc.flushes !== flushesAtStart ||
    blockOff === dc.emptyBlock
  )
    return e;
  const eip = (base + pos) | 0;
  const lin = (cpu.segBase[CS] + eip) | 0;
  if (eip >>> 0 > 0xffffffff - 15 || (eip >>> 0) + 15 > cpu.segHi[CS]) return 0;
  if ((cpu.tlb[lin >>> 12] & cpu.rdMask) === 0) return 0;
  const saved = cpu.eip;
  let slot: number;
  try {
    cpu.eip = eip;
    slot = decodeInto(cpu, lin);
  } catch (x) {
    if (x !== CPU_FAULT) throw x;
    return 0;
  } finally {
    cpu.eip = saved;
  }
  // Running out of slots flushed the cache (and this frame's block with it).
  if (dc.flushes !== flushesAtStart) return 0;
  const entry = slot | (dc.len[slot] << 18) | (hotCase(dc.op[slot], dc.modrm[slot]) << 22);
  dc.slotOf[blockOff + pos] = entry;
  return entry;
}

/**
 * Compiles the block starting at byte offset off of the frame whose decoded instructions are
 * in slotOf block blockOff, and records it at the first instruction's slot. Returns false
 * when the first instruction is not compilable.
 */
export function compileBlock(cpu: Cpu, blockOff: number, off: number): boolean {
  const dc = cpu.dc;
  flushesAtStart = dc.flushes;
  const base = (cpu.eip - off) | 0;
  /** A hot instruction starts at page offset pos (decoded ahead if need be). */
  const hotAt = (pos: number): boolean => entryAt(cpu, blockOff, pos, base) >> 22 !== 0;
  const fns: Handler[] = [];
  /** The instructions' hot cases (HOT_FNS indexes: fns by number). */
  const hots: number[] = [];
  const slots: number[] = [];
  const offs: number[] = [];
  const ends: number[] = [];
  const flags: number[] = [];
  const seen = new Set<number>();
  /** Return addresses (page offsets) of the calls the block followed. */
  const returns: number[] = [];
  let pos = off;
  while (flags.length < MAX_BLOCK && pos < 0x1000) {
    const e = entryAt(cpu, blockOff, pos, base);
    const hot = e >> 22;
    if (e === 0 || hot === 0) break;
    const slot = e & SLOT_MASK;
    const id = dc.op[slot];
    const opc = (id >> 3) & 0x1ff;
    const sub = id & 7;
    const memForm = hasModrm(opc >> 8, opc & 0xff) && dc.modrm[slot] < 0xc0 && opc !== 0x8d;
    // A load of SS changes the stack's size, which a wasm block reads once: never compiled.
    if (opc === 0x8e && ((dc.modrm[slot] >> 3) & 7) === SS) break;
    // rdtsc reads the time, which counts retired instructions, and a handler a block calls
    // sees `retired` as at the block's entry (plus the passes it finished): exact only for
    // its first instruction, so a block ends before any other rdtsc.
    if (opc === OPC_RDTSC && flags.length > 0) break;
    const len = (e >> 18) & 15;
    const stack = movesStack(opc, sub) ? F_STACK : 0;
    let f: number;
    let next = pos + len;
    seen.add(pos);
    if (isControl(opc, sub)) {
      // A jcc (inline: no operand-size prefix) goes on to the next instruction when that is
      // compilable too; a jmp or call rel goes on at its target in the same page (not the
      // block's start: that is a loop, see loops()); any other control transfer ends the
      // block, and needs no write check.
      const prefix = id >> 12 !== 0;
      const jcc = !prefix && isJcc(opc);
      const jmp = !prefix && (opc === 0xe8 || opc === 0xe9 || opc === 0xeb);
      const target = pos + len + dc.imm[slot];
      const room = flags.length + 1 < MAX_BLOCK;
      if (
        jmp &&
        room &&
        target >= 0 &&
        target < 0x1000 &&
        target !== off &&
        !seen.has(target) &&
        hotAt(target)
      ) {
        f = F_TRACE | (opc === 0xe8 ? F_STACK | F_CHECK : 0);
        next = target;
        if (opc === 0xe8) returns.push(pos + len);
      } else if (
        !prefix &&
        opc === 0xc3 &&
        returns.length > 0 &&
        room &&
        hotAt(returns[returns.length - 1])
      ) {
        // Back from a call the block followed: when the popped address is that call's
        // return address (it almost always is) the block goes on after the call.
        f = F_RETURN | F_STACK;
        next = returns.pop() as number;
      } else if (jcc && room && pos + len < 0x1000 && hotAt(pos + len)) {
        f = F_BRANCH;
      } else {
        f = F_CONTROL | stack;
      }
    } else {
      f = stack | ((memForm && !readsOnly(opc, sub)) || writesImplicitly(opc, sub) ? F_CHECK : 0);
    }
    fns.push(HOT_FNS[hot]);
    hots.push(hot);
    slots.push(slot);
    offs.push(pos - off);
    ends.push(pos + len - off);
    flags.push(f);
    pos = next;
    if (f & F_CONTROL) break;
  }
  if (flags.length === 0 || dc.flushes !== flushesAtStart) return false;
  offs.push(pos - off);
  // The wasm back end takes the block from here. It runs interpreted until its module is in
  // (queued at its queueAt'th run, compiled with its batch or at its pendingRuns'th run
  // after), unless modules compile in the background (then for long: a JS function).
  const wasm = cpu.backend === "wasm" ? wasmBackend(cpu) : null;
  const plan = { slots, offs, ends, flags, fns, loops: slots.map((s, k) => loops(dc, s, ends[k])) };
  if (wasm?.syncCompile && interpretPending) {
    const heat = heatOf(dc, (base + off) & 0xfff, slots, offs);
    const block = interpreted(plan, wasm, blockOff, heat, pendingClock(dc), hots);
    dc.setBlock(slots[0], block, flags.length, blockOff);
    // A batch of 1 (tests): each block is wasm from its first run, as the back end says.
    if (queueAt === 0 || wasm.batch === 1) wasm.add(plan, block);
    return true;
  }
  const make = factoryFor(blockSource(dc, slots, offs, ends, flags), flags.length);
  const block = make(new Int32Array(offs), new Uint8Array(flags), new Int32Array(slots), ...fns);
  dc.setBlock(slots[0], block, flags.length, blockOff);
  if (wasm !== null) wasm.add(plan, block);
  return true;
}

/**
 * Whether a block for the wasm back end runs interpreted until its module is in (false: a
 * JS function is compiled for it and it is queued at once, as before; tests compare).
 */
export let interpretPending = true;
/**
 * Runs of an interpreted block's code before it is queued for the back end (0: queued when
 * made), counted over every block with the same code (heatOf): a wasm block costs ~1 ms of
 * CPU to make (its body, its share of a module's compile), which a block that runs a few
 * hundred times and goes cold never pays back. On the XenLinux bench, at 32 runs: 4,591
 * blocks in 255 modules; at 2,048: 775 in 189, and the run ~25 % less CPU. Counted per code,
 * not per block, so 100 idle domains running the same code (each tick once a domain) queue
 * it within a fraction of a second, as at 32 per block (bench:scale).
 */
const QUEUE_AT = 2048;
/** Runs of a queued interpreted block after which its batch is compiled, full or not. */
const PENDING_RUNS = 128;
let queueAt = QUEUE_AT;
let pendingRuns = PENDING_RUNS;
/**
 * Batches pending blocks had compiled (tests, benches). Their interpreted runs are counted once,
 * per CPU, by the heats' clock (pendingClock).
 */
export const pendingStats = { flushes: 0 };
export function setInterpretPending(on: boolean, runs = PENDING_RUNS, queue = QUEUE_AT): void {
  interpretPending = on;
  pendingRuns = runs;
  queueAt = queue;
}

/**
 * Interpreted runs of one piece of code, over all its blocks (heatOf), halved for each
 * 2^HEAT_SHIFT interpreted runs of any code on this CPU since it was last counted (`at`: its
 * clock's runs >>> HEAT_SHIFT then; one clock a decode cache, so what another CPU or an
 * earlier machine in the process ran moves nothing here): code is queued when hot now, not
 * when it has added up QUEUE_AT runs over a whole boot. On the XenLinux bench the wasm blocks
 * made fall from 791 (in 191 modules) to 262 (in 113), and V8's compiles off the main thread
 * with them (wasm TurboFan tiered up three in four of the blocks made); bench:cpu's loops, hot
 * now, queue as before (106 blocks against 110). At a shift of 14 bench:cpu's were not queued
 * (8 blocks); at 18, 516 on the bench.
 */
interface Heat {
  n: number;
  at: number;
}
/**
 * Interpreted runs of pending blocks on one CPU (one decode cache), mod 2^32 as an int32 (an
 * unbounded count would turn the field into a double for good past 2^31): the heats' clock.
 */
export interface HeatClock {
  runs: number;
}
const HEAT_SHIFT = 16;
/** The clock's windows (runs >>> HEAT_SHIFT) wrap at this + 1: distances are taken mod it. */
const HEAT_WINDOWS = 0xffffffff >>> HEAT_SHIFT;

/** One more run of heat's code: its count, decayed first (exported for tests). */
export function heatUp(heat: Heat, clock: HeatClock): number {
  const now = clock.runs >>> HEAT_SHIFT;
  // Windows since `at`, across the clock's wrap (the clock only moves on).
  const d = (now - heat.at) & HEAT_WINDOWS;
  if (d !== 0) {
    heat.n = d < 31 ? heat.n >> d : 0;
    heat.at = now;
  }
  return ++heat.n;
}
/** Per decode cache (one per CPU, as the back end's compiled functions): Heat by code hash. */
const heats = new WeakMap<DecodeCache, { clock: HeatClock; map: Map<number, Heat> }>();
/** Distinct codes counted before the count starts afresh (it only decides when to queue). */
const HEATS_MAX = 1 << 16;

function heatsOf(dc: DecodeCache): { clock: HeatClock; map: Map<number, Heat> } {
  let t = heats.get(dc);
  if (t === undefined) heats.set(dc, (t = { clock: { runs: 0 }, map: new Map() }));
  return t;
}
/** The clock of dc's CPU: its pending runs, mod 2^32 (read by tests and benches; tests set it). */
export function pendingClock(dc: DecodeCache): HeatClock {
  return heatsOf(dc).clock;
}

/**
 * The run count shared by every block of this code: its instructions' decoded fields, their
 * offsets in the block and the block's page offset (another domain's copy of a kernel, another
 * frame with the same code). A hash: two codes that collide only share a count, which decides
 * when a block is queued, never what it does.
 */
function heatOf(dc: DecodeCache, pageOff: number, slots: number[], offs: number[]): Heat {
  let h = pageOff ^ 0x9e3779b9;
  const mix = (v: number) => {
    h = Math.imul(h ^ v, 0x01000193);
    h ^= h >>> 15;
  };
  for (let k = 0; k < slots.length; k++) {
    const s = slots[k];
    mix(offs[k]);
    mix(dc.op[s] | (dc.len[s] << 16) | (dc.modrm[s] << 24));
    mix(dc.pfx[s] | (dc.seg[s] << 8) | (dc.eam[s] << 16));
    mix(dc.disp[s]);
    mix(dc.imm[s]);
    mix(dc.imm2[s]);
    mix((dc.base[s] & 0xff) | ((dc.index[s] & 0xff) << 8) | (dc.scale[s] << 16));
  }
  const t = heatsOf(dc);
  const m = t.map;
  let e = m.get(h);
  if (e === undefined) {
    if (m.size >= HEATS_MAX) m.clear();
    m.set(h, (e = { n: 0, at: t.clock.runs >>> HEAT_SHIFT }));
  }
  return e;
}

/**
 * A block for the wasm back end (plan, in the frame at slotOf block blockOff) until its
 * module is in: its instructions run through their handlers as the compiled JS block calls
 * them (savedEsp set before one that moves ESP before it can fault, EIP before a control
 * transfer, a code write checked after one that may write memory, retired counted when it
 * returns; a fault's instrStart, savedEsp and retired set in the catch), along the path the
 * block was compiled for; it returns where the code leaves that path (a jcc taken, a return
 * elsewhere), after a write to a code frame, or after its last instruction (the caller entered
 * it only when all of it fits the budget, as a compiled block). With the run loop's protocol
 * (each instruction's instrStart, savedEsp, EIP and retired stored) an 11-instruction pending
 * loop cost 2,990 host instructions a pass (callgrind), with this one 2,624. Compiling a JS
 * function for a block that runs a few dozen times before wasm replaces it cost more than
 * interpreting it (the XenLinux bench: 7,333 blocks, 2.1 s of V8 compiles, 8 % of the run).
 */
function interpreted(
  plan: BlockPlan,
  wasm: WasmBackend,
  blockOff: number,
  heat: Heat,
  clock: HeatClock,
  hots: number[],
): BlockFn {
  const n = hots.length;
  // What a run reads, in one array (cold code: each object a run touches is a cache miss):
  // W[2k] the slot, hot case and W_* bits of instruction k, W[2k+1] its end (low half, signed)
  // and where instruction k+1 starts (high half), both relative to the block's start (within a
  // page and its last instruction's 15 bytes: they fit 16 bits).
  const W = new Int32Array(2 * n);
  for (let k = 0; k < n; k++) {
    const f = plan.flags[k];
    W[2 * k] =
      plan.slots[k] |
      (hots[k] << 18) |
      (f & F_STACK ? W_STACK : 0) |
      (f & (F_CONTROL | F_BRANCH | F_TRACE | F_RETURN) ? W_CONTROL : 0) |
      (f & F_CHECK ? W_CHECK : 0);
    W[2 * k + 1] = (plan.ends[k] & 0xffff) | (plan.offs[k + 1] << 16);
  }
  const s0 = plan.slots[0];
  let runs = 0;
  // The run it was queued at (-1: not yet, or queued when made with a batch of 1: the wasm
  // block replaced it, and a run here is one it bailed to or one after a re-add; 0: when made).
  let at = queueAt === 0 ? 0 : -1;
  // Hot enough to queue, or run often since: out of the runner, which TurboFan then compiles
  // smaller (each block first reaching a path the compile had no feedback for recompiles it).
  // True when the run was the wasm function's.
  const due = (c: Cpu): boolean => {
    const dc = c.dc;
    if (at < 0) {
      at = runs;
      // Hot enough: queued. A region built over the page meanwhile is built again, so that
      // the back end chains the block there once it is compiled (WasmBackend.link), or at
      // once when add() put its wasm in place already (identical code compiled before, as
      // another domain's copy of the same kernel; or its batch full): place() chains only
      // in a region linked since the add, and left unchained the block cost each idle
      // domain 8 of its 14 wasm entries a tick.
      if (dc.blockFn[s0] === self) {
        wasm.add(plan, self);
        if (dc.regionTab[s0] !== null) compileRegion(c, blockOff);
      }
    } else {
      // Run often since: its batch is compiled now, full or not.
      pendingStats.flushes++;
      wasm.flush();
    }
    // This run is the wasm function's when it is in.
    const w = dc.blockFn[s0];
    if (w === null || w === self) return false;
    w(c);
    return true;
  };
  const run: BlockFn = (c) => {
    ++runs;
    if ((at < 0 ? heatUp(heat, clock) >= queueAt : runs === at + pendingRuns) && due(c)) return;
    clock.runs = (clock.runs + 1) | 0;
    const e0 = c.eip;
    const r = c.regs;
    // Instructions retired in this run: counted into c.retired when it returns.
    let k = 0;
    let a = 0;
    try {
      for (;;) {
        a = W[2 * k];
        if ((a & W_STACK) !== 0) c.savedEsp = r[4];
        if ((a & W_CONTROL) === 0) {
          HOT_FNS[(a >>> 18) & HOT_CASES](c, a & SLOT_MASK);
          k++;
          if ((a & W_CHECK) !== 0 && c.codeHit !== 0) {
            c.codeHit = 0;
            break;
          }
          if (k === n) break;
        } else {
          const b = W[2 * k + 1];
          c.eip = (e0 + ((b << 16) >> 16)) | 0;
          HOT_FNS[(a >>> 18) & HOT_CASES](c, a & SLOT_MASK);
          k++;
          if ((a & W_CHECK) !== 0 && c.codeHit !== 0) {
            c.codeHit = 0;
            return void (c.retired += k);
          }
          // The last one, or EIP off the block's path (a jcc taken, a return elsewhere).
          if (k === n || c.eip !== ((e0 + (b >> 16)) | 0)) return void (c.retired += k);
        }
      }
      // EIP as after instruction k - 1 (not a control transfer: it moved on).
      c.eip = (e0 + (W[2 * k - 1] >> 16)) | 0;
      c.retired += k;
    } catch (x) {
      // As a compiled block's catch: instruction k faulted, the ones before it retired.
      c.retired += k;
      c.instrStart = (e0 + (k === 0 ? 0 : W[2 * k - 1] >> 16)) | 0;
      if ((a & W_STACK) === 0) c.savedEsp = r[4];
      c.held(x);
    }
  };
  const self = CHECK_PENDING ? checkedRun(run, clock) : run;
  return self;
}

/**
 * TSXEN_CHECK_INVARIANTS=1 (npm test): every pending run checked against the two premises its
 * lean protocol stands on (interpreted), which no type states: no hot handler reads instrStart
 * (stale in a run that did not fault: poisoned here, so a reader diverges from the interpreter
 * in the differential tests) and none ends the run (runEnd as at entry unless a fault was
 * caught, which sets instrStart).
 */
const CHECK_PENDING = globalThis.process?.env?.TSXEN_CHECK_INVARIANTS === "1";
const STALE_INSTR_START = -1;

function checkedRun(run: BlockFn, clock: HeatClock): BlockFn {
  return (c) => {
    const end = c.runEnd;
    const runs = clock.runs;
    c.instrStart = STALE_INSTR_START;
    run(c);
    if (clock.runs !== runs && c.instrStart === STALE_INSTR_START && c.runEnd !== end)
      throw new Error(
        `a pending block's handler ended the run (runEnd ${end} -> ${c.runEnd}; EIP ${(c.eip >>> 0).toString(16)})`,
      );
  };
}

/**
 * Links the compiled blocks of the frame whose decoded instructions are in slotOf block
 * blockOff into a region: a loop that looks EIP's page offset up in its own table of the
 * frame's blocks and runs the block found there, so a branch from one block to another in
 * the page (a loop, an if, a call and its return) goes on without returning to the run loop.
 * Before each block it checks the budget for that block as the run loop does, so retired
 * counts, exits and faults are those of the blocks run one by one (a fault unwinds through
 * the region untouched: the block has set the state). It returns to the run loop when EIP
 * leaves the page or lands where no block starts, when the budget does not fit the next
 * block, and after any write to a code frame (cpu.codeWrites moved: this frame's blocks may
 * be gone). The run loop enters it at any of its blocks (dc.regionFn); a block compiled later
 * runs standalone until the next rebuild. The blocks are called through one call site, so
 * V8 keeps each block its own optimised function (inlined into one region, the blocks would
 * exhaust TurboFan's inlining budget and call their memory helpers instead).
 */
export function compileRegion(cpu: Cpu, blockOff: number): void {
  const dc = cpu.dc;
  // With the wasm back end: queued blocks with JS functions are compiled first, before the
  // table is read (it held the JS functions it had been given after a flush here: place()
  // only puts a block's wasm in the table its slot already has). Interpreted queued blocks
  // are not compiled for the region (they compile with their batch, and the back end then
  // puts them in the region's table and chains): a module per region build was a module of
  // ~10 blocks, each paying a module's fixed cost.
  const back = cpu.backend === "wasm" ? wasmBackend(cpu) : null;
  if (back !== null && !(interpretPending && back.syncCompile)) back.flush();
  const index = new Uint16Array(0x1000);
  const blocks: BlockFn[] = [noBlock];
  const lens = [0];
  const slots: number[] = [];
  const at: number[] = [];
  for (let i = 0; i < 0x1000; i++) {
    const e = dc.slotOf[blockOff + i];
    if (e === 0) continue;
    const slot = e & SLOT_MASK;
    const fn = dc.blockFn[slot];
    if (fn === null) continue;
    index[i] = blocks.length;
    blocks.push(fn);
    lens.push(dc.blockLen[slot]);
    slots.push(slot);
    at.push(i);
  }
  if (slots.length === 0) return;
  // The back end links the region's wasm blocks into chains (WasmBackend.link).
  const tab: RegionTab = { X: index, L: new Uint8Array(lens), B: blocks };
  back?.link(blockOff, at, slots, tab);
  const region = linkRegion(tab);
  for (const slot of slots) {
    dc.regionFn[slot] = region;
    dc.regionTab[slot] = tab;
  }
}

const noBlock: BlockFn = () => {};

/**
 * The region over t's blocks. When EIP leaves the page it goes on in the region of the page
 * EIP is in now, if that page's next instruction starts a block of a JS region and the page
 * is mapped and decoded (Cpu.hopFetch): a call, return or fall-through to another page no
 * longer returns to the run loop. The link is looked up at each crossing through the TLB and
 * the frame's decode block, never remembered, so a remap, a TLB flush or a code write (which
 * ends the region run anyway) is seen at once; the wasm back end's blocks are in B like JS ones.
 */
function linkRegion(t: RegionTab): RegionFn {
  return (c, pb) => {
    // Moved by a write to a code frame (this frame's blocks may be gone) and by a change of CS
    // or CPL (an iret: pb may be stale, the page's rights differ).
    let w = c.fetchDrops;
    const tabs = c.dc.regionTab;
    let X = t.X;
    let L = t.L;
    let B = t.B;
    for (;;) {
      const o = (c.eip - pb) >>> 0;
      let i = 0;
      if (o <= 0xfff) i = X[o];
      else if (!c.linkPages) return;
      else {
        const e = c.hopFetch();
        const n = e === 0 ? null : tabs[e & SLOT_MASK];
        if (n !== null) {
          X = n.X;
          L = n.L;
          B = n.B;
          pb = c.fetchBase;
          i = X[(c.eip - pb) >>> 0];
        }
      }
      if (i === 0) {
        // No block here: an instruction the run loop would only run its handler for is run
        // here (Cpu.regionStep), anything else by the run loop. (X and pb stay a pair: a page
        // EIP reaches after it is looked up as above.)
        if (!c.linkPages || !c.regionStep()) return;
        w = c.fetchDrops;
        continue;
      }
      if (c.retired + L[i] > c.runEnd) return;
      c.regionBlocks++;
      B[i](c);
      if (c.fetchDrops !== w) return;
    }
  };
}
