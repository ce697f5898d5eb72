/**
 * Inline JS for the commonest instruction forms of a compiled block (blocks.ts): moves, lea,
 * movzx/movsx, add/or/and/sub/xor/cmp/test in 8 and 32 bits, inc/dec, shifts by a constant,
 * imul, push/pop, call/ret and the near jumps, with the slot's registers, displacement and
 * immediate as constants. Everything else in a block calls its handler. Each form here must
 * do exactly what its handler does (same memory accesses in the same order, same lazy-flag
 * record): `tsxen cpu-test` runs every committed vector as a compiled block too, and
 * test/cpu-blocks-fuzz.test.ts compares random loops of these forms with the interpreter.
 *
 * The generated code sees c (the Cpu), r (c.regs), r8 (c.regs8), e0 (EIP at block entry)
 * and fa/fb/fx, block locals that mirror the last lazy-flag record of the block while it is
 * known (FlagState), so a jcc after a cmp or test tests its operands directly.
 */
import { type DecodeCache, EA_BASE, EA_DISP, EA_SIB, hasModrm, isJcc, P_A16 } from "./decode.js";
import { L_ADD, L_DEC, L_INC, L_LOGIC, L_RES, L_SUB } from "./flags.js";
import { ADD, AND, CMP, OR, SUB, XOR } from "./ops/alu.js";
import { SAL, SAR, SHL, SHR } from "./ops/alu-shift.js";
import { AF, CF, CS, GP, OF, reg8Index as r8 } from "./regs.js";

/**
 * The lazy-flag record the block's code last wrote into fa/fb/fx: its kind and size, or none.
 * fx is the result for every kind (so ZF and SF come from it), fa and fb the operands for
 * L_ADD, L_SUB and L_LOGIC, fa the operand of L_INC and L_DEC.
 */
export interface FlagState {
  op: number; // L_ADD, L_SUB, L_LOGIC, L_INC, L_DEC, L_RES, or 0: unknown (read the CPU's lazy flags)
  size: number;
}

/** The effective address of slot s as a JS expression, or null for the rare forms. */
function ea(dc: DecodeCache, s: number): string | null {
  const m = dc.eam[s];
  const d = dc.disp[s];
  switch (m & 3) {
    case EA_DISP:
      return `${d}`;
    case EA_BASE:
      return `(r[${(m >> 2) & 7}]+(${d}))|0`;
    case EA_SIB:
      return `(r[${(m >> 2) & 7}]+(r[${(m >> 5) & 7}]<<${(m >> 8) & 3})+(${d}))|0`;
    default:
      // 32-bit: an index without a base (the 16-bit forms are the handlers').
      if ((dc.pfx[s] & P_A16) !== 0 || dc.base[s] >= 0 || dc.index[s] < 0) return null;
      return `((r[${dc.index[s]}]<<${dc.scale[s]})+(${d}))|0`;
  }
}

function seg(dc: DecodeCache, s: number): number {
  return (dc.eam[s] >> 10) & 7;
}

/** Code recording an ALU result in the lazy flags (and fa/fb/fx); a, b, x are JS names. */
function lazy(op: number, size: number, st: FlagState): string {
  st.op = op;
  st.size = size;
  return `fa=a;fb=b;fx=x;c.lzOp=${op};c.lzA=a;c.lzB=b;c.lzRes=x;c.lzSize=${size};`;
}

/** x = a OP b for an 8- or 32-bit ALU operation, with its flags; null for adc/sbb. */
function alu(op: number, size: number, st: FlagState): string | null {
  const wrap = size === 32 ? "|0" : "&255";
  switch (op) {
    case ADD:
      return `const x=(a+b)${wrap};${lazy(L_ADD, size, st)}`;
    case OR:
      return `const x=a|b;${lazy(L_LOGIC, size, st)}`;
    case AND:
      return `const x=a&b;${lazy(L_LOGIC, size, st)}`;
    case XOR:
      return `const x=a^b;${lazy(L_LOGIC, size, st)}`;
    case SUB:
    case CMP:
      return `const x=(a-b)${wrap};${lazy(L_SUB, size, st)}`;
    default:
      return null;
  }
}

