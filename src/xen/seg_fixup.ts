/**
 * The 4 GiB-segment fix-up (VMASST_TYPE_4gb_segments, semantics.md §3.5): a ring-3 #GP(0)
 * caused by an access through a segment that check_descriptor truncated at 0xFC400000 (a
 * "4 GiB" segment, as glibc's TLS segments were) flips that segment's expand direction in the
 * guest's GDT/LDT and restarts the instruction; with _notify, vector 15 is bounced too.
 */
import { CS, DS, EBP, ES, FS, GS, LDTR, SS, VM } from "../cpu/regs.js";
import { GUEST_SEGMENT_END, SELECTOR_TI } from "../public/arch_x86_32.js";
import { VmAssistType } from "../public/xen.js";
import { readDescriptor } from "./descriptors.js";
import type { Vcpu } from "./domain.js";
import type { Hypervisor } from "./hypervisor.js";
import { reflectTrap, reloadDataSegments } from "./traps.js";

const PAGE_SIZE = 4096;
const TRAP_page_fault = 14;
/** The (otherwise unused) vector the _notify assist bounces. */
const TRAP_spurious_int = 15;
/** Error code of the #PF for an unreadable instruction byte (user read). */
const PFEC_USER_READ = 4;

// Descriptor high-word bits.
const SEG_EC = 1 << 10; // data: expand-down
const SEG_CODE = 1 << 11;
const SEG_S = 1 << 12;
const SEG_DPL = 3 << 13;
const SEG_P = 1 << 15;
const SEG_DB = 1 << 22;
const SEG_G = 1 << 23;

/** Opcodes with a ModRM memory operand the fix-up decodes (all other opcodes: no fix-up). */
const MODRM_OPCODES = new Set<number>([
  // add/or/adc/sbb/and/sub/xor/cmp r/m forms
  0x00,
  0x01,
  0x02,
  0x03,
  0x08,
  0x09,
  0x0a,
  0x0b,
  0x10,
  0x11,
  0x12,
  0x13,
  0x18,
  0x19,
  0x1a,
  0x1b,
  0x20,
  0x21,
  0x22,
  0x23,
  0x28,
  0x29,
  0x2a,
  0x2b,
  0x30,
  0x31,
  0x32,
  0x33,
  0x38,
  0x39,
  0x3a,
  0x3b,
  0x69,
  0x6b, // imul
  0x80,
  0x81,
  0x82,
  0x83,
  0x84,
  0x85,
  0x86,
  0x87, // group 1, test, xchg
  0x88,
  0x89,
  0x8a,
  0x8b,
  0x8c,
  0x8d,
  0x8e, // mov, lea, mov sreg
  0xc0,
  0xc1,
  0xc6,
  0xc7, // shifts imm8, mov imm
  0xd0,
  0xd1,
  0xd2,
  0xd3, // shifts
  0xf6,
  0xf7,
  0xfe,
  0xff, // groups 3, 4, 5
]);
/** mov al/eax <-> moffs32: a disp32 operand, no ModRM. */
const MOFFS_OPCODES = new Set<number>([0xa0, 0xa1, 0xa2, 0xa3]);

const FETCH_FAULT = { fetchFault: true } as const;

function vmAssist(v: Vcpu, type: number): boolean {
  return (v.domain.vmAssist & (1 << type)) !== 0;
}

/** Machine address of a linear address through the current page tables, or -1. */
function linearToMachine(hv: Hypervisor, lin: number): number {
  const cpu = hv.cpu;
  const pde = cpu.physRead32((cpu.cr3 & ~0xfff) | ((lin >>> 20) & 0xffc));
  if ((pde & 1) === 0) return -1;
  const pte = cpu.physRead32((pde & ~0xfff) | ((lin >>> 10) & 0xffc));
  if ((pte & 1) === 0) return -1;
  return ((pte & ~0xfff) | (lin & 0xfff)) >>> 0;
}

/**
 * fixup_seg: flip a truncated 4 GiB data segment (32-bit, page-granular, present, DPL 3) whose
 * offset is out of range. Expand-up ending within a page of 0xFC400000 with offset > limit
 * becomes expand-down covering [0, base) (negative offsets); expand-down wrapping to within a
 * page of 0 with offset <= limit becomes expand-up again. Written into the table in place.
 */
