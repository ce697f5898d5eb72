/**
 * The handler table: one function per decoded id (see decode.ts for the id layout). Each
 * instruction group registers its handlers here; an id nobody registered raises #UD.
 */
import type { Cpu } from "../cpu.js";
import { OP_COUNT, opId } from "../decode.js";
import { UD } from "../regs.js";
import { registerAlu } from "./alu.js";
import { registerMove } from "./move.js";
import { registerString } from "./string.js";
import { registerSystem } from "./system.js";
import { registerX87 } from "./x87.js";

/** Executes the instruction decoded in slot s; eip already points after it. */
export type Handler = (cpu: Cpu, s: number) => void;

const ud: Handler = (cpu) => cpu.fault(UD, 0);

export const HANDLERS: Handler[] = new Array<Handler>(OP_COUNT).fill(ud);

/**
 * Registers a handler. map: 0 one-byte, 1 for 0F xx. sub: ModRM reg for group opcodes (0
 * otherwise). size: 32 registers the 32-bit operand-size form, 16 the 0x66 form, 0 both.
 */
export function def(map: number, opcode: number, sub: number, size: 0 | 16 | 32, fn: Handler): void {
  if (size !== 16) HANDLERS[opId(map, opcode, sub, false)] = fn;
  if (size !== 32) HANDLERS[opId(map, opcode, sub, true)] = fn;
}

/** Registers fn for all eight sub values of a group opcode. */
export function defGroup(map: number, opcode: number, size: 0 | 16 | 32, fn: Handler): void {
  for (let sub = 0; sub < 8; sub++) def(map, opcode, sub, size, fn);
}

/**
 * Handlers specialised for the register form (ModRM mod = 3) of an id, used by the run
 * loop's hot switch when they are hot (see HOT_OPS). The HANDLERS entry must handle both
 * forms; this one only has to be right for mod = 3.
 */
export const REG_HANDLERS: (Handler | null)[] = new Array<Handler | null>(OP_COUNT).fill(null);

/** Registers a register-form specialisation (see REG_HANDLERS); arguments as for def. */
export function defReg(map: number, opcode: number, sub: number, size: 0 | 16 | 32, fn: Handler): void {
  if (size !== 16) REG_HANDLERS[opId(map, opcode, sub, false)] = fn;
  if (size !== 32) REG_HANDLERS[opId(map, opcode, sub, true)] = fn;
}

export type Def = typeof def;
export type DefReg = typeof defReg;

registerAlu(def, defReg);
registerMove(def, defReg);
registerString(def);
registerSystem(def);
registerX87(def);

/**
 * The hot instructions, hottest first, as [map, opcode, sub] of their 32-bit form: compiled C's
 * mix (bench/workload, kernels). The run loop calls their handlers through a switch with one
 * call site per handler, so V8 sees monomorphic calls it can inline; everything else goes
 * through HANDLERS. Ids that share a handler share its case. Order matters: TurboFan spends
 * its inlining budget on the hottest call sites first.
 */
