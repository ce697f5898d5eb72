/**
 * Why instructions retire in the interpreter rather than in compiled blocks: a diagnostic the
 * run loop feeds only when cpu.stats is set (bench:linux --why), so the hot path pays one
 * test of a local. Each interpreted instruction is counted once under the first reason that
 * applies, and cold instructions (handlers blocks do not compile) by opcode.
 */
import type { Cpu } from "./cpu.js";
import { SLOT_MASK } from "./decode.js";

/** Reasons, in the order they are tested. */
export const WHY = [
  "not compilable (cold handler)",
  "crosses a page end (not cached)",
  "a block starts here but does not fit the budget",
  "hot, below the block threshold",
  "hot, at or above the threshold (no block compiled)",
] as const;

export class InterpStats {
  /** Interpreted instructions by reason (WHY). */
  readonly why = new Float64Array(WHY.length);
  /** Cold instructions by handler id. */
  readonly cold = new Float64Array(8192);
  /**
   * One interpreted instruction: its slotOf entry e, where the run loop looks it up (slotOf
   * index at), and whether a block starts at it.
   */
  note(cpu: Cpu, e: number, at: number, hasBlock: boolean): void {
    const dc = cpu.dc;
    const slot = e & SLOT_MASK;
    let why: number;
    if (e >> 22 === 0) {
      why = 0;
      this.cold[dc.op[slot]]++;
    } else if (dc.slotOf[at] !== e) why = 1;
    else if (hasBlock) why = 2;
    else if (dc.hits[slot] < cpu.blockThreshold) why = 3;
    else why = 4;
    this.why[why]++;
  }

  /** Lines for a report: reasons with their share of `total` interpreted, and the top cold ids. */
  report(top = 20): string[] {
    const total = this.why.reduce((a, b) => a + b, 0);
    const pct = (n: number) => `${((100 * n) / Math.max(total, 1)).toFixed(1)} %`;
    const out = WHY.map((w, i) => `  ${w}: ${(this.why[i] / 1e6).toFixed(2)} M (${pct(this.why[i])})`);
    const ids = [...this.cold.keys()]
      .filter((i) => this.cold[i] > 0)
      .sort((a, b) => this.cold[b] - this.cold[a]);
    for (const id of ids.slice(0, top)) {
      const opc = (id >> 3) & 0x1ff;
      const name = `${id >> 12 ? "66 " : ""}${opc > 0xff ? "0f " : ""}${(opc & 0xff).toString(16).padStart(2, "0")}/${id & 7}`;
      out.push(`    cold ${name.padEnd(10)} ${(this.cold[id] / 1e6).toFixed(3)} M (${pct(this.cold[id])})`);
    }
    return out;
  }
}
