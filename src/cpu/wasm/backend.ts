/**
 * The WebAssembly back end of compiled blocks (issue 16): blocks.ts compiles a block to JS
 * as before and, for a Cpu whose backend is "wasm" and whose state is in a WebAssembly.Memory
 * (arena.ts), hands its plan here; the wasm function (gen.ts) is queued, and a batch of
 * them becomes one module (a module's compile has a fixed cost) when the batch is full or
 * a region is about to be built. The block's JS function is then replaced by a wrapper that
 * hands the lazy flags and EIP over through the io words, calls the wasm function with the
 * budget left, and takes the result back; a fault thrown by an import (the JS paths of
 * memory accesses, a handler) unwinds through wasm to the wrapper, which sets the faulting
 * instruction's state as the JS block's catch does.
 */
import type { Cpu } from "../cpu.js";
import type { BlockFn, RegionFn } from "../decode.js";
import { SS } from "../regs.js";
import {
  IO_BLK,
  IO_DONE,
  IO_EIP,
  IO_FLAGS,
  IO_LZA,
  IO_LZB,
  IO_LZOP,
  IO_LZRES,
  IO_LZSIZE,
  IO_RBLOCKS,
  IO_RDMASK,
  IO_RDONE,
  IO_SAVEDESP,
  IO_SS32,
  IO_WRMASK,
  tlbAddress,
} from "./arena.js";
import { type FuncType, I32, type ModuleSpec, moduleBytes } from "./emit.js";
import {
  BLOCK_TYPE,
  type BlockPlan,
  blockBody,
  hubBody,
  IMPORT_TYPES,
  IMPORTS,
  LOCALS,
  REGION_TYPE,
  regionBody,
  type Site,
} from "./gen.js";

const TYPES: FuncType[] = [
  { params: [I32, I32, I32], results: [I32] },
  { params: [I32, I32, I32, I32], results: [I32] },
  { params: [I32, I32], results: [I32] },
  { params: [I32], results: [I32] },
];
const LOCAL_TYPES: number[] = new Array<number>(LOCALS).fill(I32);
/** Blocks per module. */
export const WASM_BATCH = 32;
/** A compiled block: (budget left) -> instructions retired. */
type BlockExport = (left: number) => number;
/** The most a call may retire (the budget is passed as an i32). */
const MAX_LEFT = 0x3fffffff;

interface Pending {
  body: number[];
  /** The body's bytes as a string: the key of a function shared by identical blocks. */
  key: string;
  /** The handlers the body calls, by index (its own: a shared function calls each block's). */
  sites: Site[];
  slot: number;
  js: BlockFn;
  offs: Int32Array;
  flags: Uint8Array;
}

/**
 * A block the back end was given: its JS function and, once compiled, its wasm wrapper and
 * entry in the table (for regions).
 */
interface Known {
  js: BlockFn;
  wasm: BlockFn | null;
  index: number;
  /** Ends in iret: a wasm region, which goes on after a block whatever it did to CS or CPL, never links it. */
  iret: boolean;
  sites: Site[];
  offs: Int32Array;
  flags: Uint8Array;
}

/** The bytes as a string (in slices: apply's argument count is bounded). */
function bytesKey(bytes: number[]): string {
  let key = "";
  for (let i = 0; i < bytes.length; i += 8192)
    key += String.fromCharCode.apply(null, bytes.slice(i, i + 8192) as never);
  return key;
}

/** Flushes between sweeps of the blocks gone from the decode cache (their table entries reused). */
const SWEEP_EVERY = 64;

/** The io words into the Cpu's lazy-flag fields (after wasm code or a handler ran). */
function flagsIn(c: Cpu, io: Int32Array): void {
  c.flags = io[IO_FLAGS];
  c.lzOp = io[IO_LZOP];
  c.lzA = io[IO_LZA];
  c.lzB = io[IO_LZB];
  c.lzRes = io[IO_LZRES];
  c.lzSize = io[IO_LZSIZE];
}

