/**
 * Blocks for the wasm back end before their module is in (blocks.ts interpreted): they run
 * through their handlers as the run loop would, are queued for the back end only once they
 * have run queueAt times (a block that goes cold before is never made in wasm), and their
 * batch is compiled at their pendingRuns'th run after, full or not (or when it fills); a
 * region built over them meanwhile is built again when they are queued, so that the back end
 * chains them once compiled. The run
 * is the interpreter's all along: states after every slice, memory, and a #GP raised by an
 * interpreted block.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { heatUp, pendingClock, pendingStats, setInterpretPending } from "../src/cpu/blocks.js";
import { Cpu } from "../src/cpu/cpu.js";
import { DS, ESP, Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlices } from "./helpers/cpu-state.js";

const CODE = 0x1000;
const DATA = 0x4000;
const COPY = 0x6000;

/**
 * mov ecx,n; mov esi,DATA; (10) add eax,ecx; mov [esi],eax; add esi,4; cmp ecx,n/2; ja +1;
 * inc ebx; dec ecx; jnz (10); hlt. A store a pass, 4 bytes further each time.
 */
function loop(n: number): number[] {
  return [
    [0xb9, ...d(n)],
    [0xbe, ...d(DATA)],
    [0x01, 0xc8],
    [0x89, 0x06],
    [0x83, 0xc6, 0x04],
    [0x81, 0xf9, ...d(n >> 1)],
    [0x77, 0x01],
    [0x43],
    [0x49],
    [0x75, 0xed],
    [0xf4],
  ].flat();
}

interface Run {
  states: CpuState[];
  mem: Uint8Array;
  /** Instructions handed to the wasm back end, wasm block runs, modules. */
  given: number;
  wasmRuns: number;
  /** Blocks run one after another inside wasm (WasmBackend.chainRuns). */
  chained: number;
  /** Pending runs on this run's CPU (its clock from clock0) and batches they compiled. */
  interpreted: number;
  /** The clock after the run, as read. */
  clock: number;
  flushes: number;
}

/**
 * The loop of n passes (DS limit: the store faults at pass `faultAt`) interpreted (on null)
 * or in wasm blocks with blocks interpreted until queueAt/pendingRuns (on: interpretPending).
 */
function run(
  n: number,
  on: boolean | null,
  queueAt?: number,
  pendingRuns?: number,
  faultAt = 0,
  copy = 0,
  clock0 = 0,
): Run {
  const cpu = new Cpu(on === null ? new Uint8Array(1 << 20) : allocRam(1 << 20));
  cpu.backend = on === null ? "js" : "wasm";
  cpu.resetFlat32();
  if (faultAt > 0) cpu.loadSegmentCache(DS, 0x10, 0, DATA + 4 * faultAt - 2, 0x4093);
  cpu.mem8.set(loop(n), CODE);
  if (copy !== 0) {
    // The loop again at page offset 0 of copy, and a hlt as far again: each copy's hlt is a
    // jmp rel32 to the next, the same bytes in both (so their blocks are the same code).
    const last = loop(n).length - 1;
    const jmp = [0xe9, ...d(copy - CODE - (last + 5))];
    cpu.mem8.set(jmp, CODE + last);
    cpu.mem8.set(loop(n), copy);
    cpu.mem8.set(jmp, copy + last);
    cpu.mem8[2 * copy - CODE] = 0xf4;
  }
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  cpu.blockThreshold = on === null ? 0 : 2;
  cpu.regionThreshold = on === null ? 0 : 2;
  setInterpretPending(on !== false, pendingRuns, queueAt);
  pendingClock(cpu.dc).runs = clock0;
  const before = { ...pendingStats };
  const states = runSlices(cpu, 991, 1000);
  setInterpretPending(true);
  const wasm = wasmBackend(cpu);
  return {
    states,
    mem: cpu.mem8.slice(DATA, DATA + 4 * n + 16),
    given: (wasm?.inline ?? 0) + (wasm?.handlers ?? 0),
    wasmRuns: wasm?.runs ?? 0,
    chained: wasm?.chainRuns ?? 0,
    interpreted: (pendingClock(cpu.dc).runs - clock0) | 0,
    clock: pendingClock(cpu.dc).runs,
    flushes: pendingStats.flushes - before.flushes,
  };
}

function same(a: Run, b: Run, what: string): void {
  assert.deepEqual(b.states, a.states, what);
  assert.deepEqual(b.mem, a.mem, `${what}: memory`);
}