/** CF, OF and AF replaced, ZF/SF/PF from x (lazyRes); cf and of are JS expressions (0/1). */
function resFlags(cf: string, of: string, size: number, st: FlagState): string {
  st.op = L_RES;
  st.size = size;
  return `c.flags=(c.flags&${~(CF | OF | AF)})|${cf}|(${of})<<11;fx=x;c.lzOp=${L_RES};c.lzRes=x;c.lzSize=${size};`;
}

/**
 * What cpu.keepCF() does before an inc/dec (CF into c.flags), from the block's flag record
 * when it is known: the CF of an add, sub or logic record; nothing after inc, dec or a
 * record whose CF is already in c.flags.
 */
function keepCF(st: FlagState): string {
  const u = (v: string) => (st.size === 32 ? `(${v}>>>0)` : v);
  switch (st.op) {
    case L_ADD:
      return `c.flags=(c.flags&${~CF})|(${u("fx")}<${u("fa")}?1:0);`;
    case L_SUB:
      return `c.flags=(c.flags&${~CF})|(${u("fa")}<${u("fb")}?1:0);`;
    case L_LOGIC:
      return `c.flags&=${~CF};`;
    case L_INC:
    case L_DEC:
    case L_RES:
      return "";
    default:
      return "c.keepCF();";
  }
}

/** inc (or dec) of a into x, with its flags (CF kept); st: the record before it. */
function incDec(inc: boolean, st: FlagState): string {
  const keep = keepCF(st);
  st.op = inc ? L_INC : L_DEC;
  st.size = 32;
  return `x=(a${inc ? "+" : "-"}1)|0;${keep}fa=a;fx=x;c.lzOp=${st.op};c.lzA=a;c.lzB=1;c.lzRes=x;c.lzSize=32;`;
}

/** shl/shr/sar of a by the constant count n (1-31) into x, with the flags (alu-shift.ts). */
function shift(op: number, n: number, st: FlagState): string | null {
  switch (op) {
    case SHL:
    case SAL:
      return `const x=a<<${n},f=(a<<${n - 1})>>>31;${resFlags("f", "(x>>>31)^f", 32, st)}`;
    case SHR:
      return `const x=(a>>>${n})|0,t=a>>>${n - 1};${resFlags("(t&1)", "(t^x)>>>31", 32, st)}`;
    case SAR:
      return `const x=a>>${n};${resFlags(`((a>>${n - 1})&1)`, "0", 32, st)}`;
    default:
      return null;
  }
}

/**
 * The condition cc (0-15) as a JS boolean expression: from fa/fb/fx when the block's last
 * flag record is known, else from the CPU's lazy flags.
 */
function condition(cc: number, st: FlagState): string {
  const neg = (cc & 1) !== 0;
  const t = (e: string, n: string): string => (neg ? n : e);
  if (st.op === L_SUB) {
    const sh = 32 - st.size;
    const ua = st.size === 32 ? "(fa>>>0)" : "fa";
    const ub = st.size === 32 ? "(fb>>>0)" : "fb";
    const sa = sh === 0 ? "fa" : `(fa<<${sh})`;
    const sb = sh === 0 ? "fb" : `(fb<<${sh})`;
    const sx = sh === 0 ? "fx" : `(fx<<${sh})`;
    switch (cc >> 1) {
      case 1:
        return t(`${ua}<${ub}`, `${ua}>=${ub}`);
      case 2:
        return t("fx===0", "fx!==0");
      case 3:
        return t(`${ua}<=${ub}`, `${ua}>${ub}`);
      case 4:
        return t(`${sx}<0`, `${sx}>=0`);
      case 6:
        return t(`${sa}<${sb}`, `${sa}>=${sb}`);
      case 7:
        return t(`${sa}<=${sb}`, `${sa}>${sb}`);
    }
  } else if (st.op === L_LOGIC) {
    const sx = st.size === 32 ? "fx" : `(fx<<${32 - st.size})`;
    switch (cc >> 1) {
      case 1:
        return t("false", "true");
      case 2:
      case 3:
        return t("fx===0", "fx!==0");
      case 4:
      case 6:
        return t(`${sx}<0`, `${sx}>=0`);
      case 7:
        return t(`${sx}<=0`, `${sx}>0`);
    }
  }
  if (st.op !== 0) {
    // Any known record: ZF and SF are those of its result.
    const sx = st.size === 32 ? "fx" : `(fx<<${32 - st.size})`;
    if (cc >> 1 === 2) return t("fx===0", "fx!==0");
    if (cc >> 1 === 4) return t(`${sx}<0`, `${sx}>=0`);
  }
  const f = [
    "c.of()",
    "c.cf()",
    "c.zf()",
    "(c.cf()|c.zf())",
    "c.sf()",
    "c.pf()",
    "c.lt()",
    "(c.lt()|c.zf())",
  ][cc >> 1];
  return t(`${f}!==0`, `${f}===0`);
}

