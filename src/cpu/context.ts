/**
 * A saved register state: what a host keeps for a virtual CPU while another one runs on this
 * processor. save/restore copy every architectural register the host may switch.
 */
import type { Cpu } from "./cpu.js";
import { Fpu } from "./fpu.js";

export class CpuContext {
  readonly regs = new Int32Array(8);
  eip = 0;
  eflags = 0;
  readonly segSel = new Int32Array(8);
  readonly segBase = new Int32Array(8);
  readonly segLimit = new Int32Array(8);
  readonly segAttr = new Int32Array(8);
  cpl = 0;
  cr0 = 0;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  gdtrBase = 0;
  gdtrLimit = 0;
  idtrBase = 0;
  idtrLimit = 0;
  readonly dr = new Int32Array(8);
  /**
   * The x87 state (fninit state for a new context). From switchIn until the CPU leaves this
   * context it is the CPU's unit itself (cpu.fpu), not a copy: a switch hands units over, where
   * it copied the image twice (an idle domain's every wakeup is a switch).
   */
  fpu = new Fpu();

  save(cpu: Cpu): void {
    this.regs.set(cpu.regs);
    this.eip = cpu.eip;
    this.eflags = cpu.getFlags();
    this.segSel.set(cpu.segSel);
    this.segBase.set(cpu.segBase);
    this.segLimit.set(cpu.segLimit);
    this.segAttr.set(cpu.segAttr);
    this.cpl = cpu.cpl;
    this.cr0 = cpu.cr0;
    this.cr2 = cpu.cr2;
    this.cr3 = cpu.cr3;
    this.cr4 = cpu.cr4;
    this.gdtrBase = cpu.gdtrBase;
    this.gdtrLimit = cpu.gdtrLimit;
    this.idtrBase = cpu.idtrBase;
    this.idtrLimit = cpu.idtrLimit;
    this.dr.set(cpu.dr);
    // Nothing to copy when the CPU's unit is this context's own (switchIn).
    if (cpu.fpu !== this.fpu) this.fpu.copyFrom(cpu.fpu);
  }

  /** Puts this state on the CPU; the CPU gets a copy of the x87 state, a unit of its own. */
  restore(cpu: Cpu): void {
    this.restoreRegisters(cpu);
    // Never copied into the unit on the CPU: after switchIn that unit is another context's.
    const own = new Fpu();
    own.copyFrom(this.fpu);
    cpu.fpu = own;
  }

  /** restore() for a host switching to this context: the CPU runs on this context's x87 unit. */
  switchIn(cpu: Cpu): void {
    this.restoreRegisters(cpu);
    cpu.fpu = this.fpu;
  }

  /**
   * save() for a host leaving the CPU with no context on it: the CPU keeps its x87 state, as
   * a copy, so that nothing it runs meanwhile changes this context's.
   */
  detach(cpu: Cpu): void {
    this.save(cpu);
    if (cpu.fpu === this.fpu) {
      cpu.fpu = new Fpu();
      cpu.fpu.copyFrom(this.fpu);
    }
  }

  private restoreRegisters(cpu: Cpu): void {
    cpu.regs.set(this.regs);
    cpu.eip = this.eip;
    cpu.setFlags(this.eflags);
    for (let s = 0; s < 8; s++) {
      cpu.loadSegmentCache(s, this.segSel[s], this.segBase[s], this.segLimit[s], this.segAttr[s]);
    }
    cpu.setCpl(this.cpl);
    cpu.cr0 = this.cr0;
    cpu.cr2 = this.cr2;
    cpu.cr4 = this.cr4;
    cpu.gdtrBase = this.gdtrBase;
    cpu.gdtrLimit = this.gdtrLimit;
    cpu.idtrBase = this.idtrBase;
    cpu.idtrLimit = this.idtrLimit;
    cpu.dr.set(this.dr);
    cpu.setCr3(this.cr3);
  }
}
