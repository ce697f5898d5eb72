/**
 * Integer ALU instructions (src/cpu/ops/alu*.ts): exact flags per the Intel SDM for the
 * edge cases (overflow, carry, zero, parity, count-0 shifts), #DE, bt with memory bit
 * offsets, cmpxchg/cmpxchg8b, BCD.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import {
  AF,
  ARITH_FLAGS,
  CF,
  DE,
  DS,
  EAX,
  EBX,
  ECX,
  EDI,
  EDX,
  ESI,
  ESP,
  Exit,
  GP,
  OF,
  PF,
  SF,
  UD,
  ZF,
} from "../src/cpu/regs.js";

const CODE = 0x1000;
const DATA = 0x4000;

function setup(bytes: number[], flags = 0): { cpu: Cpu; mem: Uint8Array } {
  const mem = new Uint8Array(1 << 20);
  const cpu = new Cpu(mem);
  cpu.resetFlat32();
  mem.set(bytes, CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  cpu.setFlags(flags);
  return { cpu, mem };
}

/** Runs one instruction and checks it retired normally. */
function step(cpu: Cpu): void {
  assert.equal(cpu.run(1), Exit.Budget, `exited with vector ${cpu.exitVector}`);
}

function arith(cpu: Cpu): number {
  return cpu.getFlags() & ARITH_FLAGS;
}

function rd32(mem: Uint8Array, a: number): number {
  return (mem[a] | (mem[a + 1] << 8) | (mem[a + 2] << 16) | (mem[a + 3] << 24)) >>> 0;
}
function wr32(mem: Uint8Array, a: number, v: number): void {
  for (let i = 0; i < 4; i++) mem[a + i] = (v >>> (i * 8)) & 0xff;
}

function expectFault(cpu: Cpu, vector: number): void {
  const start = cpu.eip;
  assert.equal(cpu.run(1), Exit.Exception);
  assert.equal(cpu.exitVector, vector);
  assert.equal(cpu.eip, start, "eip stays at the faulting instruction");
}

// ------------------------------------------------------------------ add/sub/adc/sbb/logic

test("add sets OF and SF on signed overflow, AF on a nibble carry, PF from the low byte", () => {
  const { cpu } = setup([0x01, 0xd8]); // add eax, ebx
  cpu.regs[EAX] = 0x7fffffff;
  cpu.regs[EBX] = 1;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0x80000000);
  assert.equal(arith(cpu), OF | SF | AF | PF);
});

test("8-bit add wrapping to zero sets CF, ZF, AF, PF and leaves the rest of EAX", () => {
  const { cpu } = setup([0x00, 0xd8]); // add al, bl
  cpu.regs[EAX] = 0x123456ff;
  cpu.regs[EBX] = 1;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0x12345600);
  assert.equal(arith(cpu), CF | ZF | AF | PF);
});

test("cmp of 0 with 1 borrows: CF, SF, AF, PF set and no register changes", () => {
  const { cpu } = setup([0x39, 0xd8]); // cmp eax, ebx
  cpu.regs[EAX] = 0;
  cpu.regs[EBX] = 1;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0);
  assert.equal(arith(cpu), CF | SF | AF | PF);
});

test("cmp of a memory operand reads it only (no write-permission check)", () => {
  const { cpu, mem } = setup([0x39, 0x03]); // cmp [ebx], eax
  cpu.loadSegmentCache(DS, 0x10, 0, 0xffffffff, 0xc091); // read-only data
  cpu.regs[EBX] = DATA;
  wr32(mem, DATA, 5);
  cpu.regs[EAX] = 5;
  step(cpu);
  assert.equal(arith(cpu), ZF | PF);
});

test("adc adds the carry: 0xffffffff + 0 + CF gives 0 with CF, ZF, AF", () => {
  const { cpu } = setup([0x11, 0xd8], CF); // adc eax, ebx
  cpu.regs[EAX] = -1;
  cpu.regs[EBX] = 0;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0);
  assert.equal(arith(cpu), CF | ZF | AF | PF);
});

test("sbb with borrow-in: 0 - 0xffffffff - 1 is 0 with CF set", () => {
  const { cpu } = setup([0x19, 0xd8], CF); // sbb eax, ebx
  cpu.regs[EAX] = 0;
  cpu.regs[EBX] = -1;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0);
  assert.equal(arith(cpu), CF | ZF | AF | PF);
});