/** A near jump to e0 + next + rel, with the CS limit check of jrel32. */
function jump(next: number, rel: number): string {
  return `{const t=(e0+${next + rel})|0;if(t>>>0>c.segHi[${CS}])c.fault(${GP},0);c.eip=t;}`;
}

/**
 * A jmp or call rel32 that a block follows to its target (blocks.ts F_TRACE): the CS limit
 * check, and the return address pushed for a call; the block goes on at the target.
 */
export function followedJump(dc: DecodeCache, s: number, next: number): string {
  const t = `{const t=(e0+${next + dc.imm[s]})|0;if(t>>>0>c.segHi[${CS}])c.fault(${GP},0);`;
  return ((dc.op[s] >> 3) & 0xff) === 0xe8 ? `${t}c.push32((e0+${next})|0);}` : `${t}}`;
}

/**
 * A ret after a call the block followed (blocks.ts F_RETURN), as inline code for instruction
 * k: pops and checks the target; when it is not the call's return address (block offset
 * back), the block ends there.
 */
export function predictedReturn(back: number, k: number): string {
  return (
    `{const t=c.pop32();if(t>>>0>c.segHi[${CS}])c.fault(${GP},0);` +
    `if(t!==((e0+${back})|0)){c.eip=t;c.retired+=${k + 1};return;}}`
  );
}

/**
 * Inline code for slot s (at block offset next - its length), or null to call its handler.
 * next: the block offset of the following instruction. Updates st to the flag record the
 * code leaves (unchanged when the code does not touch the flags). taken: code run after a
 * near jump (jcc taken, or jmp) has set EIP: leaving a block from its middle, or going round
 * a block that loops to its own start.
 */
