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
import { CPU_FAULT, type Cpu } from "../cpu.js";
import type { BlockFn, RegionTab } from "../decode.js";
import * as regsNs from "../regs.js";
import * as arenaNs from "./arena.js";
import { I32, type ModuleSpec, moduleBytes } from "./emit.js";
import {
  BLOCK_TYPE,
  type BlockPlan,
  blockBody,
  CHAIN_LOCALS,
  CHAIN_TYPE,
  chainBody,
  HUB_LOCALS,
  HUB_TYPE,
  hubBody,
  IMPORT_PARAMS,
  IMPORT_TYPES,
  IMPORTS,
  LOCALS,
  type Site,
  THUNK_TYPES,
  THUNKS,
  TYPES,
  thunkBody,
} from "./gen.js";

// Module-level copies of imported bindings (the io words' indexes, read at each block and chain
// entry): each use of an imported binding in optimized code costs a module-cell load and a hole
// check.
const { ESP, SS } = regsNs;
const {
  CHAIN_IDS,
  chainAddress,
  codeBlocks,
  IO_BAIL,
  IO_BLK,
  IO_DONE,
  IO_EIP,
  IO_FAULT,
  IO_FLAGS,
  IO_FLAT,
  IO_HOPS,
  IO_LZA,
  IO_LZB,
  IO_LZOP,
  IO_LZRES,
  IO_LZSIZE,
  IO_RBLOCKS,
  IO_RDMASK,
  IO_SAVEDESP,
  IO_SS32,
  IO_STOP,
  IO_WRMASK,
  tlbAddress,
} = arenaNs;

const LOCAL_TYPES: number[] = new Array<number>(LOCALS).fill(I32);
/** Blocks per module. */
export const WASM_BATCH = 32;
/** A compiled block (gen.ts BLOCK_TYPE), only ever called through the table. */
type BlockExport = (left: number, eip: number, done: number) => number[];
/** The most a call may retire (the budget is passed as an i32). */
const MAX_LEFT = 0x3fffffff;

/**
 * A block the back end was given, from add() until its slot holds another block (release):
 * its JS function and, once compiled, its wasm wrapper and table entry.
 */