function flagsOut(c: Cpu, io: Int32Array): void {
  io[IO_FLAGS] = c.flags;
  io[IO_LZOP] = c.lzOp;
  io[IO_LZA] = c.lzA;
  io[IO_LZB] = c.lzB;
  io[IO_LZRES] = c.lzRes;
  io[IO_LZSIZE] = c.lzSize;
}

export class WasmBackend {
  /** Index in its block of the instruction an import was called for (a fault's). */
  cur = 0;
  /** Retired at the running block's or region's entry. */
  r0 = 0;
  /** Blocks per module (tests set 1: each block is wasm from its first run). */
  batch = WASM_BATCH;
  /**
   * Regions in wasm too (region()): off by default, as on bench:cpu they ran at 80-95 MIPS
   * against 200-230 for the JS region over wasm blocks (not understood yet; see ARCHITECTURE).
   */
  wasmRegions = false;
  // Counters, for tests and benches.
  runs = 0;
  blocks = 0;
  modules = 0;
  regions = 0;
  inline = 0;
  handlers = 0;
  private pending: Pending[] = [];
  /**
   * Modules compile synchronously until the host refuses (a browser's main thread, above
   * 4 KB), then in the background: the blocks run as JS until theirs is in (tests clear it).
   */
  syncCompile = true;
  private readonly compiling = new Set<Promise<void>>();
  /** Blocks by first slot, for the regions (dropped when a slot's block changes). */
  private readonly known = new Map<number, Known>();
  /**
   * Every compiled block function, for call_indirect from the regions: a region module is
   * only its loop, so a block is compiled once however often its page's region is rebuilt.
   */
  private readonly table = new WebAssembly.Table({ element: "anyfunc", initial: 256 });
  private tableUsed = 0;
  private readonly tableFree: number[] = [];
  private flushes = 0;
  /**
   * Compiled functions by body: the same code in another domain (or frame) reuses the
   * function and the optimised code V8 tiered it up to. One function per domain stayed in
   * V8's baseline tier on idle domains (each ran too rarely to tier up): 100 idle domains cost
   * half again the CPU of JS blocks, whose factories are shared the same way.
   */
  private readonly shared = new Map<string, number>();
  /** Blocks using each table entry, and the body each holds (to forget it at the last). */
  private readonly users: number[] = [];
  private readonly keyAt: string[] = [];
  /** The running block's handler sites (null: a region's, by io[IO_BLK] in regionSites). */
  private curSites: Site[] | null = null;
  private regionSites: Site[][] = [];
  /** Blocks that reused a compiled function (tests, benches). */
  reused = 0;
  private readonly io: Int32Array;
  private readonly stateAt: number;
  private readonly tlbAt: number;
  private readonly memory: WebAssembly.Memory;
  /**
   * hub(i, left) calls table entry i (a block) with the budget left. Every wrapper calls its
   * block through this one function: a JS call site that saw each block's own export was
   * megamorphic, and V8 took its generic JS-to-wasm path (~1/3 of a wrapper's time); one
   * target is inlined, and a call_indirect inside wasm costs little.
   */
  private readonly hub: (i: number, left: number) => number;

  constructor(readonly cpu: Cpu) {
    const a = cpu.state.arena;
    if (a === null) throw new Error("a wasm back end needs the Cpu's state in a WebAssembly.Memory");
    this.io = cpu.state.io;
    this.stateAt = a.state;
    this.tlbAt = tlbAddress(a);
    this.memory = a.memory;
    this.hub = this.instantiate([{ type: REGION_TYPE, locals: [], body: hubBody() }], 0)[0] as (
      i: number,
      left: number,
    ) => number;
  }

