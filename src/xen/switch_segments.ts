/**
 * The data segments' reload when a vcpu comes back onto the CPU (Xen's load_segments,
 * traps.ts reloadDataSegments), skipped when it could change nothing. An idle domain's every
 * tick is a switch, and the reload walks the page tables (flushed from the TLB by the switch)
 * and checks the descriptor four times: ~2.8 K of a tick's ~43 K host instructions.
 *
 * What the reload reads is kept per vcpu after one that succeeded: the key (CR3, CPL, GDTR),
 * each segment's selector and cache, and for a GDT selector the walk's PDE and PTE (their
 * machine addresses and values) and the descriptor's words. Nothing is invalidated by events:
 * at switch-in the same words are read again, by machine address, and compared, so whatever
 * changed them meanwhile (update_descriptor, set_gdt, SETVCPUCONTEXT, a restore, a per-domain
 * PTE rewritten, another vcpu's accessed bit) sends the switch down the full reload. When all
 * compare equal the reload would read the same descriptors through the same translation (the
 * walk's accessed bits already set), pass the same checks and load the caches the vcpu already
 * has (loadSegmentCache's early return, or the same null cache again): nothing to do. LDT
 * selectors (the reload may map a shadow-LDT page) always take the full reload.
 */
import type { Cpu } from "../cpu/cpu.js";
import { DS, ES, FS, GS } from "../cpu/regs.js";
import { _PAGE_PRESENT, SELECTOR_TI } from "../public/arch_x86_32.js";
import { checkedSegment, checkGuestSegment } from "./descriptors.js";
import { SEG_KEEP_WORDS, type Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";
import { InvariantError } from "./invariants.js";
import { reloadDataSegments } from "./traps.js";

/** Snapshot layout: the key, then PER words for each of DS, ES, FS, GS. */
const VALID = 0;
const CR3 = 1;
const CPL = 2;
const GDTB = 3;
const GDTL = 4;
const SEG0 = 5;
const PER = 11;
/** Within a segment's words: selector and cache, then the walk (word indexes) and descriptor. */
const SEL = 0;
const BASE = 1;
const LIMIT = 2;
const ATTR = 3;
const PDE_AT = 4;
const PDE = 5;
const PTE_AT = 6;
const PTE = 7;
const OFF = 8;
const LO = 9;
const HI = 10;
/** The segments in the order the reload loads them (and the snapshot keeps them). */
const SEGS = [DS, ES, FS, GS];
if (SEG_KEEP_WORDS !== SEG0 + 4 * PER) throw new Error("Vcpu.segKeep's size");

/** Switch-ins whose reload was skipped, and those that reloaded (tests, benches). */
export const switchSegmentStats = { kept: 0, reloaded: 0 };

/** The switch-in reload of vcpu v (on the CPU): skipped when it would change nothing. */
export function reloadSwitchedIn(hv: Hypervisor, v: Vcpu): void {
  const s = v.segKeep;
  if (s[VALID] === 1 && unchanged(hv.cpu, s)) {
    switchSegmentStats.kept++;
    if (hv.checkInvariantsAfterHypercall) checkKept(hv.cpu);
    return;
  }
  switchSegmentStats.reloaded++;
  s[VALID] = 0;
  if (reloadDataSegments(hv, v) && hv.current === v && v.domain.runnable) keep(hv.cpu, s);
}

/**
 * With invariant checks on (the test suites), a skipped reload is checked against the
 * descriptors read afresh: each data segment's cache is what the reload would have loaded, and
 * the walk to its descriptor had nothing left to set (the PDE and PTE words the same after it).
 */
function checkKept(cpu: Cpu): void {
  for (const seg of SEGS) {
    const sel = cpu.segSel[seg];
    let want: number[] | null = [0, 0, 0];
    if ((sel & ~3) !== 0) {
      const lin = (cpu.gdtrBase + (sel & ~7)) | 0;
      const pdeMa = ((cpu.cr3 & ~0xfff) | ((lin >>> 20) & 0xffc)) >>> 2;
      const pde = cpu.mem32[pdeMa];
      const pteMa = ((pde & ~0xfff) | ((lin >>> 10) & 0xffc)) >>> 2;
      const pte = cpu.mem32[pteMa];
      want = checkGuestSegment(cpu, sel, cpu.cpl, false, false)
        ? [checkedSegment[0], checkedSegment[1], checkedSegment[2]]
        : null;
      if (cpu.mem32[pdeMa] !== pde || cpu.mem32[pteMa] !== pte) want = null;
    }
    const have = [cpu.segBase[seg], cpu.segLimit[seg], cpu.segAttr[seg]];
    if (want === null || want.some((x, i) => x !== have[i]))
      throw new InvariantError(
        `switch-in reload skipped, but segment ${seg} (selector ${sel.toString(16)}) would load ${want} over ${have}`,
      );
  }
}

function unchanged(cpu: Cpu, s: Int32Array): boolean {
  if (s[CR3] !== cpu.cr3 || s[CPL] !== cpu.cpl || s[GDTB] !== cpu.gdtrBase || s[GDTL] !== cpu.gdtrLimit)
    return false;
  const m = cpu.mem32;
  let prev = 0;
  for (let i = 0; i < 4; i++) {
    const seg = SEGS[i];
    const k = SEG0 + i * PER;
    const sel = cpu.segSel[seg];
    if (
      s[k + SEL] !== sel ||
      s[k + BASE] !== cpu.segBase[seg] ||
      s[k + LIMIT] !== cpu.segLimit[seg] ||
      s[k + ATTR] !== cpu.segAttr[seg]
    )
      return false;
    // A null selector reads nothing; the one just compared read the same words (the four are
    // nearly always one selector).
    if ((sel & ~3) === 0 || sel === prev) continue;
    prev = sel;
    const d = (s[k + PTE] & ~0xfff) >>> 2;
    if (
      m[s[k + PDE_AT]] !== s[k + PDE] ||
      m[s[k + PTE_AT]] !== s[k + PTE] ||
      m[d + s[k + OFF]] !== s[k + LO] ||
      m[d + s[k + OFF] + 1] !== s[k + HI]
    )
      return false;
  }
  return true;
}

/** Records what the reload just read, or leaves the snapshot invalid (an LDT selector, an odd walk). */
function keep(cpu: Cpu, s: Int32Array): void {
  s[CR3] = cpu.cr3;
  s[CPL] = cpu.cpl;
  s[GDTB] = cpu.gdtrBase;
  s[GDTL] = cpu.gdtrLimit;
  for (let i = 0; i < 4; i++) if (!keepSeg(cpu, s, SEGS[i], SEG0 + i * PER)) return;
  s[VALID] = 1;
}

function keepSeg(cpu: Cpu, s: Int32Array, seg: number, k: number): boolean {
  const sel = cpu.segSel[seg];
  s[k + SEL] = sel;
  s[k + BASE] = cpu.segBase[seg];
  s[k + LIMIT] = cpu.segLimit[seg];
  s[k + ATTR] = cpu.segAttr[seg];
  if ((sel & ~3) === 0) return true;
  if ((sel & SELECTOR_TI) !== 0) return false;
  // walkPageTables' walk for the descriptor's linear address (readWords: GDTR base + index).
  const lin = (cpu.gdtrBase + (sel & ~7)) | 0;
  if ((lin & 0xfff) > 0xff8) return false;
  const mem = cpu.memSize;
  const pdeMa = (cpu.cr3 & ~0xfff) | ((lin >>> 20) & 0xffc);
  if (pdeMa >>> 0 > mem - 4) return false;
  const pde = cpu.mem32[pdeMa >>> 2];
  const pteMa = (pde & ~0xfff) | ((lin >>> 10) & 0xffc);
  if ((pde & _PAGE_PRESENT) === 0 || pteMa >>> 0 > mem - 4) return false;
  const pte = cpu.mem32[pteMa >>> 2];
  const ma = (pte & ~0xfff) | (lin & 0xfff);
  if ((pte & _PAGE_PRESENT) === 0 || ma >>> 0 > mem - 8) return false;
  s[k + PDE_AT] = pdeMa >>> 2;
  s[k + PDE] = pde;
  s[k + PTE_AT] = pteMa >>> 2;
  s[k + PTE] = pte;
  // The descriptor's words: their word offset in the PTE's frame, and their values.
  s[k + OFF] = (lin & 0xfff) >>> 2;
  s[k + LO] = cpu.mem32[ma >>> 2];
  s[k + HI] = cpu.mem32[(ma >>> 2) + 1];
  return true;
}