test("sbb with borrow-in on equal operands: 5 - 5 - 1 borrows (CF set), without borrow-in it does not", () => {
  const { cpu } = setup([0x19, 0xd8, 0x19, 0xd8], CF); // sbb eax, ebx twice
  cpu.regs[EAX] = 5;
  cpu.regs[EBX] = 5;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0xffffffff);
  assert.equal(arith(cpu), CF | SF | AF | PF);
  cpu.regs[EAX] = 5;
  cpu.setFlags(0);
  step(cpu);
  assert.equal(cpu.regs[EAX], 0);
  assert.equal(arith(cpu), ZF | PF);
});

test("sbb 8-bit signed overflow: 0x80 - 0 - 1 = 0x7f sets OF and AF", () => {
  const { cpu } = setup([0x1c, 0x00], CF); // sbb al, 0
  cpu.regs[EAX] = 0x80;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x7f);
  assert.equal(arith(cpu), OF | AF);
});

test("83 sign-extends its imm8: add eax, -1 on 1 gives 0 with CF", () => {
  const { cpu } = setup([0x83, 0xc0, 0xff]);
  cpu.regs[EAX] = 1;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0);
  assert.equal(arith(cpu), CF | ZF | AF | PF);
});

test("66 81 /5 works on AX only", () => {
  const { cpu } = setup([0x66, 0x81, 0xe8, 0x01, 0x00]); // sub ax, 1
  cpu.regs[EAX] = 0x12340000;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0x1234ffff);
  assert.equal(arith(cpu), CF | SF | AF | PF);
});

test("82 is an alias of 80", () => {
  const { cpu } = setup([0x82, 0xc1, 0x10]); // add cl, 0x10
  cpu.regs[ECX] = 0xf0;
  step(cpu);
  assert.equal(cpu.regs[ECX], 0);
  assert.equal(arith(cpu), CF | ZF | PF);
});

test("logic ops clear CF, OF and AF", () => {
  const { cpu } = setup([0x21, 0xd8], CF | OF | AF); // and eax, ebx
  cpu.regs[EAX] = 0x80000003;
  cpu.regs[EBX] = 0x80000001;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0x80000001);
  assert.equal(arith(cpu), SF);
});

test("add to memory writes the sum back", () => {
  const { cpu, mem } = setup([0x01, 0x03]); // add [ebx], eax
  cpu.regs[EBX] = DATA;
  cpu.regs[EAX] = 0x10;
  wr32(mem, DATA, 0xfffffff8);
  step(cpu);
  assert.equal(rd32(mem, DATA), 8);
  assert.equal(arith(cpu), CF);
});

test("test f6 /1 is an alias of /0 and sets PF/ZF/SF like and", () => {
  const { cpu } = setup([0xf6, 0xc8, 0x0f], CF | OF); // test al, 0x0f
  cpu.regs[EAX] = 0xf0;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0xf0);
  assert.equal(arith(cpu), ZF | PF);
});

// ------------------------------------------------------------------ inc/dec/not/neg

test("inc keeps CF and sets OF on 0x7f -> 0x80", () => {
  const { cpu } = setup([0xfe, 0xc0], CF); // inc al
  cpu.regs[EAX] = 0x7f;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x80);
  assert.equal(arith(cpu), CF | OF | SF | AF);
});

test("dec keeps the CF a previous lazy sub produced", () => {
  const { cpu } = setup([0x39, 0xd8, 0x48]); // cmp eax, ebx; dec eax
  cpu.regs[EAX] = 0;
  cpu.regs[EBX] = 1;
  step(cpu);
  step(cpu);
  assert.equal(cpu.regs[EAX], -1);
  assert.equal(arith(cpu), CF | SF | AF | PF);
});

test("16-bit inc r (66 40+r) wraps within the word", () => {
  const { cpu } = setup([0x66, 0x43]); // inc bx
  cpu.regs[EBX] = 0x1234ffff;
  step(cpu);
  assert.equal(cpu.regs[EBX], 0x12340000);
  assert.equal(arith(cpu), ZF | AF | PF);
});

test("FE /2 is #UD", () => {
  const { cpu } = setup([0xfe, 0xd0]);
  expectFault(cpu, UD);
});