  /** Queues the block whose JS function is js (compiled from plan). */
  add(plan: BlockPlan, js: BlockFn): void {
    const dc = this.cpu.dc;
    const sites: Site[] = [];
    const { body, inline } = blockBody(dc, plan, this.stateAt, this.tlbAt, sites);
    this.inline += inline;
    this.handlers += plan.flags.length - inline;
    const p = {
      body,
      key: bytesKey(body),
      sites,
      slot: plan.slots[0],
      js,
      offs: Int32Array.from(plan.offs),
      flags: Uint8Array.from(plan.flags),
    };
    const iret = ((dc.op[plan.slots[plan.slots.length - 1]] >> 3) & 0x1ff) === 0xcf;
    this.known.set(p.slot, { js, wasm: null, index: -1, iret, sites, offs: p.offs, flags: p.flags });
    const index = this.shared.get(p.key);
    if (index !== undefined) {
      this.reused++;
      this.place(p, index);
      return;
    }
    this.pending.push(p);
    if (this.pending.length >= this.batch) this.flush();
  }

  /** Compiles the queued blocks into one module and puts them in place of their JS functions. */
  flush(): void {
    const pending = this.pending;
    if (pending.length === 0) return;
    this.pending = [];
    const funcs = pending.map((p) => ({ type: BLOCK_TYPE, locals: LOCAL_TYPES, body: p.body }));
    const indexes = pending.map((_, i) => i);
    if (++this.flushes % SWEEP_EVERY === 0) this.sweep();
    if (this.syncCompile) {
      try {
        this.install(pending, this.instantiate(funcs, ...indexes) as BlockExport[]);
        return;
      } catch (x) {
        // A browser's main thread refuses a synchronous compile of more than 4 KB (V8's
        // embedder limit): from now on compile in the background.
        if (!(x instanceof RangeError)) throw x;
        this.syncCompile = false;
      }
    }
    const done = WebAssembly.instantiate(this.bytes(funcs, indexes), this.importObject()).then(
      ({ instance }) => {
        this.modules++;
        this.install(
          pending,
          indexes.map((f) => instance.exports[`f${f}`] as BlockExport),
        );
      },
      // Not compiled (out of memory): the blocks stay JS.
      () => {},
    );
    this.compiling.add(done);
    void done.finally(() => this.compiling.delete(done));
  }