interface Known {
  slot: number;
  js: BlockFn;
  wasm: BlockFn | null;
  /** Its table entry (-1: not compiled yet). */
  index: number;
  /** Its id in the chain's arrays (0: none left; never chained). */
  id: number;
  /** The body's bytes as a string: the key of a function shared by identical blocks ("" once placed). */
  key: string;
  /** The body until it is compiled or placed as another's twin (null after). */
  body: number[] | null;
  /** Ends in iret: chained unless chainIret is off. */
  iret: boolean;
  /** The JS region table holding it (link), and its slotOf index (frame block + page offset). */
  tab: RegionTab | null;
  pos: number;
  /** The handlers the body calls, by index (its own: a shared function calls each block's). */
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
   * Chains (link()): a JS region enters a page's wasm blocks through the chain, which runs
   * them one after another inside wasm (off: each is a call from the JS region).
   */
  chain = true;
  /**
   * A chain goes on in the page EIP leaves to, inside wasm, where the JS region would hop
   * (Cpu.linkPages; off: it returns to the JS region at each crossing).
   */
  hop = true;
  /**
   * Blocks ending in iret are chained (link(); off, tests: the JS region calls them, and the
   * chain stops before them).
   */
  chainIret = true;
  // Counters, for tests and benches.
  runs = 0;
  blocks = 0;
  modules = 0;
  inline = 0;
  handlers = 0;
  /** Handler calls made (a form inline with a handler for its slow path: how often it took it). */
  calls = 0;
  private pending: Known[] = [];
  /**
   * Modules compile synchronously until the host refuses (a browser's main thread, above
   * 4 KB), then in the background: the blocks run as JS until theirs is in (tests clear it).
   */
  syncCompile = true;
  private readonly compiling = new Set<Promise<void>>();
  /** Blocks by first slot (released when a slot's block changes). */
  private readonly known = new Map<number, Known>();
  /** Blocks by chain id, and the ids free (id 0 is never given). */
  private readonly byId: (Known | null)[] = [null];
  private readonly idFree: number[] = [];
  /** The chain's arrays in the arena (arena.ts): lengths, table entries, page maps (Uint16). */
  private readonly chainLens: Uint8Array;
  private readonly chainIndex: Int32Array;
  private readonly chainMaps: Uint16Array;
  private readonly mapsAt: number;
  /** Per frame: the frame block whose map is the frame's, plus one (DecodeCache.chainPage). */
  private readonly chainPages: Uint16Array;
  /** chain(left, pb, map, hop) runs a page's chained blocks, and those of the pages it crosses to (gen.ts chainBody). */
  private readonly runChain: (left: number, pb: number, map: number, hop: number) => number;
  /** The run's end and fetch-window drops at a chain's entry (an import that moves one stops it). */
  private end0 = 0;
  private drops0 = 0;
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
  /** The running block's handler sites (null: a chain's, by io[IO_BLK] in byId). */
  private curSites: Site[] | null = null;
  /** Blocks that reused a compiled function (tests, benches). */
  reused = 0;
  /** Blocks a chain ran after the first, inside wasm (tests, benches). */
  chainRuns = 0;
  /** Page crossings a chain took inside wasm (also counted in Cpu.regionHops). */
  chainHops = 0;
  /** #PFs taken by a memory import and returned to the wrapper, not thrown (tests, benches). */
  heldFaults = 0;
  /** Block runs that did not start, a segment they took as flat not being so (run as JS). */
  bails = 0;
  private readonly io: Int32Array;
  private readonly stateAt: number;
  /** The shared slow paths that open every block module (gen.ts THUNKS). */
  private readonly thunks: ModuleSpec["funcs"];
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
    // The wasm types of the imports (gen.ts IMPORT_PARAMS) must be the JS functions' own.
    const fns = this.imports();
    for (let i = 0; i < IMPORTS.length; i++) {
      const f = fns[IMPORTS[i]] as (...a: number[]) => number;
      if (f.length !== IMPORT_PARAMS[i])
        throw new Error(`wasm import ${IMPORTS[i]}: ${f.length} parameters, typed ${IMPORT_PARAMS[i]}`);
    }
    this.thunks = THUNKS.map((_, j) => ({ type: THUNK_TYPES[j], locals: [], body: thunkBody(a.state, j) }));
    this.tlbAt = tlbAddress(a);
    this.memory = a.memory;
    const ch = chainAddress(a);
    const b = a.memory.buffer;
    this.chainLens = new Uint8Array(b, ch.lens, CHAIN_IDS);
    this.chainIndex = new Int32Array(b, ch.index, CHAIN_IDS);
    const blocks = codeBlocks(cpu.memSize >>> 12);
    this.chainMaps = new Uint16Array(b, ch.maps, blocks << 12);
    this.mapsAt = ch.maps;
    const frames = cpu.memSize >>> 12;
    this.chainPages = new Uint16Array(b, ch.pages, frames);
    // The maps are indexed by the decode cache's frame blocks: one of another size never chains.
    if (cpu.dc.emptyBlock !== blocks << 12) this.chain = false;
    else cpu.dc.chainPage = this.chainPages;
    const at = { ...ch, tlb: this.tlbAt, frames };
    const [hub, chain] = this.instantiate(
      [
        { type: HUB_TYPE, locals: new Array<number>(HUB_LOCALS).fill(I32), body: hubBody(this.stateAt) },
        {
          type: CHAIN_TYPE,
          locals: new Array<number>(CHAIN_LOCALS).fill(I32),
          body: chainBody(this.stateAt, at),
        },
      ],
      0,
      1,
    );
    this.hub = hub as (i: number, left: number) => number;
    this.runChain = chain as (left: number, pb: number, map: number, hop: number) => number;
  }

  /** Queues the block whose JS function is js (compiled from plan). */
  add(plan: BlockPlan, js: BlockFn): void {
    const dc = this.cpu.dc;
    const sites: Site[] = [];
    // The segments flat now: the block leaves their checks out, and does not run once one is not.
    const { body, inline } = blockBody(dc, plan, this.stateAt, this.tlbAt, sites, this.io[IO_FLAT]);
    this.inline += inline;
    this.handlers += plan.flags.length - inline;
    const slot = plan.slots[0];
    // The slot's earlier block (its frame was dropped, the slot given out again) is gone.
    const old = this.known.get(slot);
    if (old !== undefined) this.release(old);
    const k: Known = {
      slot,
      js,
      wasm: null,
      index: -1,
      id: this.idFree.pop() ?? (this.byId.length < CHAIN_IDS ? this.byId.length : 0),
      key: bytesKey(body),
      body,
      iret: ((dc.op[plan.slots[plan.slots.length - 1]] >> 3) & 0x1ff) === 0xcf,
      tab: null,
      pos: -1,
      sites,
      offs: Int32Array.from(plan.offs),
      flags: Uint8Array.from(plan.flags),
    };
    if (k.id !== 0) this.byId[k.id] = k;
    this.known.set(slot, k);
    const index = this.shared.get(k.key);
    if (index !== undefined) {
      this.reused++;
      // Another domain's identical block was compiled: this one's body and key are not needed
      // again (kept, they cost each domain the bytes of all its blocks, as numbers and string).
      k.body = null;
      k.key = "";
      this.place(k, index);
      return;
    }
    this.pending.push(k);
    if (this.pending.length >= this.batch) this.flush();
  }

  /**
   * Forgets block k, whose slot holds another block or none (its frame was written, the
   * cache flushed): its id, and its table entry with the last of its users. No region can
   * call it any more: a slot's block changes only through DecodeCache.setBlock, which drops
   * the regions of the slot's frame (invalidateFrame, flush) before a slot is given again,
   * and a region running meanwhile returns at the fetch-window drop that came with the write.
   */
  private release(k: Known): void {
    if (this.known.get(k.slot) === k) this.known.delete(k.slot);
    if (k.id !== 0) {
      this.chainLens[k.id] = 0;
      if (k.pos >= 0 && this.chainMaps[k.pos] === k.id) this.chainMaps[k.pos] = 0;
      this.byId[k.id] = null;
      this.idFree.push(k.id);
      k.id = 0;
    }
    if (k.index >= 0 && --this.users[k.index] === 0) {
      this.shared.delete(this.keyAt[k.index]);
      this.table.set(k.index, null);
      this.tableFree.push(k.index);
    }
    k.index = -1;
    k.wasm = null;
    k.tab = null;
  }

  /** Compiles the queued blocks into one module and puts them in place of their JS functions. */
  flush(): void {
    // Blocks released while queued are not compiled.
    const pending = this.pending.filter((k) => this.known.get(k.slot) === k);
    this.pending = [];
    if (pending.length === 0) return;
    const funcs = [
      ...this.thunks,
      ...pending.map((k) => ({ type: BLOCK_TYPE, locals: LOCAL_TYPES, body: k.body as number[] })),
    ];
    const indexes = pending.map((_, i) => THUNKS.length + i);
    for (const k of pending) k.body = null;
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
  private install(pending: Known[], fns: BlockExport[]): void {
    for (let i = 0; i < pending.length; i++) {
      const k = pending[i];
      // Released meanwhile (a background compile): its function is not kept.
      if (this.known.get(k.slot) !== k) continue;
      let index = this.shared.get(k.key);
      if (index === undefined) {
        index = this.tableFree.pop() ?? this.tableUsed++;
        if (index >= this.table.length) this.table.grow(this.table.length);
        this.table.set(index, fns[i]);
        this.shared.set(k.key, index);
        this.keyAt[index] = k.key;
        this.users[index] = 0;
      }
      k.key = "";
      this.place(k, index);
    }
  }

  /** Puts the function at table entry index in place of the JS function of block k. */
  private place(k: Known, index: number): void {
    const dc = this.cpu.dc;
    // Dropped (its frame written) or replaced meanwhile: released at the next sweep or add.
    if (dc.blockFn[k.slot] !== k.js || this.known.get(k.slot) !== k) return;
    k.index = index;
    this.users[index]++;
    const w = this.wrapper(k, index);
    dc.blockFn[k.slot] = w;
    k.wasm = w;
    if (k.id !== 0) {
      this.chainIndex[k.id] = index;
      this.chainLens[k.id] = k.flags.length;
    }
    const tab = dc.regionTab[k.slot];
    if (tab !== null) {
      const at = tab.B.indexOf(k.js);
      if (at >= 0) tab.B[at] = tab === k.tab ? this.chained(k) : w;
    }
    this.blocks++;
  }

  /** Resolves when the background compiles under way have put their blocks in place. */
  async compiled(): Promise<void> {
    while (this.compiling.size > 0) await Promise.all(this.compiling);
  }

  /** Releases the blocks whose slot no longer holds them (their frame was written, the cache flushed). */
  private sweep(): void {
    const dc = this.cpu.dc;
    for (const k of [...this.known.values()]) {
      const fn = dc.blockFn[k.slot];
      if (fn !== k.js && fn !== k.wasm) this.release(k);
    }
  }

  /** Table entries, shared bodies and chain ids held (tests: they stay bounded under code turnover). */
  held(): { entries: number; bodies: number; ids: number; known: number } {
    return {
      entries: this.tableUsed - this.tableFree.length,
      bodies: this.shared.size,
      ids: this.byId.length - 1 - this.idFree.length,
      known: this.known.size,
    };
  }

  /**
   * The region of the frame block at blockOff was built (blocks.ts compileRegion: its table
   * t, blocks at page offsets offs, in slots): the page's map is written afresh with the
   * ids of its wasm blocks, and t gets, in place of each, its entry into the chain (a block
   * compiled later gets both when its module is in, place()). The JS region calls the entry
   * as it would the block, and the chain runs the block and those after it in the page,
   * inside wasm, while the JS region's rules let it go on (gen.ts chainBody).
   */
  link(blockOff: number, offs: number[], slots: number[], t: RegionTab): void {
    if (!this.chain) return;
    this.chainMaps.fill(0, blockOff, blockOff + 0x1000);
    // A chain crossing into the frame finds this map (until the frame's code is dropped).
    const frame = this.cpu.dc.frameOf(blockOff);
    if (frame >= 0 && frame < this.chainPages.length) this.chainPages[frame] = (blockOff >>> 12) + 1;
    for (let j = 0; j < slots.length; j++) {
      const k = this.known.get(slots[j]);
      // A block ending in iret is chained too: an iret that changes CS or CPL (or arms the
      // debug state: the run's end) stops the chain as any such import does (IO_STOP), and
      // one at the same level and CS goes on at its return address, on this page or, through
      // the hop's checks, another, as the JS region would after it.
      if (k === undefined || k.id === 0 || (k.iret && !this.chainIret)) continue;
      k.tab = t;
      k.pos = blockOff + offs[j];
      const i = t.X[offs[j]];
      if (k.wasm !== null && t.B[i] === k.wasm) t.B[i] = this.chained(k);
    }
  }

  /** The block a chain runs (IO_BLK). */
  private running(): Known {
    return this.byId[this.io[IO_BLK]] as Known;
  }

  /** Block k (in wasm) in its page's map, and its entry into the chain there. */
  private chained(k: Known): BlockFn {
    this.chainMaps[k.pos] = k.id;
    return this.chainEntry(k.wasm as BlockFn, this.mapsAt + (k.pos & ~0xfff) * 2);
  }

  /** The region's entry into the chain at a wasm block w, on the page whose map is at address `at`. */
  private chainEntry(w: BlockFn, at: number): BlockFn {
    const io = this.io;
    return (c) => {
      let again = false;
      let r0: number;
      let n: number;
      for (;;) {
        r0 = c.retired;
        this.curSites = null;
        this.enter(c);
        io[IO_RBLOCKS] = 0;
        io[IO_STOP] = 0;
        io[IO_HOPS] = 0;
        this.end0 = c.runEnd;
        this.drops0 = c.fetchDrops;
        try {
          n = this.runChain(
            Math.min(c.runEnd - r0, MAX_LEFT),
            c.fetchBase,
            at,
            c.linkPages && this.hop ? 1 : 0,
          );
        } catch (x) {
          this.chainFault(c, r0);
          c.held(x);
          return;
        }
        if (io[IO_FAULT] !== 0) {
          // A #PF an import returned (the block returned -1, and the chain at IO_STOP).
          io[IO_FAULT] = 0;
          this.chainFault(c, r0);
          c.held(CPU_FAULT);
          // Bounced at the site (Cpu.tookInPlace), the run going on and the fetch window kept
          // (CS, CPL, the TLB as the chain took them): the chain again, at the handler, as the
          // JS region would enter it there (its hop from the region's page; the region's count).
          if (c.runEnd === 0 || c.fetchDrops !== this.drops0 || c.retired >= c.runEnd) return;
          again = true;
          c.regionBlocks++;
          continue;
        }
        if (again && io[IO_RBLOCKS] === 0) {
          // No chained block at the handler: the region goes on there.
          c.regionBlocks--;
          return;
        }
        break;
      }
      if (io[IO_BAIL] !== 0) {
        // The last block did not start (a segment it took as flat is not): the chain's state
        // before it, then its JS function.
        io[IO_BAIL] = 0;
        io[IO_RBLOCKS]--;
        const k = this.running();
        if (io[IO_RBLOCKS] !== 0) {
          this.leave(c, r0 + n);
          this.counts(c);
        }
        this.bails++;
        k.js(c);
        return;
      }
      if (io[IO_RBLOCKS] === 0) {
        // Nothing ran (cannot happen: the region checked what the chain checks): the block.
        w(c);
        return;
      }
      this.leave(c, r0 + n);
      this.counts(c);
    };
  }

  /** A fault in the chain entered after r0 retired, in the block it recorded (IO_BLK, IO_DONE). */
  private chainFault(c: Cpu, r0: number): void {
    const io = this.io;
    const k = this.running();
    this.unwind(c, io[IO_EIP], r0, k.offs, k.flags);
    this.counts(c);
  }

  /**
   * Blocks run by a chain (the JS region counted the first), and its page crossings (the JS
   * region's own page and fetch window stay where it entered the chain: when the chain ends
   * on another page the JS region hops there again, a hop of its own).
   */
  private counts(c: Cpu): void {
    const io = this.io;
    const n = io[IO_RBLOCKS];
    c.regionBlocks += n - 1;
    this.runs += n;
    this.chainRuns += n - 1;
    c.regionHops += io[IO_HOPS];
    this.chainHops += io[IO_HOPS];
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

  private wrapper(k: Known, index: number): BlockFn {
    const hub = this.hub;
    const O = k.offs;
    const F = k.flags;
    const sites = k.sites;
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
      if (n === 0) {
        // It did not start (a segment it took as flat is not, IO_BAIL): its JS function.
        this.io[IO_BAIL] = 0;
        this.bails++;
        k.js(c);
        return;
      }
      if (n < 0) {
        // A #PF an import returned (IO_FAULT): unwound as a thrown one.
        this.io[IO_FAULT] = 0;
        this.unwind(c, e0, r0, O, F);
        c.held(CPU_FAULT);
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
      // Only the hub's module (hub, chain) calls through the table. Block modules importing it
      // made each table.grow update every instance: 0.8 s of the XenLinux bench's 21 s of CPU.
      table: funcs[0]?.type === HUB_TYPE,
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
    /**
     * After JS run by an import: a chain stops when it moved the fetch window (a code write,
     * a change of CS, CPL or paging) or the run's end, as the JS region does.
     */
    const seen = () => {
      if (c.fetchDrops !== this.drops0 || c.runEnd !== this.end0) io[IO_STOP] = 1;
    };
    /**
     * Before an accessor: the segment check and the walks of the pages of an access of `size`
     * bytes at seg:off, in the accessor's order (its page, then the next page's first byte if
     * it crosses). false when a walk took a #PF, which Cpu.reach recorded instead of throwing:
     * the import returns, the block returns -1 (gen.ts held) and its wrapper unwinds. (A host
     * debugger runs the CPU one instruction at a time: no block runs under one.)
     */
    const reach = (s: number, o: number, size: number, write: boolean): boolean => {
      const lin = write ? c.segWrite(s, o, size) : c.segRead(s, o, size);
      if (c.reach(lin, write) && ((lin & 0xfff) <= 0x1000 - size || c.reach((lin + size) & ~0xfff, write)))
        return true;
      io[IO_FAULT] = 1;
      io[IO_STOP] = 1;
      this.heldFaults++;
      return false;
    };
    /** The offset of a push of 4 bytes, or of a pop, as Cpu.push32 and pop32 make it. */
    const sp = (push: boolean) => {
      const v = push ? c.regs[ESP] - 4 : c.regs[ESP];
      return c.stack32() ? v | 0 : v & 0xffff;
    };
    return {
      m: this.memory,
      rd8: (k: number, s: number, o: number) => {
        this.cur = k;
        if (!reach(s, o, 1, false)) return 0;
        const v = c.rd8(s, o);
        seen();
        return v;
      },
      rd16: (k: number, s: number, o: number) => {
        this.cur = k;
        if (!reach(s, o, 2, false)) return 0;
        const v = c.rd16(s, o);
        seen();
        return v;
      },
      rd32: (k: number, s: number, o: number) => {
        this.cur = k;
        if (!reach(s, o, 4, false)) return 0;
        const v = c.rd32(s, o);
        seen();
        return v;
      },
      wr8: (k: number, s: number, o: number, v: number) => {
        this.cur = k;
        if (!reach(s, o, 1, true)) return 0;
        c.wr8(s, o, v);
        seen();
        return c.codeHit;
      },
      wr32: (k: number, s: number, o: number, v: number) => {
        this.cur = k;
        if (!reach(s, o, 4, true)) return 0;
        c.wr32(s, o, v);
        seen();
        return c.codeHit;
      },
      wr16: (k: number, s: number, o: number, v: number) => {
        this.cur = k;
        if (!reach(s, o, 2, true)) return 0;
        c.wr16(s, o, v);
        seen();
        return c.codeHit;
      },
      rmwRd8: (k: number, s: number, o: number) => {
        this.cur = k;
        if (!reach(s, o, 1, true)) return 0;
        const v = c.rmwRd8(s, o);
        seen();
        return v;
      },
      rmwRd32: (k: number, s: number, o: number) => {
        this.cur = k;
        if (!reach(s, o, 4, true)) return 0;
        const v = c.rmwRd32(s, o);
        seen();
        return v;
      },
      rmwRd16: (k: number, s: number, o: number) => {
        this.cur = k;
        if (!reach(s, o, 2, true)) return 0;
        const v = c.rmwRd16(s, o);
        seen();
        return v;
      },
      rmwWr16: (k: number, v: number) => {
        this.cur = k;
        c.rmwWr16(v);
        seen();
        return c.codeHit;
      },
      rmwWr8: (k: number, v: number) => {
        this.cur = k;
        c.rmwWr8(v);
        seen();
        return c.codeHit;
      },
      rmwWr32: (k: number, v: number) => {
        this.cur = k;
        c.rmwWr32(v);
        seen();
        return c.codeHit;
      },
      push: (k: number, v: number) => {
        this.cur = k;
        if (!reach(SS, sp(true), 4, true)) return 0;
        c.push32(v);
        seen();
        return c.codeHit;
      },
      pop: (k: number) => {
        this.cur = k;
        if (!reach(SS, sp(false), 4, false)) return 0;
        const v = c.pop32();
        seen();
        return v;
      },
      fault: (k: number, v: number, e: number) => {
        this.cur = k;
        return c.fault(v, e);
      },
      call: (k: number, i: number) => {
        this.cur = k;
        this.calls++;
        const s = (this.curSites ?? this.running().sites)[i];
        flagsIn(c, io);
        // As in a JS block: retired as at the block's entry (plus finished passes), EIP too
        // except for a control transfer, which starts from the instruction's end.
        c.retired = this.r0 + io[IO_DONE];
        if (s.control) c.eip = (io[IO_EIP] + s.end) | 0;
        s.fn(c as never, s.slot);
        flagsOut(c, io);
        if (s.control) io[IO_EIP] = c.eip;
        seen();
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