test("neg of 0 clears CF; neg of 0x80000000 sets OF and CF", () => {
  const { cpu } = setup([0xf7, 0xd8, 0xf7, 0xdb]); // neg eax; neg ebx
  cpu.regs[EAX] = 0;
  cpu.regs[EBX] = 0x80000000 | 0;
  step(cpu);
  assert.equal(arith(cpu), ZF | PF);
  step(cpu);
  assert.equal(cpu.regs[EBX] >>> 0, 0x80000000);
  assert.equal(arith(cpu), CF | OF | SF | PF);
});

test("not changes no flag", () => {
  const { cpu } = setup([0xf7, 0xd0], CF | ZF); // not eax
  cpu.regs[EAX] = 0x0f0f0f0f;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0xf0f0f0f0);
  assert.equal(arith(cpu), CF | ZF);
});

// ------------------------------------------------------------------ mul/imul/div/idiv

test("mul r32 gives the full 64-bit product in EDX:EAX with CF=OF=1", () => {
  const { cpu } = setup([0xf7, 0xe3]); // mul ebx
  cpu.regs[EAX] = -1;
  cpu.regs[EBX] = -1;
  step(cpu);
  assert.equal(cpu.regs[EDX] >>> 0, 0xfffffffe);
  assert.equal(cpu.regs[EAX], 1);
  assert.equal(arith(cpu) & (CF | OF), CF | OF);
});

test("mul r8 with a small product clears CF and OF", () => {
  const { cpu } = setup([0xf6, 0xe3], CF | OF); // mul bl
  cpu.regs[EAX] = 0xffff0010;
  cpu.regs[EBX] = 0x0f;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0xffff00f0);
  assert.equal(arith(cpu) & (CF | OF), 0);
});

test("imul r32 sign-extends into EDX; CF=OF=0 when the high half is only sign", () => {
  const { cpu } = setup([0xf7, 0xeb]); // imul ebx
  cpu.regs[EAX] = -2;
  cpu.regs[EBX] = 3;
  step(cpu);
  assert.equal(cpu.regs[EAX], -6);
  assert.equal(cpu.regs[EDX], -1);
  assert.equal(arith(cpu) & (CF | OF), 0);
});

test("imul r32 of large signed values has the exact high half", () => {
  const { cpu } = setup([0xf7, 0xeb]); // imul ebx
  cpu.regs[EAX] = -0x12345678;
  cpu.regs[EBX] = 0x7edcba98;
  step(cpu);
  const p = BigInt.asUintN(64, -0x12345678n * 0x7edcba98n);
  assert.equal(cpu.regs[EAX] >>> 0, Number(p & 0xffffffffn));
  assert.equal(cpu.regs[EDX] >>> 0, Number(p >> 32n));
  assert.equal(arith(cpu) & (CF | OF), CF | OF);
});

test("three-operand imul sets CF=OF when the product is truncated", () => {
  const { cpu } = setup([0x6b, 0xc3, 0x02, 0x0f, 0xaf, 0xc3]); // imul eax,ebx,2; imul eax,ebx
  cpu.regs[EBX] = 0x40000000;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0x80000000);
  assert.equal(arith(cpu) & (CF | OF), CF | OF);
  cpu.regs[EAX] = -3;
  cpu.regs[EBX] = 5;
  step(cpu);
  assert.equal(cpu.regs[EAX], -15);
  assert.equal(arith(cpu) & (CF | OF), 0);
});

test("div by zero raises #DE with EAX and EDX untouched", () => {
  const { cpu } = setup([0xf7, 0xf3]); // div ebx
  cpu.regs[EAX] = 1234;
  cpu.regs[EDX] = 5;
  cpu.regs[EBX] = 0;
  expectFault(cpu, DE);
  assert.equal(cpu.exitErrorCode, -1);
  assert.equal(cpu.regs[EAX], 1234);
  assert.equal(cpu.regs[EDX], 5);
});

test("div whose quotient needs more than 32 bits raises #DE", () => {
  const { cpu } = setup([0xf7, 0xf3]); // div ebx
  cpu.regs[EDX] = 1;
  cpu.regs[EAX] = 0;
  cpu.regs[EBX] = 1;
  expectFault(cpu, DE);
  assert.equal(cpu.regs[EDX], 1);
});