describe("blocks interpreted until their wasm module is in", () => {
  it("a block that goes cold before queueAt runs is never given to the back end", () => {
    const a = run(12, null);
    const b = run(12, true, 32);
    same(a, b, "queued at 32");
    assert.ok(b.interpreted > 5, `${b.interpreted} interpreted block runs`);
    assert.equal(b.given, 0, "a lukewarm block was made in wasm");
    // Queued when made, as before: the same blocks are given to the back end.
    const c = run(12, true, 0);
    same(a, c, "queued when made");
    assert.ok(c.given > 0, "queued when made: nothing given to the back end");
  });

  it("a code's run count halves for each 65,536 interpreted runs of any code on its CPU since its last", () => {
    const clock = { runs: 3 << 16 };
    const heat = { n: 0, at: 3 };
    for (let i = 1; i <= 2047; i++) assert.equal(heatUp(heat, clock), i);
    // Runs within the same window count one each.
    clock.runs = (4 << 16) - 1;
    assert.equal(heatUp(heat, clock), 2048);
    // One window on: halved, then counted.
    clock.runs = 4 << 16;
    assert.equal(heatUp(heat, clock), 1025);
    assert.equal(heat.at, 4);
    // Three windows on: an eighth.
    clock.runs = 7 << 16;
    assert.equal(heatUp(heat, clock), 129);
    // 31 windows or more (or the clock wrapped back): from nothing.
    clock.runs = 38 << 16;
    assert.equal(heatUp(heat, clock), 1);
    heat.n = 500;
    clock.runs = 37 << 16;
    assert.equal(heatUp(heat, clock), 1);
  });

  it("the clock wraps as an int32 and decays across its wraps as anywhere else", () => {
    // 600 runs before a window ends: the hot block's count halves there, so it is queued
    // later than on a clock that crosses no window, and as late wherever the window ends.
    const QUEUE = 1000;
    const calm = run(20000, true, QUEUE, 128);
    const starts = [0x10000 - 600, 2 ** 31 - 600, 2 ** 32 - 600];
    const late = starts.map((c0) => run(20000, true, QUEUE, 128, 0, 0, c0 | 0));
    assert.ok(
      late[0].interpreted > calm.interpreted + 250,
      `${late[0].interpreted} runs, ${calm.interpreted}`,
    );
    starts.forEach((c0, i) => {
      const r = late[i];
      const what = `clock from ${c0.toString(16)}`;
      same(calm, r, what);
      assert.deepEqual(
        [r.interpreted, r.flushes, r.given, r.wasmRuns, r.chained],
        [late[0].interpreted, late[0].flushes, late[0].given, late[0].wasmRuns, late[0].chained],
        what,
      );
      // Read back as an int32 (past 2^31: negative).
      assert.equal(r.clock, (c0 + r.interpreted) | 0, what);
    });
  });

  it("runs are counted over every copy of the same code", () => {
    // Each copy's loop runs 24 passes: neither alone reaches queueAt (32), the two together do.
    const a = run(24, null, undefined, undefined, 0, COPY);
    const b = run(24, true, 32, undefined, 0, COPY);
    same(a, b, "two copies");
    assert.ok(b.given > 0, "the second copy was not queued");
    const c = run(24, true, 32);
    assert.equal(c.given, 0, "one copy of 24 passes was queued");
  });

  it("a hot block is queued, compiled at its pendingRuns'th run after, then runs in wasm", () => {
    const a = run(20000, null);
    for (const [queueAt, pendingRuns] of [
      [32, 128],
      [0, 128],
      [2, 3],
    ]) {
      const b = run(20000, true, queueAt, pendingRuns);
      const what = `queued at ${queueAt}, compiled ${pendingRuns} runs after`;
      same(a, b, what);
      // Two or three blocks never fill a batch: their own runs compiled it.
      assert.ok(b.flushes > 0, `${what}: no batch compiled by its runs`);
      // Interpreted up to then, in wasm after (a wasm run goes round the loop while it can).
      const runs = b.interpreted;
      assert.ok(runs >= queueAt + pendingRuns - 1 && runs < 1000, `${what}: ${runs} interpreted runs`);
      assert.ok(b.wasmRuns > 100, `${what}: ${b.wasmRuns} wasm block runs`);
      // The region was built before the block was queued: built again then, it chains it.
      assert.ok(b.chained > 50, `${what}: ${b.chained} chained block runs`);
    }
    // interpretPending off: JS functions until the region build compiles the batch.
    const c = run(20000, false);
    same(a, c, "JS functions first");
    assert.equal(c.interpreted, 0);
    assert.ok(c.wasmRuns > 100, `JS functions first: ${c.wasmRuns} wasm block runs`);
  });

  it("a #GP raised inside an interpreted block leaves the interpreter's state", () => {
    for (const faultAt of [5, 40, 300]) {
      const a = run(20000, null, undefined, undefined, faultAt);
      const last = a.states[a.states.length - 1];
      assert.equal(last.exit, Exit.Exception);
      assert.equal(last.vector, 13);
      assert.equal(last.eip, CODE + 12, "at the store");
      const b = run(20000, true, 32, 128, faultAt);
      same(a, b, `#GP at pass ${faultAt}`);
      assert.ok(b.interpreted > 0, `#GP at pass ${faultAt}: no interpreted block runs`);
    }
  });
});
