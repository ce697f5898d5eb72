/**
 * Test helper: the CPU state after a run() slice, for comparing two runs of the same code
 * (compiled blocks against the interpreter).
 */
import assert from "node:assert/strict";
import { Cpu } from "../../src/cpu/cpu.js";
import { Exit } from "../../src/cpu/regs.js";
import { wasmBackend } from "../../src/cpu/wasm/backend.js";
import { allocRam } from "../../src/machine/ram.js";

export interface CpuState {
  exit: Exit;
  retired: number;
  eip: number;
  regs: number[];
  flags: number;
  vector: number;
}

/** Runs cpu for budget instructions and returns the state it stopped in. */
export function runSlice(cpu: Cpu, budget: number): CpuState {
  const exit = cpu.run(budget);
  return {
    exit,
    retired: cpu.retiredTotal,
    eip: cpu.eip,
    regs: Array.from(cpu.regs),
    flags: cpu.getFlags(),
    vector: exit === Exit.Exception ? cpu.exitVector : -1,
  };
}

/** Runs cpu in slices of `slice` instructions until it stops on anything but the budget (at most max slices); the state after each. */
export function runSlices(cpu: Cpu, slice: number, max: number): CpuState[] {
  const steps: CpuState[] = [];
  for (let i = 0; i < max; i++) {
    const s = runSlice(cpu, slice);
    steps.push(s);
    if (s.exit !== Exit.Budget) break;
  }
  return steps;
}

/** How many compiled blocks the CPU's decoded-instruction cache holds. */
export function compiledBlocks(cpu: Cpu): number {
  return cpu.dc.blockFn.filter((f) => f !== null).length;
}

/** How a CPU test runs guest code: interpreted, JS blocks, wasm blocks with the chain off or on. */
export type Variant = "interp" | "js" | "wasm" | "chain";

/**
 * A flat 32-bit CPU of `bytes` of RAM for a variant: the interpreter and JS blocks on a plain
 * buffer, wasm blocks (a module per block, so each is in wasm at once) on a wasm memory.
 */
export function variantCpu(variant: Variant, bytes: number, hot?: number): Cpu {
  const js = variant === "interp" || variant === "js";
  const cpu = new Cpu(js ? new Uint8Array(bytes) : allocRam(bytes));
  cpu.backend = js ? "js" : "wasm";
  const wasm = wasmBackend(cpu);
  if (wasm !== null) {
    wasm.batch = 1;
    wasm.chain = variant === "chain";
  }
  cpu.resetFlat32();
  // `hot`: block and region thresholds, off for the interpreter alone.
  if (hot !== undefined) cpu.blockThreshold = cpu.regionThreshold = variant === "interp" ? 0 : hot;
  return cpu;
}

/** A slice's state with the #PF's CR2 and error code (0 when it stopped otherwise). */
export interface FaultStep extends CpuState {
  cr2: number;
  error: number;
}

/**
 * Runs cpu in slices until it stops on anything but the budget or a #PF. At each #PF the host
 * makes the page at CR2 present and writable in the one page table at pt (the low 4 MiB) and
 * resumes, as a hypervisor bouncing the fault to a guest that maps the page would. `between`,
 * when given, runs after the i'th slice that ran out of budget (the host acting mid-run).
 */
export function traceMappingFaults(
  cpu: Cpu,
  slice: number,
  pt: number,
  between?: (i: number) => void,
): { steps: FaultStep[]; faults: number; cpu: Cpu } {
  const steps: FaultStep[] = [];
  const m = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  let faults = 0;
  for (let i = 0; i < 1_000_000; i++) {
    const s = runSlice(cpu, slice);
    const pf = s.exit === Exit.Exception && s.vector === 14;
    steps.push({ ...s, cr2: pf ? cpu.exitCr2 : 0, error: pf ? cpu.exitErrorCode : 0 });
    if (pf) {
      faults++;
      const at = pt + ((cpu.exitCr2 >>> 12) & 0x3ff) * 4;
      m.setUint32(at, m.getUint32(at, true) | 3, true);
      cpu.invlpg(cpu.exitCr2);
    } else if (s.exit !== Exit.Budget) break;
    else between?.(i + 1);
  }
  return { steps, faults, cpu };
}

/**
 * Runs cpu in slices of `slice` until it stops on anything but the budget; `twist`, when
 * given, runs once between two slices after 3,000 instructions retired (the host changing
 * something under a warm loop). The state after each slice.
 */
export function runTwisted(cpu: Cpu, slice: number, twist?: (cpu: Cpu) => void): CpuState[] {
  const steps: CpuState[] = [];
  let twisted = twist === undefined;
  for (let i = 0; i < 1_000_000; i++) {
    const s = runSlice(cpu, slice);
    steps.push(s);
    if (s.exit !== Exit.Budget) break;
    if (!twisted && cpu.retiredTotal >= 3000) {
      (twist as (cpu: Cpu) => void)(cpu);
      twisted = true;
    }
  }
  return steps;
}

/**
 * A variant's run is the interpreter's (a): the state after every slice, the exit's error code
 * and the first 4 MiB of memory.
 */
export function assertRunAs(
  a: { steps: CpuState[]; cpu: Cpu },
  b: { steps: CpuState[]; cpu: Cpu },
  variant: string,
): void {
  assert.deepEqual(b.steps, a.steps, variant);
  assert.equal(b.cpu.exitErrorCode, a.cpu.exitErrorCode, `${variant}: error code`);
  const mem = (c: Cpu) => Buffer.from(c.mem8.buffer, c.mem8.byteOffset, 0x400000);
  assert.ok(mem(a.cpu).equals(mem(b.cpu)), `${variant}: memory`);
}