test("div r32 divides the 64-bit EDX:EAX exactly", () => {
  const { cpu } = setup([0xf7, 0xf3]); // div ebx
  cpu.regs[EDX] = 0x12345678;
  cpu.regs[EAX] = 0x9abcdef0 | 0;
  cpu.regs[EBX] = 0x87654321 | 0;
  step(cpu);
  const n = (0x12345678n << 32n) | 0x9abcdef0n;
  assert.equal(cpu.regs[EAX] >>> 0, Number(n / 0x87654321n));
  assert.equal(cpu.regs[EDX] >>> 0, Number(n % 0x87654321n));
});

test("idiv truncates toward zero; the remainder takes the dividend's sign", () => {
  const { cpu } = setup([0xf7, 0xfb]); // idiv ebx
  cpu.regs[EDX] = -1;
  cpu.regs[EAX] = -7;
  cpu.regs[EBX] = 2;
  step(cpu);
  assert.equal(cpu.regs[EAX], -3);
  assert.equal(cpu.regs[EDX], -1);
});

test("idiv of -2^31 by -1 overflows: #DE", () => {
  const { cpu } = setup([0xf7, 0xfb]); // idiv ebx
  cpu.regs[EDX] = -1;
  cpu.regs[EAX] = 0x80000000 | 0;
  cpu.regs[EBX] = -1;
  expectFault(cpu, DE);
  assert.equal(cpu.regs[EAX], 0x80000000 | 0);
});

test("idiv r8 with quotient 128 raises #DE; quotient -128 is allowed", () => {
  const a = setup([0xf6, 0xfb]); // idiv bl
  a.cpu.regs[EAX] = 0xff80; // -128
  a.cpu.regs[EBX] = 0xff; // -1
  expectFault(a.cpu, DE);
  const b = setup([0xf6, 0xfb]);
  b.cpu.regs[EAX] = 0x0080; // 128
  b.cpu.regs[EBX] = 0xff; // -1
  step(b.cpu);
  assert.equal(b.cpu.regs[EAX] & 0xffff, 0x0080);
});

// ------------------------------------------------------------------ shifts and rotates

test("a shift count of 0 (after masking to 5 bits) changes no flag", () => {
  const { cpu } = setup([0xd3, 0xe0, 0xd3, 0xe8], CF | OF | ZF | AF); // shl eax,cl; shr eax,cl
  cpu.regs[EAX] = 0x80000001 | 0;
  cpu.regs[ECX] = 32;
  step(cpu);
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x80000001 | 0);
  assert.equal(arith(cpu), CF | OF | ZF | AF);
});

test("shl by 1 sets OF to MSB(result) xor CF", () => {
  const { cpu } = setup([0xd1, 0xe0]); // shl eax, 1
  cpu.regs[EAX] = 0x40000000;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0x80000000);
  assert.equal(arith(cpu) & (CF | OF | SF | ZF), OF | SF);
});

test("shl CF is the last bit shifted out", () => {
  const { cpu } = setup([0xc1, 0xe0, 0x04]); // shl eax, 4
  cpu.regs[EAX] = 0xfffffffd | 0;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0xffffffd0);
  assert.equal(arith(cpu) & CF, CF);
});

test("shr by 1 sets OF to the original MSB", () => {
  const { cpu } = setup([0xd0, 0xe8]); // shr al, 1
  cpu.regs[EAX] = 0x81;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x40);
  assert.equal(arith(cpu) & (CF | OF | SF | ZF | PF), CF | OF);
});

test("sar keeps the sign and clears OF", () => {
  const { cpu } = setup([0xc1, 0xf8, 0x04], OF); // sar eax, 4
  cpu.regs[EAX] = 0x80000008 | 0;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0xf8000000);
  assert.equal(arith(cpu) & (CF | OF | SF), CF | SF);
});

test("8-bit shr by more than 8 gives 0", () => {
  const { cpu } = setup([0xc0, 0xe8, 0x0a]); // shr al, 10
  cpu.regs[EAX] = 0xff;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0);
  assert.equal(arith(cpu) & (CF | ZF), ZF);
});

test("rotates change only CF and OF", () => {
  const { cpu } = setup([0xd0, 0xc0], ZF | SF | PF | AF); // rol al, 1
  cpu.regs[EAX] = 0x80;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x01);
  assert.equal(arith(cpu), CF | OF | ZF | SF | PF | AF);
});

