/**
 * Test helper: the CPU state after a run() slice, for comparing two runs of the same code
 * (compiled blocks against the interpreter).
 */
import type { Cpu } from "../../src/cpu/cpu.js";
import { Exit } from "../../src/cpu/regs.js";

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

/** How many compiled blocks the CPU's decoded-instruction cache holds. */
export function compiledBlocks(cpu: Cpu): number {
  return cpu.dc.blockFn.filter((f) => f !== null).length;
}