function fixupSegment(hv: Hypervisor, v: Vcpu, sel: number, offset: number): boolean {
  const cpu = hv.cpu;
  const idx = (sel >>> 3) & 0x1fff;
  const ldt = (sel & SELECTOR_TI) !== 0;
  if (!ldt) {
    // Xen's own reserved entries are never rewritten (tsxen: see DEVIATIONS.md).
    const g = v.domain.abi.gdt;
    if (idx >= g.firstReservedEntry && idx < g.firstReservedEntry + g.nrReservedEntries) return false;
  } else if (idx >= v.ldtEnts) {
    return false;
  }
  const d = readDescriptor(cpu, sel);
  if (d === null) return false;
  let a = d.lo >>> 0;
  let b = d.hi >>> 0;
  const mask = SEG_P | SEG_S | SEG_DB | SEG_G | SEG_CODE | SEG_DPL;
  if ((b & mask) >>> 0 !== (SEG_P | SEG_S | SEG_DB | SEG_G | SEG_DPL) >>> 0) return false;
  const base = ((a >>> 16) | ((b & 0xff) << 16) | (b & 0xff000000)) >>> 0;
  let limit = ((((a & 0xffff) | (b & 0xf0000)) << 12) | 0xfff) >>> 0;
  const off = offset >>> 0;
  if (b & SEG_EC) {
    // Expand-down reaching (by wrapping) to within a page of 0: assume 4 GiB.
    if ((base + limit) >>> 0 >= PAGE_SIZE || off > limit) return false;
    limit = (GUEST_SEGMENT_END - base) >>> 0;
  } else {
    // Expand-up reaching to within a page of Xen's area: assume 4 GiB.
    if ((GUEST_SEGMENT_END - ((base + limit) >>> 0)) >>> 0 >= PAGE_SIZE || off <= limit) return false;
    limit = -(base & ~0xfff) >>> 0;
  }
  const field = ((limit >>> 12) - 1) & 0xfffff;
  a = ((a & ~0xffff) | (field & 0xffff)) >>> 0;
  b = ((b & ~0xf0000) | (field & 0xf0000)) >>> 0;
  b = (b ^ SEG_EC) >>> 0;
  const tableBase = ldt ? cpu.segBase[LDTR] : cpu.gdtrBase;
  const lin = (tableBase + idx * 8) >>> 0;
  const ma0 = linearToMachine(hv, lin);
  const ma1 = linearToMachine(hv, (lin + 4) >>> 0);
  if (ma0 === -1 || ma1 === -1) return false;
  hv.write32(ma0, a);
  hv.write32(ma1, b);
  return true;
}

/**
 * gpf_emulate_4gb: true when the #GP was dealt with (segment fixed and the instruction to be
 * restarted, or a #PF reflected for an unreadable instruction byte); false to reflect the #GP.
 * Only for ring 3 with the 4gb_segments assist on. Decodes legacy prefixes (0x67 refused), the
 * opcode, and a ModRM without SIB (or a moffs32) to find the segment and offset.
 */
export function gpfEmulate4gb(hv: Hypervisor, v: Vcpu): boolean {
  const cpu = hv.cpu;
  if (!vmAssist(v, VmAssistType["4gb_segments"])) return false;
  if (cpu.cpl !== 3 || (cpu.getFlags() & VM) !== 0) return false;
  // linearise_address(cs, eip)
  if (cpu.eip >>> 0 > cpu.segLimit[CS] >>> 0) return false;
  const start = (cpu.segBase[CS] + cpu.eip) >>> 0;
  let pb = start;
  const fetch = (n: number): number => {
    const bytes = hv.guest.copyFrom(pb, n);
    if (bytes === null) throw FETCH_FAULT;
    pb = (pb + n) >>> 0;
    let x = 0;
    for (let i = 0; i < n; i++) x |= bytes[i] << (8 * i);
    return x >>> 0;
  };
  try {
    let seg = -1;
    let op: number;
    for (;;) {
      if ((pb - start) >>> 0 >= 15) return false;
      op = fetch(1);
      if (op === 0x67) return false; // address-size override: not handled
      if (op === 0x66 || op === 0xf0 || op === 0xf2 || op === 0xf3) continue;
      const override = { 46: CS, 62: DS, 38: ES, 100: FS, 101: GS, 54: SS }[op];
      if (override === undefined) break;
      seg = override;
    }
    let offset: number;
    if (MOFFS_OPCODES.has(op)) {
      offset = fetch(4);
      if (seg === -1) seg = DS;
    } else if (MODRM_OPCODES.has(op)) {
      const modrm = fetch(1);
      const mod = modrm >>> 6;
      const rm = modrm & 7;
      if (rm === 4 || mod === 3) return false; // SIB not handled; register operand
      let disp = 0;
      let useReg = true;
      if (mod === 0) {
        if (rm === 5) {
          useReg = false;
          disp = fetch(4);
        }
        if (seg === -1) seg = DS;
      } else {
        disp = mod === 1 ? (fetch(1) << 24) >> 24 : fetch(4);
        if (seg === -1) seg = rm === EBP ? SS : DS;
      }
      offset = (disp + (useReg ? cpu.regs[rm] : 0)) >>> 0;
    } else {
      return false;
    }
    if (!fixupSegment(hv, v, cpu.segSel[seg], offset)) return false;
    // The exit to the guest reloads its data segments from the (now changed) descriptors;
    // EIP stays on the instruction, which is restarted.
    if (!reloadDataSegments(hv, v)) return true;
    if (vmAssist(v, VmAssistType["4gb_segments_notify"])) {
      // Error code: the bytes decoded (prefixes, opcode, ModRM, displacement).
      reflectTrap(hv, v, TRAP_spurious_int, (pb - start) >>> 0, null);
    }
    return true;
  } catch (e) {
    if (e !== FETCH_FAULT) throw e;
    v.guestCr2 = pb;
    reflectTrap(hv, v, TRAP_page_fault, PFEC_USER_READ, pb);
    return true;
  }
}