test("ror sets CF from the new MSB and OF from its two top bits", () => {
  const { cpu } = setup([0xc1, 0xc8, 0x04]); // ror eax, 4
  cpu.regs[EAX] = 0x0000000b;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0xb0000000);
  assert.equal(arith(cpu) & (CF | OF), CF | OF);
});

test("8-bit rcl rotates through CF by count mod 9 (9 changes nothing)", () => {
  const { cpu } = setup([0xc0, 0xd0, 0x09, 0xc0, 0xd0, 0x01], CF); // rcl al,9; rcl al,1
  cpu.regs[EAX] = 0x80;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x80);
  assert.equal(arith(cpu), CF);
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x01);
  assert.equal(arith(cpu) & (CF | OF), CF | OF);
});

test("rcr by 1 brings CF into the MSB", () => {
  const { cpu } = setup([0xd1, 0xd8], CF); // rcr eax, 1
  cpu.regs[EAX] = 2;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0x80000001);
  assert.equal(arith(cpu) & (CF | OF), OF);
});

test("shld shifts bits of the source in; CF is the last bit out of the destination", () => {
  const { cpu } = setup([0x0f, 0xa4, 0xd8, 0x04]); // shld eax, ebx, 4
  cpu.regs[EAX] = 0x12345678;
  cpu.regs[EBX] = 0x9abcdef0 | 0;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x23456789);
  assert.equal(arith(cpu) & CF, CF);
});

test("shrd by CL shifts source bits in from the top", () => {
  const { cpu } = setup([0x0f, 0xad, 0xd8]); // shrd eax, ebx, cl
  cpu.regs[EAX] = 0x12345678;
  cpu.regs[EBX] = 0x9abcdef0 | 0;
  cpu.regs[ECX] = 8;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0xf0123456);
  assert.equal(arith(cpu) & (CF | SF), SF);
});

test("16-bit shrd with a count above 16 shifts dest:src:dest (deterministic)", () => {
  const { cpu } = setup([0x66, 0x0f, 0xac, 0xd8, 0x14]); // shrd ax, bx, 20
  cpu.regs[EAX] = 0x1234;
  cpu.regs[EBX] = 0xabcd;
  step(cpu);
  const x = (0x1234n << 32n) | (0xabcdn << 16n) | 0x1234n;
  assert.equal(cpu.regs[EAX], Number((x >> 20n) & 0xffffn));
});

// ------------------------------------------------------------------ bit instructions

test("bt with a negative register offset addresses the dword below the operand", () => {
  const { cpu, mem } = setup([0x0f, 0xa3, 0x03]); // bt [ebx], eax
  cpu.regs[EBX] = DATA;
  cpu.regs[EAX] = -1; // bit 31 of [ebx - 4]
  wr32(mem, DATA - 4, 0x80000000);
  step(cpu);
  assert.equal(arith(cpu) & CF, CF);
});

test("bts with a register offset beyond the operand sets the bit in a later dword", () => {
  const { cpu, mem } = setup([0x0f, 0xab, 0x03], ZF); // bts [ebx], eax
  cpu.regs[EBX] = DATA;
  cpu.regs[EAX] = 35; // bit 3 of [ebx + 4]
  step(cpu);
  assert.equal(rd32(mem, DATA + 4), 8);
  assert.equal(rd32(mem, DATA), 0);
  assert.equal(arith(cpu), ZF, "CF = old bit (0), ZF kept");
});

test("16-bit btr with a register offset addresses words", () => {
  const { cpu, mem } = setup([0x66, 0x0f, 0xb3, 0x03]); // btr [ebx], ax
  cpu.regs[EBX] = DATA;
  cpu.regs[EAX] = 0xffef; // -17: bit 15 of the word at ebx - 4
  mem[DATA - 3] = 0xff;
  step(cpu);
  assert.equal(mem[DATA - 3], 0x7f);
  assert.equal(arith(cpu) & CF, CF);
});

test("bt with an immediate masks it to the operand size", () => {
  const { cpu } = setup([0x0f, 0xba, 0xe0, 0x21]); // bt eax, 33
  cpu.regs[EAX] = 2;
  step(cpu);
  assert.equal(arith(cpu) & CF, CF);
});

test("btc with an immediate complements the bit and returns the old one in CF", () => {
  const { cpu } = setup([0x0f, 0xba, 0xf8, 0x1f]); // btc eax, 31
  cpu.regs[EAX] = -1;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x7fffffff);
  assert.equal(arith(cpu) & CF, CF);
});

