/**
 * Names an x86 manual would use for the CPU's registers, flags, exceptions and exits.
 * The CPU knows nothing of Xen: these are Intel's numbers.
 */

// General registers, in ModRM encoding order: regs[EAX] etc.
export const EAX = 0;
export const ECX = 1;
export const EDX = 2;
export const EBX = 3;
export const ESP = 4;
export const EBP = 5;
export const ESI = 6;
export const EDI = 7;

/**
 * Index into the registers' bytes (regs8) of 8-bit register r, AL CL DL BL AH CH DH BH: the
 * low bytes of EAX..EBX, then their second bytes.
 */
export function reg8Index(r: number): number {
  return ((r & 3) << 2) | (r >> 2);
}

// Segment registers, in ModRM sreg encoding order.
export const ES = 0;
export const CS = 1;
export const SS = 2;
export const DS = 3;
export const FS = 4;
export const GS = 5;
/** Extra descriptor caches beyond the six segment registers. */
export const LDTR = 6;
export const TR = 7;
export const SEG_NONE = 7;

// EFLAGS bits.
export const CF = 1 << 0;
export const PF = 1 << 2;
export const AF = 1 << 4;
export const ZF = 1 << 6;
export const SF = 1 << 7;
export const TF = 1 << 8;
export const IF = 1 << 9;
export const DF = 1 << 10;
export const OF = 1 << 11;
export const IOPL = 3 << 12;
export const NT = 1 << 14;
export const RF = 1 << 16;
export const VM = 1 << 17;
export const AC = 1 << 18;
export const VIF = 1 << 19;
export const VIP = 1 << 20;
export const ID = 1 << 21;
/** The six arithmetic status flags. */
export const ARITH_FLAGS = CF | PF | AF | ZF | SF | OF;
/** Bits an i686 lets software change in EFLAGS (at CPL 0). */
export const EFLAGS_WRITABLE = ARITH_FLAGS | TF | IF | DF | IOPL | NT | RF | AC | ID;
/** Bit 1 always reads as 1. */
export const EFLAGS_FIXED = 1 << 1;

// CR0 / CR4 bits.
export const CR0_PE = 1 << 0;
export const CR0_MP = 1 << 1;
export const CR0_EM = 1 << 2;
export const CR0_TS = 1 << 3;
export const CR0_ET = 1 << 4;
export const CR0_NE = 1 << 5;
export const CR0_WP = 1 << 16;
export const CR0_AM = 1 << 18;
export const CR0_PG = 1 << 31;
export const CR4_PSE = 1 << 4;
export const CR4_PGE = 1 << 7;

// Page-table entry bits (2-level, non-PAE).
export const PTE_P = 1 << 0;
export const PTE_RW = 1 << 1;
export const PTE_US = 1 << 2;
export const PTE_A = 1 << 5;
export const PTE_D = 1 << 6;
export const PTE_PS = 1 << 7;

// #PF error-code bits.
export const PFEC_P = 1 << 0;
export const PFEC_W = 1 << 1;
export const PFEC_U = 1 << 2;

// Exception vectors.
export const DE = 0;
export const DB = 1;
export const NMI = 2;
export const BP = 3;
export const OFV = 4;
export const BR = 5;
export const UD = 6;
export const NM = 7;
export const DF_VEC = 8;
export const TS = 10;
export const NP = 11;
export const SS_VEC = 12;
export const GP = 13;
export const PF_VEC = 14;
export const MF = 16;
export const AC_VEC = 17;

/** Vectors whose exceptions push an error code. */
export function hasErrorCode(vector: number): boolean {
  return vector === DF_VEC || (vector >= TS && vector <= PF_VEC) || vector === AC_VEC;
}

/** Why run() returned. */
export const enum Exit {
  /** The instruction budget was spent. */
  Budget = 0,
  /** `hlt` executed (eip points after it). */
  Halt = 1,
  /**
   * A fault, trap or software interrupt the host must handle: exitVector, exitErrorCode
   * (-1 when the vector has none), exitCr2 for #PF, exitSoft when raised by int n/int3/into.
   * For faults eip points at the faulting instruction; for traps and int n, after it.
   */
  Exception = 2,
  /** A fault while delivering #DF through the IDT (architectural mode): the CPU shut down. */
  TripleFault = 3,
}