  /**
   * Puts the compiled functions fns of the blocks `pending` in place of their JS functions,
   * in their slots and in the JS region that links them (one built while a background
   * compile was under way calls the JS functions; the region's table is read at each call).
   */
  private install(pending: Pending[], fns: BlockExport[]): void {
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i];
      let index = this.shared.get(p.key);
      if (index === undefined) {
        index = this.tableFree.pop() ?? this.tableUsed++;
        if (index >= this.table.length) this.table.grow(this.table.length);
        this.table.set(index, fns[i]);
        this.shared.set(p.key, index);
        this.keyAt[index] = p.key;
        this.users[index] = 0;
      }
      this.place(p, index);
    }
  }

  /** Puts the function at table entry index in place of the JS function of block p. */
  private place(p: Pending, index: number): void {
    const dc = this.cpu.dc;
    // Dropped (its frame written) or replaced meanwhile: nothing to do.
    const k = this.known.get(p.slot);
    if (dc.blockFn[p.slot] !== p.js || k === undefined || k.js !== p.js) return;
    k.index = index;
    this.users[index]++;
    const w = this.wrapper(index, p.offs, p.flags, p.sites);
    dc.blockFn[p.slot] = w;
    const tab = dc.regionTab[p.slot];
    if (tab !== null) {
      const at = tab.B.indexOf(p.js);
      if (at >= 0) tab.B[at] = w;
    }
    k.wasm = w;
    this.blocks++;
  }

  /** Resolves when the background compiles under way have put their blocks in place. */
  async compiled(): Promise<void> {
    while (this.compiling.size > 0) await Promise.all(this.compiling);
  }

  /**
   * Forgets blocks whose slot no longer holds them (their frame was written, or the decode
   * cache flushed): no region can call them any more (a frame's regions go with its blocks),
   * so their table entries are free.
   */
  private sweep(): void {
    const dc = this.cpu.dc;
    for (const [slot, k] of this.known) {
      const fn = dc.blockFn[slot];
      if (fn === k.js || fn === k.wasm) continue;
      this.known.delete(slot);
      if (k.index >= 0 && --this.users[k.index] === 0) {
        this.shared.delete(this.keyAt[k.index]);
        this.table.set(k.index, null);
        this.tableFree.push(k.index);
      }
    }
  }

  /**
   * Called before a frame's region is built: compiles the queued blocks (so that the region
   * links them as wasm), then, with wasmRegions, returns the region in wasm: a module of its
   * loop alone (gen.ts regionBody), calling the blocks (slots, at page offsets offs) through
   * the table. null: the region stays JS (wasmRegions off, or a block this back end has not
   * compiled).
   */
  region(offs: number[], slots: number[]): RegionFn | null {
    const dc = this.cpu.dc;
    // The queued blocks first (the page's may be among them): the region links them.
    this.flush();
    if (!this.wasmRegions) return null;
    const blocks: Known[] = [];
    for (const slot of slots) {
      const k = this.known.get(slot);
      if (k === undefined || k.wasm === null || dc.blockFn[slot] !== k.wasm || k.iret) return null;
      blocks.push(k);
    }
    const lens = blocks.map((k) => k.flags.length);
    const body = regionBody(
      offs,
      lens,
      blocks.map((k) => k.index),
      this.stateAt,
    );
    const run = this.instantiate([{ type: REGION_TYPE, locals: [I32, I32], body }], 0)[0] as (
      left: number,
      pb: number,
    ) => number;
    this.regions++;
    const O = blocks.map((k) => k.offs);
    const F = blocks.map((k) => k.flags);
    const S = blocks.map((k) => k.sites);
    const io = this.io;
    return (c, pb) => {
      const r0 = c.retired;
      this.curSites = null;
      this.regionSites = S;
      this.enter(c);
      io[IO_RBLOCKS] = 0;
      let n: number;
      try {
        n = run(Math.min(c.runEnd - r0, MAX_LEFT), pb);
      } catch (x) {
        const b = io[IO_BLK];
        this.unwind(c, io[IO_EIP], r0 + io[IO_RDONE], O[b], F[b]);
        c.regionBlocks += io[IO_RBLOCKS];
        this.runs += io[IO_RBLOCKS];
        c.held(x);
        return;
      }
      this.leave(c, r0 + n);
      c.regionBlocks += io[IO_RBLOCKS];
      this.runs += io[IO_RBLOCKS];
    };
  }

  /** The io words for a block or region entered at the Cpu's state. */
  private enter(c: Cpu): void {
    const io = this.io;
    io[IO_EIP] = c.eip;
    flagsOut(c, io);
    io[IO_RDMASK] = c.rdMask;
    io[IO_WRMASK] = c.wrMask;
    io[IO_SS32] = c.segAttr[SS] & 0x4000;
    io[IO_DONE] = 0;
    io[IO_RDONE] = 0;
    this.r0 = c.retired;
  }

  /** The Cpu's state after a block or region returned, retired r. */
  private leave(c: Cpu, r: number): void {
    const io = this.io;
    c.eip = io[IO_EIP];
    flagsIn(c, io);
    c.retired = r;
    c.codeHit = 0;
  }

  /**
   * A fault in the block entered at EIP e0 (its offsets O, flags F) after r retired before
   * it: the faulting instruction's state, as the JS block's catch sets it.
   */
  private unwind(c: Cpu, e0: number, r: number, O: Int32Array, F: Uint8Array): void {
    const io = this.io;
    const k = this.cur;
    c.retired = r + io[IO_DONE] + k;
    c.instrStart = (e0 + O[k]) | 0;
    c.savedEsp = (F[k] & 1) === 0 ? c.regs[4] : io[IO_SAVEDESP];
    flagsIn(c, io);
  }

  private wrapper(index: number, O: Int32Array, F: Uint8Array, sites: Site[]): BlockFn {
    const hub = this.hub;
    return (c) => {
      const e0 = c.eip;
      const r0 = c.retired;
      this.curSites = sites;
      this.enter(c);
      this.runs++;
      let n: number;
      try {
        n = hub(index, Math.min(c.runEnd - r0, MAX_LEFT));
      } catch (x) {
        this.unwind(c, e0, r0, O, F);
        c.held(x);
        return;
      }
      this.leave(c, r0 + n);
    };
  }

  /** Compiles and instantiates a module of funcs; returns the functions `exported` (indexes in funcs). */
  private instantiate(funcs: ModuleSpec["funcs"], ...exported: number[]): unknown[] {
    const inst = new WebAssembly.Instance(
      new WebAssembly.Module(this.bytes(funcs, exported)),
      this.importObject(),
    );
    this.modules++;
    return exported.map((f) => inst.exports[`f${f}`]);
  }

  /** A module of funcs exporting those `exported` (indexes in funcs) as f<index>. */
  private bytes(funcs: ModuleSpec["funcs"], exported: number[]): Uint8Array<ArrayBuffer> {
    return moduleBytes({
      types: TYPES,
      imports: IMPORTS.map((name, i) => ({ name, type: IMPORT_TYPES[i] })),
      memPages: this.memory.buffer.byteLength / 65536,
      table: true,
      funcs,
      exports: exported.map((f) => ({ name: `f${f}`, func: IMPORTS.length + f })),
    });
  }

  private importObject(): WebAssembly.Imports {
    return { i: { ...this.imports(), t: this.table } };
  }

  private imports(): WebAssembly.ModuleImports {
    const c = this.cpu;
    const io = this.io;
    return {
      m: this.memory,
      rd8: (k: number, s: number, o: number) => {
        this.cur = k;
        return c.rd8(s, o);
      },
      rd16: (k: number, s: number, o: number) => {
        this.cur = k;
        return c.rd16(s, o);
      },
      rd32: (k: number, s: number, o: number) => {
        this.cur = k;
        return c.rd32(s, o);
      },
      wr8: (k: number, s: number, o: number, v: number) => {
        this.cur = k;
        c.wr8(s, o, v);
        return c.codeHit;
      },
      wr32: (k: number, s: number, o: number, v: number) => {
        this.cur = k;
        c.wr32(s, o, v);
        return c.codeHit;
      },
      rmwRd8: (k: number, s: number, o: number) => {
        this.cur = k;
        return c.rmwRd8(s, o);
      },
      rmwRd32: (k: number, s: number, o: number) => {
        this.cur = k;
        return c.rmwRd32(s, o);
      },
      rmwWr8: (k: number, v: number) => {
        this.cur = k;
        c.rmwWr8(v);
        return c.codeHit;
      },
      rmwWr32: (k: number, v: number) => {
        this.cur = k;
        c.rmwWr32(v);
        return c.codeHit;
      },
      push: (k: number, v: number) => {
        this.cur = k;
        c.push32(v);
        return c.codeHit;
      },
      pop: (k: number) => {
        this.cur = k;
        return c.pop32();
      },
      fault: (k: number, v: number, e: number) => {
        this.cur = k;
        return c.fault(v, e);
      },
      call: (k: number, i: number) => {
        this.cur = k;
        const s = (this.curSites ?? this.regionSites[io[IO_BLK]])[i];
        flagsIn(c, io);
        // As in a JS block: retired as at the block's entry (plus finished passes), EIP too
        // except for a control transfer, which starts from the instruction's end.
        c.retired = this.r0 + io[IO_RDONE] + io[IO_DONE];
        if (s.control) c.eip = (io[IO_EIP] + s.end) | 0;
        s.fn(c as never, s.slot);
        flagsOut(c, io);
        if (s.control) io[IO_EIP] = c.eip;
        return c.codeHit;
      },
      cond: (cc: number) => {
        flagsIn(c, io);
        return c.cond(cc) ? 1 : 0;
      },
    };
  }
}

const backends = new WeakMap<Cpu, WasmBackend | null>();

/** The Cpu's wasm back end, or null when its state is not in a WebAssembly.Memory. */
export function wasmBackend(cpu: Cpu): WasmBackend | null {
  let b = backends.get(cpu);
  if (b === undefined) {
    b = cpu.state.arena !== null && typeof WebAssembly === "object" ? new WasmBackend(cpu) : null;
    backends.set(cpu, b);
  }
  return b;
}