test("bsf of 0 sets ZF and leaves the destination unchanged", () => {
  const { cpu } = setup([0x0f, 0xbc, 0xc3]); // bsf eax, ebx
  cpu.regs[EAX] = 0x1234;
  cpu.regs[EBX] = 0;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x1234);
  assert.equal(arith(cpu) & ZF, ZF);
});

test("bsf and bsr find the lowest and highest set bits", () => {
  const { cpu } = setup([0x0f, 0xbc, 0xc3, 0x0f, 0xbd, 0xcb]); // bsf eax, ebx; bsr ecx, ebx
  cpu.regs[EBX] = 0x00f0;
  step(cpu);
  step(cpu);
  assert.equal(cpu.regs[EAX], 4);
  assert.equal(cpu.regs[ECX], 7);
  assert.equal(arith(cpu) & ZF, 0);
});

test("setcc writes 1 or 0 to a byte", () => {
  const { cpu } = setup([0x0f, 0x94, 0xc0, 0x0f, 0x9c, 0xc4], ZF | OF); // sete al; setl ah
  cpu.regs[EAX] = 0xffff;
  step(cpu);
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x0101);
});

test("cmovcc with a false condition leaves the destination but still reads memory", () => {
  const { cpu } = setup([0x0f, 0x45, 0x03, 0x0f, 0x44, 0x03], ZF); // cmovne eax,[ebx]; cmove
  cpu.loadSegmentCache(DS, 0x10, 0, 0xfff, 0x4093); // DS limit 0xfff
  cpu.regs[EAX] = 7;
  cpu.regs[EBX] = 0x2000; // beyond the limit
  expectFault(cpu, GP);
  assert.equal(cpu.regs[EAX], 7);
  cpu.regs[EBX] = 0x800;
  step(cpu);
  assert.equal(cpu.regs[EAX], 7);
  step(cpu);
  assert.equal(cpu.regs[EAX], 0);
});

test("xadd exchanges and adds; the sum wins when both operands are one register", () => {
  const { cpu } = setup([0x0f, 0xc1, 0xd8, 0x0f, 0xc1, 0xc0]); // xadd eax, ebx; xadd eax, eax
  cpu.regs[EAX] = 1;
  cpu.regs[EBX] = 2;
  step(cpu);
  assert.equal(cpu.regs[EAX], 3);
  assert.equal(cpu.regs[EBX], 1);
  step(cpu);
  assert.equal(cpu.regs[EAX], 6);
});

test("cmpxchg stores the source on a match and loads the accumulator otherwise", () => {
  const { cpu, mem } = setup([0x0f, 0xb1, 0x0b, 0x0f, 0xb1, 0x0b]); // cmpxchg [ebx], ecx (x2)
  cpu.regs[EBX] = DATA;
  wr32(mem, DATA, 5);
  cpu.regs[EAX] = 5;
  cpu.regs[ECX] = 9;
  step(cpu);
  assert.equal(rd32(mem, DATA), 9);
  assert.equal(arith(cpu), ZF | PF);
  step(cpu);
  assert.equal(rd32(mem, DATA), 9);
  assert.equal(cpu.regs[EAX], 9);
  assert.equal(arith(cpu), CF | SF | AF | PF, "flags of cmp 5, 9");
});

test("cmpxchg8b swaps on a match and loads EDX:EAX otherwise; only ZF changes", () => {
  const { cpu, mem } = setup([0x0f, 0xc7, 0x0e, 0x0f, 0xc7, 0x0e], CF | SF); // cmpxchg8b [esi] x2
  cpu.regs[ESI] = DATA;
  wr32(mem, DATA, 0x11111111);
  wr32(mem, DATA + 4, 0x22222222);
  cpu.regs[EAX] = 0x11111111;
  cpu.regs[EDX] = 0x22222222;
  cpu.regs[EBX] = 0x33333333;
  cpu.regs[ECX] = 0x44444444;
  step(cpu);
  assert.equal(rd32(mem, DATA), 0x33333333);
  assert.equal(rd32(mem, DATA + 4), 0x44444444);
  assert.equal(arith(cpu), CF | SF | ZF);
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x33333333);
  assert.equal(cpu.regs[EDX], 0x44444444);
  assert.equal(arith(cpu), CF | SF);
});