const HOT_OPS: readonly (readonly [number, number, number, boolean?])[] = [
  [0, 0x89, 0], // mov Ed, Gd
  [0, 0x75, 0], // jnz
  [0, 0x8b, 0], // mov Gd, Ed
  [0, 0x31, 0], // add/or/adc/sbb/and/sub/xor Ed, Gd
  [0, 0x39, 0], // cmp Ed, Gd
  [1, 0xb6, 0], // movzx Gd, Eb
  [0, 0x74, 0], // jz
  [0, 0x8d, 0], // lea
  [0, 0xc1, 5], // shift group Ed, Ib
  [0, 0x85, 0], // test Ed, Gd
  [0, 0x38, 0], // cmp Eb, Gb
  [0, 0x40, 0], // inc Gd
  [0, 0x81, 7], // cmp Ed, Id
  [0, 0x83, 0], // add..xor Ed, Ib
  [0, 0xeb, 0], // jmp rel8
  [0, 0x88, 0], // mov Eb, Gb
  [0, 0x3d, 0], // cmp eax, Id
  [1, 0xaf, 0], // imul Gd, Ed
  [0, 0x77, 0], // ja
  [0, 0x3c, 0], // cmp al, Ib
  [0, 0x7c, 0], // jl
  [0, 0xf6, 0], // test Eb, Ib
  [0, 0x30, 0], // add..xor Eb, Gb
  [0, 0x72, 0], // jb
  [0, 0x3b, 0], // cmp Gd, Ed
  [0, 0x33, 0], // add..xor Gd, Ed
  [1, 0xb7, 0], // movzx Gd, Ew
  [0, 0x48, 0], // dec Gd
  [0, 0x7d, 0], // jge
  [0, 0xff, 0], // inc Ed
  [0, 0xb8, 0], // mov Gd, Id
  [0, 0x80, 5], // add..xor Eb, Ib
  [0, 0x80, 7], // cmp Eb, Ib
  [0, 0xf7, 4], // mul Ed
  [0, 0x05, 0], // add..xor eax, Id
  [0, 0x7f, 0], // jg
  [0, 0x50, 0], // push Gd
  [0, 0x58, 0], // pop Gd
  [0, 0xc3, 0], // ret
  [0, 0xe8, 0], // call rel32
  [0, 0x7e, 0], // jle
  [0, 0x76, 0], // jbe
  [0, 0xff, 4], // jmp Ed
  [0, 0x90, 0], // nop
  [0, 0xd1, 5], // shift group Ed, 1
  [0, 0xd3, 5], // shift group Ed, cl
  [0, 0xc7, 0], // mov Ed, Id
  [0, 0x8a, 0], // mov Gb, Eb
  [1, 0xbe, 0], // movsx Gd, Eb
  [0, 0x84, 0], // test Eb, Gb
  [0, 0x78, 0], // js
  [0, 0x79, 0], // jns
  [0, 0x73, 0], // jae
  [0, 0xff, 6], // push Ed
  [0, 0xff, 2], // call Ed
  [0, 0x68, 0], // push Id
  [0, 0xc9, 0], // leave
  // The rest of the XenLinux workload's interpreted mix (bench:linux --why): outside blocks,
  // these were 6 % of its instructions and most of the run loop's time.
  [0, 0xff, 1], // dec Ed
  [0, 0x89, 0, true], // mov Ew, Gw
  [0, 0x8b, 0, true], // mov Gw, Ew
  [0, 0x81, 7, true], // cmp Ew, Iw
  [0, 0x81, 0, true], // add..xor Ew, Iw
  [0, 0xf7, 0], // test Ed, Id
  [0, 0xff, 0, true], // inc Ew
  [1, 0x94, 0], // setcc
  [0, 0xd0, 4], // shift group Eb, 1
  [0, 0x39, 0, true], // cmp Ew, Gw
  [0, 0xc6, 0], // mov Eb, Ib
  [0, 0xa9, 0], // test eax, Id
  [0, 0xa8, 0], // test al, Ib
  [0, 0xc7, 0, true], // mov Ew, Iw
  [0, 0xa1, 0], // mov eax, moffs
  [0, 0x99, 0], // cdq
  // The guest kernels' fault and event entry and exit stubs (bench:exits --only page_fault,
  // event_upcall: these were all their interpreted instructions). A segment load runs its
  // handler, the interpreter's checks; a block ends at iret and never holds a load of SS
  // (blocks.ts).
  [0, 0x1e, 0], // push ds
  [0, 0x06, 0], // push es
  [1, 0xa0, 0], // push fs
  [1, 0xa8, 0], // push gs
  [0, 0x1f, 0], // pop ds
  [0, 0x07, 0], // pop es
  [1, 0xa1, 0], // pop fs
  [1, 0xa9, 0], // pop gs
  [0, 0x60, 0], // pusha
  [0, 0x61, 0], // popa
  [0, 0x8e, 0], // mov Sw, Ew
  [0, 0xcf, 0], // iret
  [0, 0xa3, 0], // mov moffs, eax
  [0, 0xa2, 0], // mov moffs, al
  [0, 0xfc, 0], // cld
  [0, 0x87, 0], // xchg Ed, Gd
  [1, 0xbc, 0], // bsf
  [1, 0xb3, 0], // btr Ed, Gd
  [0, 0xf7, 2], // not Ed
  // The XenLinux boot's (bench:linux to its prompt): its delay loops read the TSC, its string
  // compares cmp Gb, Eb; each ended a block, so each pass went back to the run loop. rdtsc
  // is only ever a block's first instruction (blocks.ts: where `retired` is exact).
  [1, 0x31, 0], // rdtsc
  [0, 0x3a, 0], // cmp Gb, Eb
  // bench:cpu's interpreted mix (div, cmov, imul with an immediate, shrd: 67 K instructions a
  // 200-iteration run): each ended its block, so each went back to the run loop, and the chain
  // of wasm blocks stopped there.
  [0, 0xf7, 6], // div Ed
  [0, 0xf7, 7], // idiv Ed
  [1, 0x44, 0], // cmovcc Gd, Ed (one handler for every cc)
  [0, 0x69, 0], // imul Gd, Ed, Id (and Ib)
  [1, 0xac, 0], // shrd Ed, Gd, Ib
];

/** Hot handlers at most (numbered 1..HOT_CASES, kept in bits 22-28 of a slotOf entry, which
 * the run loop calls through HOT_FNS). */
export const HOT_CASES = 127;
/** The hot handlers by case number (case 0: not hot). */
export const HOT_FNS: Handler[] = [ud];
/** The case number of each id (for a memory operand or no ModRM), or 0. */
const HOT_MEM = new Uint8Array(OP_COUNT);
/** The case number of each id with a register operand (ModRM mod = 3), or 0. */
const HOT_REG = new Uint8Array(OP_COUNT);

function hotCaseOf(fn: Handler): number {
  let k = HOT_FNS.indexOf(fn);
  if (k < 0) k = HOT_FNS.push(fn) - 1;
  if (k > HOT_CASES) throw new Error(`HOT_OPS has more than ${HOT_CASES} handlers`);
  return k;
}
for (const [map, opcode, sub, o16] of HOT_OPS) {
  const id = opId(map, opcode, sub, o16 === true);
  hotCaseOf(HANDLERS[id]);
  const reg = REG_HANDLERS[id];
  if (reg) hotCaseOf(reg);
}
// Every id whose handler is hot takes its number, whatever its opcode (aluEdGd serves 01..39).
for (let id = 0; id < OP_COUNT; id++) {
  // indexOf gives -1 for a cold handler and 0 for ud: both mean "not hot".
  HOT_MEM[id] = Math.max(HOT_FNS.indexOf(HANDLERS[id]), 0);
  const reg = REG_HANDLERS[id];
  const r = reg ? HOT_FNS.indexOf(reg) : -1;
  HOT_REG[id] = r > 0 ? r : HOT_MEM[id];
}
while (HOT_FNS.length <= HOT_CASES) HOT_FNS.push(ud);

/** The hot handler number of a decoded instruction (0: call HANDLERS[id]). */
export function hotCase(id: number, modrm: number): number {
  return modrm >= 0xc0 ? HOT_REG[id] : HOT_MEM[id];
}