export function inlineCode(
  dc: DecodeCache,
  s: number,
  next: number,
  st: FlagState,
  taken = "",
): string | null {
  const id = dc.op[s];
  if (id >> 12 !== 0) return id === ((1 << 12) | (0x90 << 3)) ? "" : null; // 66 90 is a nop; other 66 forms are the handlers'
  const opc = (id >> 3) & 0x1ff;
  const sub = id & 7;
  const m = dc.modrm[s];
  const rm = m & 7;
  const reg = (m >> 3) & 7;
  const isReg = m >= 0xc0;
  const imm = dc.imm[s];
  const mem = isReg ? null : ea(dc, s);
  // A memory operand in one of the rare address forms: the handler does it.
  if (!isReg && mem === null && hasModrm(opc >> 8, opc & 0xff)) return null;
  const sg = isReg ? 0 : seg(dc, s);
  // ALU forms 00-3D: operation in opcode bits 5-3.
  if (opc < 0x40 && (opc & 7) <= 5) {
    const op = (opc >> 3) & 7;
    const form = opc & 7;
    if (form === 1) {
      // Ed, Gd
      if (isReg) {
        const body = alu(op, 32, st);
        if (body === null) return null;
        return `{const a=r[${rm}],b=r[${reg}];${body}${op === CMP ? "" : `r[${rm}]=x;`}}`;
      }
      const body = alu(op, 32, st);
      if (body === null) return null;
      if (op === CMP) return `{const a=c.rd32(${sg},${mem}),b=r[${reg}];${body}}`;
      return `{const a=c.rmwRd32(${sg},${mem}),b=r[${reg}];${body}c.rmwWr32(x);}`;
    }
    if (form === 3) {
      // Gd, Ed
      const body = alu(op, 32, st);
      if (body === null) return null;
      const src = isReg ? `r[${rm}]` : `c.rd32(${sg},${mem})`;
      return `{const b=${src},a=r[${reg}];${body}${op === CMP ? "" : `r[${reg}]=x;`}}`;
    }
    if (form === 5) {
      const body = alu(op, 32, st);
      if (body === null) return null;
      return `{const a=r[0],b=${imm};${body}${op === CMP ? "" : "r[0]=x;"}}`;
    }
    const body = alu(op, 8, st);
    if (body === null) return null;
    const put = op !== CMP;
    if (form === 0) {
      // Eb, Gb
      if (isReg) return `{const a=r8[${r8(rm)}],b=r8[${r8(reg)}];${body}${put ? `r8[${r8(rm)}]=x;` : ""}}`;
      if (!put) return `{const a=c.rd8(${sg},${mem}),b=r8[${r8(reg)}];${body}}`;
      return `{const a=c.rmwRd8(${sg},${mem}),b=r8[${r8(reg)}];${body}c.rmwWr8(x);}`;
    }
    if (form === 2) {
      // Gb, Eb
      const src = isReg ? `r8[${r8(rm)}]` : `c.rd8(${sg},${mem})`;
      return `{const b=${src},a=r8[${r8(reg)}];${body}${put ? `r8[${r8(reg)}]=x;` : ""}}`;
    }
    return `{const a=r8[0],b=${imm & 0xff};${body}${put ? "r8[0]=x;" : ""}}`;
  }
  switch (opc) {
    case 0xa1:
      // mov eax, moffs: the offset is the slot's displacement (a 16-bit one is the handler's).
      return mem === null ? null : `r[0]=c.rd32(${sg},${mem});`;
    case 0xa3:
      return mem === null ? null : `c.wr32(${sg},${mem},r[0]);`;
    case 0x81:
    case 0x83: {
      const body = alu(sub, 32, st);
      if (body === null) return null;
      if (isReg) return `{const a=r[${rm}],b=${imm};${body}${sub === CMP ? "" : `r[${rm}]=x;`}}`;
      if (sub === CMP) return `{const a=c.rd32(${sg},${mem}),b=${imm};${body}}`;
      return `{const a=c.rmwRd32(${sg},${mem}),b=${imm};${body}c.rmwWr32(x);}`;
    }
    case 0x80: {
      const body = alu(sub, 8, st);
      if (body === null) return null;
      const b = imm & 0xff;
      if (isReg) return `{const a=r8[${r8(rm)}],b=${b};${body}${sub === CMP ? "" : `r8[${r8(rm)}]=x;`}}`;
      if (sub === CMP) return `{const a=c.rd8(${sg},${mem}),b=${b};${body}}`;
      return `{const a=c.rmwRd8(${sg},${mem}),b=${b};${body}c.rmwWr8(x);}`;
    }
    case 0xf6:
      // test Eb, Ib
      if (sub > 1) return null;
      st.op = L_LOGIC;
      st.size = 8;
      return `{const x=${isReg ? `r8[${r8(rm)}]` : `c.rd8(${sg},${mem})`}&${imm & 0xff};fx=x;c.lzOp=${L_LOGIC};c.lzA=0;c.lzB=0;c.lzRes=x;c.lzSize=8;}`;
    case 0xc1: {
      const n = imm & 0x1f;
      if (n === 0) return isReg ? "" : `c.rmwWr32(c.rmwRd32(${sg},${mem}));`;
      const body = shift(sub, n, st);
      if (body === null) return null;
      if (isReg) return `{const a=r[${rm}];${body}r[${rm}]=x;}`;
      return `{const a=c.rmwRd32(${sg},${mem});${body}c.rmwWr32(x);}`;
    }
    case 0xd1: {
      const body = shift(sub, 1, st);
      if (body === null) return null;
      if (isReg) return `{const a=r[${rm}];${body}r[${rm}]=x;}`;
      return `{const a=c.rmwRd32(${sg},${mem});${body}c.rmwWr32(x);}`;
    }
    case 0x1af: {
      // imul Gd, Ed: CF = OF = the product does not fit (imul32).
      const src = isReg ? `r[${rm}]` : `c.rd32(${sg},${mem})`;
      return `{const b=${src},a=r[${reg}];const x=Math.imul(a,b);${resFlags("(a*b!==x?1:0)", "(a*b!==x?1:0)", 32, st)}r[${reg}]=x;}`;
    }
    case 0xff: {
      if (sub === 6) return `c.push32(${isReg ? `r[${rm}]` : `c.rd32(${sg},${mem})`});`;
      // inc/dec Ed
      if (sub > 1) return null;
      const upd = incDec(sub === 0, st);
      if (isReg) return `{const a=r[${rm}],${upd}r[${rm}]=x;}`;
      return `{const a=c.rmwRd32(${sg},${mem}),${upd}c.rmwWr32(x);}`;
    }
    case 0x90:
      return "";
    case 0x68:
    case 0x6a:
      return `c.push32(${imm});`;
    case 0xe8:
      // call rel32: EIP is already next, the return address.
      return `{const t=(e0+${next + imm})|0;if(t>>>0>c.segHi[${CS}])c.fault(${GP},0);c.push32((e0+${next})|0);c.eip=t;}`;
    case 0xc3:
      return `{const t=c.pop32();if(t>>>0>c.segHi[${CS}])c.fault(${GP},0);c.eip=t;}`;
    case 0x85: {
      const a = isReg ? `r[${rm}]` : `c.rd32(${sg},${mem})`;
      st.op = L_LOGIC;
      st.size = 32;
      return `{const x=${a}&r[${reg}];fx=x;c.lzOp=${L_LOGIC};c.lzA=0;c.lzB=0;c.lzRes=x;c.lzSize=32;}`;
    }
    case 0x84: {
      const a = isReg ? `r8[${r8(rm)}]` : `c.rd8(${sg},${mem})`;
      st.op = L_LOGIC;
      st.size = 8;
      return `{const x=${a}&r8[${r8(reg)}];fx=x;c.lzOp=${L_LOGIC};c.lzA=0;c.lzB=0;c.lzRes=x;c.lzSize=8;}`;
    }
    case 0x89:
      return isReg ? `r[${rm}]=r[${reg}];` : `c.wr32(${sg},${mem},r[${reg}]);`;
    case 0x8b:
      return isReg ? `r[${reg}]=r[${rm}];` : `r[${reg}]=c.rd32(${sg},${mem});`;
    case 0x88:
      return isReg ? `r8[${r8(rm)}]=r8[${r8(reg)}];` : `c.wr8(${sg},${mem},r8[${r8(reg)}]);`;
    case 0x8a:
      return isReg ? `r8[${r8(reg)}]=r8[${r8(rm)}];` : `r8[${r8(reg)}]=c.rd8(${sg},${mem});`;
    case 0x8d:
      // lea: the register form is #UD and the 16-bit forms are the handler's.
      if (isReg || mem === null) return null;
      return `r[${reg}]=${mem};`;
    case 0xc7:
      return isReg ? `r[${rm}]=${imm};` : `c.wr32(${sg},${mem},${imm});`;
    case 0x1b6:
      return `r[${reg}]=${isReg ? `r8[${r8(rm)}]` : `c.rd8(${sg},${mem})`};`;
    case 0x1b7:
      return `r[${reg}]=${isReg ? `c.regs16[${rm << 1}]` : `c.rd16(${sg},${mem})`};`;
    case 0x1be:
      return `r[${reg}]=(${isReg ? `r8[${r8(rm)}]` : `c.rd8(${sg},${mem})`}<<24)>>24;`;
    case 0x1bf:
      return `r[${reg}]=(${isReg ? `c.regs16[${rm << 1}]` : `c.rd16(${sg},${mem})`}<<16)>>16;`;
    case 0xeb:
    case 0xe9:
      return jump(next, imm) + taken;
  }
  if (opc >= 0xb8 && opc <= 0xbf) return `r[${opc & 7}]=${imm};`;
  if (opc >= 0x50 && opc <= 0x57) return `c.push32(r[${opc & 7}]);`;
  if (opc >= 0x58 && opc <= 0x5f) return `{const v=c.pop32();r[${opc & 7}]=v;}`;
  if (opc >= 0x40 && opc <= 0x4f) {
    const n = opc & 7;
    return `{const a=r[${n}],${incDec(opc < 0x48, st)}r[${n}]=x;}`;
  }
  if (isJcc(opc)) {
    // Not taken: EIP is next (set before a block-ending jcc; a jcc inside a block goes on).
    return `if(${condition(opc & 15, st)}){${jump(next, imm)}${taken}}`;
  }
  return null;
}