test("cmpxchg8b with a register operand is #UD", () => {
  const { cpu } = setup([0x0f, 0xc7, 0xc8]);
  expectFault(cpu, UD);
});

test("cmpxchg8b on a read-only segment faults before changing anything", () => {
  const { cpu } = setup([0x0f, 0xc7, 0x0f]); // cmpxchg8b [edi]
  cpu.loadSegmentCache(DS, 0x10, 0, 0xffffffff, 0xc091);
  cpu.regs[EDI] = DATA;
  cpu.regs[EAX] = 1;
  expectFault(cpu, GP);
  assert.equal(cpu.regs[EAX], 1);
});

// ------------------------------------------------------------------ BCD and conversions

test("daa adjusts both nibbles: 0x9a becomes 0x00 with CF, AF, ZF", () => {
  const { cpu } = setup([0x27]);
  cpu.regs[EAX] = 0x9a;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x00);
  assert.equal(arith(cpu), CF | AF | ZF | PF);
});

test("daa after 0x15 + 0x27 = 0x3c gives 0x42 with AF", () => {
  const { cpu } = setup([0x04, 0x27, 0x27]); // add al, 0x27; daa
  cpu.regs[EAX] = 0x15;
  step(cpu);
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x42);
  assert.equal(arith(cpu), AF | PF);
});

test("das after 0x42 - 0x15 = 0x2d gives 0x27 with AF", () => {
  const { cpu } = setup([0x2c, 0x15, 0x2f]); // sub al, 0x15; das
  cpu.regs[EAX] = 0x42;
  step(cpu);
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x27);
  assert.equal(arith(cpu) & (CF | AF | ZF | SF), AF);
});

test("aaa adds 0x106 to AX and masks AL when the low nibble is above 9", () => {
  const { cpu } = setup([0x37]);
  cpu.regs[EAX] = 0x010b;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x0201);
  assert.equal(arith(cpu) & (CF | AF), CF | AF);
});

test("aas subtracts 0x106 from AX when AF is set (a borrow out of AL reaches AH)", () => {
  const { cpu } = setup([0x3f], AF);
  cpu.regs[EAX] = 0x0203;
  step(cpu);
  assert.equal(cpu.regs[EAX], 0x000d);
  assert.equal(arith(cpu) & (CF | AF), CF | AF);
});

test("aam 10 splits AL into digits; aam 0 raises #DE", () => {
  const a = setup([0xd4, 0x0a]);
  a.cpu.regs[EAX] = 79;
  step(a.cpu);
  assert.equal(a.cpu.regs[EAX], 0x0709);
  assert.equal(arith(a.cpu), PF);
  const b = setup([0xd4, 0x00]);
  b.cpu.regs[EAX] = 79;
  expectFault(b.cpu, DE);
  assert.equal(b.cpu.regs[EAX], 79);
});

test("aad 10 joins AH:AL into AL and clears AH", () => {
  const { cpu } = setup([0xd5, 0x0a]);
  cpu.regs[EAX] = 0x0709;
  step(cpu);
  assert.equal(cpu.regs[EAX], 79);
  assert.equal(arith(cpu) & (ZF | SF), 0);
});

test("cbw, cwde, cwd and cdq sign-extend", () => {
  const { cpu } = setup([0x66, 0x98, 0x98, 0x66, 0x99, 0x99]);
  cpu.regs[EAX] = 0x12340080;
  step(cpu);
  assert.equal(cpu.regs[EAX] >>> 0, 0x1234ff80);
  step(cpu);
  assert.equal(cpu.regs[EAX], -128);
  cpu.regs[EDX] = 0x12345678;
  step(cpu);
  assert.equal(cpu.regs[EDX] >>> 0, 0x1234ffff);
  cpu.regs[EAX] = 5;
  step(cpu);
  assert.equal(cpu.regs[EDX], 0);
});

test("salc sets AL from CF", () => {
  const a = setup([0xd6], CF);
  a.cpu.regs[EAX] = 0x1200;
  step(a.cpu);
  assert.equal(a.cpu.regs[EAX], 0x12ff);
  const b = setup([0xd6]);
  b.cpu.regs[EAX] = 0x12ff;
  step(b.cpu);
  assert.equal(b.cpu.regs[EAX], 0x1200);
});
