/**
 * Test helper: the CPU state after a run() slice, for comparing two runs of the same code
 * (compiled blocks against the interpreter).
 */
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
    retired: cpu.retired,
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
export function variantCpu(variant: Variant, bytes: number): Cpu {
  const js = variant === "interp" || variant === "js";
  const cpu = new Cpu(js ? new Uint8Array(bytes) : allocRam(bytes));
  cpu.backend = js ? "js" : "wasm";
  const wasm = wasmBackend(cpu);
  if (wasm !== null) {
    wasm.batch = 1;
    wasm.chain = variant === "chain";
  }
  cpu.resetFlat32();
  return cpu;
}
