/**
 * A pending block (blocks.ts interpreted: run through its handlers until its wasm is in) keeps
 * each instruction's end and the next one's start relative to the block's start, packed in 16
 * bits each. A block that follows a jmp back to earlier in its page has negative offsets, one
 * that follows a call to the page's far end large ones: both must run as the interpreter does.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pendingClock, setInterpretPending } from "../src/cpu/blocks.js";
import { Cpu } from "../src/cpu/cpu.js";
import { ESP, Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlices } from "./helpers/cpu-state.js";

const CODE = 0x1000;
const DATA = 0x4000;
const ENTRY = CODE + 0x800;
const HEAD = ENTRY + 10;
const BACK = CODE + 0x100;
const FAR = CODE + 0xf00;

/** A rel32 from the end of an instruction of len bytes at at to target. */
const rel = (at: number, len: number, target: number) => d(target - (at + len));

/**
 * ENTRY: mov ecx,n; mov esi,DATA. HEAD: add eax,ecx; jmp BACK. BACK: mov [esi],eax; add esi,4;
 * call FAR; dec ecx; jnz HEAD; hlt. FAR: inc ebx; ret. One block from HEAD follows the jmp back
 * (offsets below its start), the call to FAR (above) and the return.
 */
function program(mem: Uint8Array, n: number): void {
  mem.set([0xb9, ...d(n), 0xbe, ...d(DATA)], ENTRY);
  mem.set([0x01, 0xc8, 0xe9, ...rel(HEAD + 2, 5, BACK)], HEAD);
  const call = BACK + 5;
  const jnz = call + 6;
  mem.set(
    [0x89, 0x06, 0x83, 0xc6, 0x04, 0xe8, ...rel(call, 5, FAR), 0x49, 0x0f, 0x85, ...rel(jnz, 6, HEAD), 0xf4],
    BACK,
  );
  mem.set([0x43, 0xc3], FAR);
}

interface Run {
  states: CpuState[];
  mem: Uint8Array;
  interpreted: number;
  given: number;
}

/** n passes interpreted (pending: false) or in blocks that stay pending (never queued). */
function run(n: number, pending: boolean): Run {
  const cpu = new Cpu(pending ? allocRam(1 << 20) : new Uint8Array(1 << 20));
  cpu.backend = pending ? "wasm" : "js";
  cpu.resetFlat32();
  program(cpu.mem8, n);
  cpu.eip = ENTRY;
  cpu.regs[ESP] = 0x8000;
  cpu.blockThreshold = pending ? 2 : 0;
  cpu.regionThreshold = pending ? 2 : 0;
  setInterpretPending(true, 128, 1 << 30);
  const states = runSlices(cpu, 997, 1000);
  setInterpretPending(true);
  const wasm = wasmBackend(cpu);
  return {
    states,
    mem: cpu.mem8.slice(DATA, DATA + 4 * n + 16),
    interpreted: pendingClock(cpu.dc).runs,
    given: (wasm?.inline ?? 0) + (wasm?.handlers ?? 0),
  };
}

describe("pending blocks' packed offsets", () => {
  it("a block through a jmp back and a call to the page's end runs as the interpreter does", () => {
    const a = run(3000, false);
    const last = a.states[a.states.length - 1];
    assert.equal(last.exit, Exit.Halt);
    assert.equal(last.eip, BACK + 18, "after the hlt");
    const b = run(3000, true);
    assert.deepEqual(b.states, a.states);
    assert.deepEqual(b.mem, a.mem, "memory");
    // The loop ran as one pending block a pass, never handed to the back end.
    assert.ok(b.interpreted > 2900, `${b.interpreted} pending block runs`);
    assert.equal(b.given, 0);
  });
});
