import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { FSW_C0, FSW_C1, FSW_C2, FSW_C3, FSW_IE, FSW_SF, FSW_ZE } from "../src/cpu/fpu.js";
import { CF, CR0_EM, CR0_MP, CR0_TS, EAX, ESP, Exit, NM, OF, PF, SF, UD, ZF } from "../src/cpu/regs.js";

const CODE = 0x1000;
const DATA = 0x10000;

function setup(bytes: number[]): { cpu: Cpu; mem: Uint8Array; view: DataView } {
  const mem = new Uint8Array(1 << 22);
  const cpu = new Cpu(mem);
  cpu.resetFlat32();
  mem.set(bytes, CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  return { cpu, mem, view: new DataView(mem.buffer) };
}

/** Runs n instructions, asserting none faults. */
function run(cpu: Cpu, n: number): void {
  for (let i = 0; i < n; i++) {
    const r = cpu.run(1);
    assert.equal(r, Exit.Budget, `instruction ${i} exited ${r} (vector ${cpu.exitVector})`);
  }
}

/** ModRM + disp32 for [disp32] with the given reg field. */
function m(reg: number, addr: number): number[] {
  return [(reg << 3) | 5, addr & 0xff, (addr >> 8) & 0xff, (addr >> 16) & 0xff, addr >>> 24];
}

const hex = (mem: Uint8Array, a: number, n: number): string =>
  Array.from(mem.subarray(a, a + n))
    .reverse()
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");

test("fld1; fadd st(0) gives 2.0", () => {
  const { cpu, view } = setup([0xd9, 0xe8, 0xd8, 0xc0, 0xdd, ...m(3, DATA)]);
  run(cpu, 3);
  assert.equal(view.getFloat64(DATA, true), 2);
  assert.equal(cpu.fpu.top, 0);
});

test("fstp m80 of -0.5 writes bytes bffe 8000000000000000", () => {
  const { cpu, mem, view } = setup([0xdd, ...m(0, DATA), 0xdb, ...m(7, DATA + 0x10)]);
  view.setFloat64(DATA, -0.5, true);
  run(cpu, 2);
  assert.equal(hex(mem, DATA + 0x10, 10), "bffe8000000000000000");
});

test("fld m80 / fstp m80 round-trips a 64-bit significand exactly", () => {
  const { cpu, mem } = setup([0xdb, ...m(5, DATA), 0xdb, ...m(7, DATA + 0x10)]);
  const bytes = [0x35, 0xc2, 0x68, 0x21, 0xa2, 0xda, 0x0f, 0xc9, 0x00, 0x40]; // pi, extended
  mem.set(bytes, DATA);
  run(cpu, 2);
  assert.equal(hex(mem, DATA + 0x10, 10), "4000c90fdaa22168c235");
});

test("fldpi honours the rounding control (chop gives ...c234)", () => {
  const { cpu, mem, view } = setup([0xd9, ...m(5, DATA), 0xd9, 0xeb, 0xdb, ...m(7, DATA + 0x10)]);
  view.setUint16(DATA, 0x0f7f, true);
  run(cpu, 3);
  assert.equal(hex(mem, DATA + 0x10, 10), "4000c90fdaa22168c234");
});

test("fld m80 of a denormal converts exactly back", () => {
  const { cpu, mem } = setup([0xdb, ...m(5, DATA), 0xdb, ...m(7, DATA + 0x10)]);
  mem.set([1, 0, 0, 0, 0, 0, 0, 0, 0, 0x80], DATA); // -smallest denormal
  run(cpu, 2);
  assert.equal(hex(mem, DATA + 0x10, 10), "80000000000000000001");
});

test("fistp honours round-to-nearest-even", () => {
  // fld m64 2.5; fistp m32; fld m64 3.5; fistp m32
  const { cpu, view } = setup([
    0xdd,
    ...m(0, DATA),
    0xdb,
    ...m(3, DATA + 0x10),
    0xdd,
    ...m(0, DATA + 8),
    0xdb,
    ...m(3, DATA + 0x14),
  ]);
  view.setFloat64(DATA, 2.5, true);
  view.setFloat64(DATA + 8, -3.5, true);
  run(cpu, 4);
  assert.equal(view.getInt32(DATA + 0x10, true), 2);
  assert.equal(view.getInt32(DATA + 0x14, true), -4);
});

test("fistp with chop and out-of-range stores the integer indefinite", () => {
  const { cpu, view } = setup([
    0xd9,
    ...m(5, DATA + 0x20),
    0xdd,
    ...m(0, DATA),
    0xdf,
    ...m(3, DATA + 0x10),
    0xdd,
    ...m(0, DATA + 8),
    0xdf,
    ...m(3, DATA + 0x12),
  ]);
  view.setUint16(DATA + 0x20, 0x0f7f, true);
  view.setFloat64(DATA, -7.9, true);
  view.setFloat64(DATA + 8, 40000, true);
  run(cpu, 5);
  assert.equal(view.getInt16(DATA + 0x10, true), -7);
  assert.equal(view.getUint16(DATA + 0x12, true), 0x8000);
  assert.ok(cpu.fpu.sw & FSW_IE);
});

test("fild m64 / fistp m64 copies a 64-bit integer exactly", () => {
  const { cpu, view } = setup([0xdf, ...m(5, DATA), 0xdf, ...m(7, DATA + 0x10)]);
  view.setBigInt64(DATA, -0x7123456789abcdefn, true);
  run(cpu, 2);
  assert.equal(view.getBigInt64(DATA + 0x10, true), -0x7123456789abcdefn);
});

test("fnstsw ax after fcom of 1.0 and 2.0 sets C0", () => {
  // fld m64 2.0; fld1; fcom st(1); fnstsw ax
  const { cpu, view } = setup([0xdd, ...m(0, DATA), 0xd9, 0xe8, 0xd8, 0xd1, 0xdf, 0xe0]);
  view.setFloat64(DATA, 2, true);
  run(cpu, 4);
  const sw = cpu.regs[EAX] & 0xffff;
  assert.equal(sw & (FSW_C0 | FSW_C2 | FSW_C3), FSW_C0);
  assert.equal((sw >> 11) & 7, 6);
});

test("fucomip sets ZF PF CF for unordered and clears OF SF", () => {
  const { cpu, view } = setup([0xdd, ...m(0, DATA), 0xdd, ...m(0, DATA + 8), 0xdf, 0xe9]);
  view.setFloat64(DATA, Number.NaN, true);
  view.setFloat64(DATA + 8, 1, true);
  cpu.setFlags(OF | SF | 2);
  run(cpu, 3);
  const fl = cpu.getFlags();
  assert.equal(fl & (ZF | PF | CF | OF | SF), ZF | PF | CF);
  assert.equal(cpu.fpu.top, 7);
  assert.equal(cpu.fpu.sw & FSW_IE, 0);
});

test("fcomi of 3.0 and 2.0 clears ZF PF CF", () => {
  const { cpu, view } = setup([0xdd, ...m(0, DATA), 0xdd, ...m(0, DATA + 8), 0xdb, 0xf1]);
  view.setFloat64(DATA, 2, true);
  view.setFloat64(DATA + 8, 3, true);
  cpu.setFlags(ZF | CF | PF | 2);
  run(cpu, 3);
  assert.equal(cpu.getFlags() & (ZF | PF | CF), 0);
});

test("fcmovb copies st(i) only when CF is set", () => {
  const { cpu, view } = setup([0xdd, ...m(0, DATA), 0xd9, 0xe8, 0xda, 0xc1, 0xdd, ...m(3, DATA + 0x10)]);
  view.setFloat64(DATA, 5, true);
  cpu.setFlags(CF | 2);
  run(cpu, 4);
  assert.equal(view.getFloat64(DATA + 0x10, true), 5);
});

test("x87 instruction with CR0.TS set raises #NM", () => {
  const { cpu } = setup([0xd9, 0xe8]);
  cpu.cr0 |= CR0_TS;
  assert.equal(cpu.run(1), Exit.Exception);
  assert.equal(cpu.exitVector, NM);
  assert.equal(cpu.eip, CODE);
  assert.equal(cpu.fpu.top, 0);
});

test("x87 instruction with CR0.EM set raises #NM", () => {
  const { cpu } = setup([0xdb, 0xe3]);
  cpu.cr0 |= CR0_EM;
  assert.equal(cpu.run(1), Exit.Exception);
  assert.equal(cpu.exitVector, NM);
});

test("fwait raises #NM only with CR0.TS and CR0.MP", () => {
  const a = setup([0x9b]);
  a.cpu.cr0 |= CR0_TS;
  assert.equal(a.cpu.run(1), Exit.Budget);
  const b = setup([0x9b]);
  b.cpu.cr0 |= CR0_TS | CR0_MP;
  assert.equal(b.cpu.run(1), Exit.Exception);
  assert.equal(b.cpu.exitVector, NM);
});

test("reserved x87 encoding raises #UD", () => {
  const { cpu } = setup([0xd9, 0xd1]);
  assert.equal(cpu.run(1), Exit.Exception);
  assert.equal(cpu.exitVector, UD);
});

test("stack overflow with IM masked pushes the indefinite and sets IE SF C1", () => {
  const code: number[] = [];
  for (let i = 0; i < 9; i++) code.push(0xd9, 0xe8);
  code.push(0xdd, ...m(3, DATA));
  const { cpu, view } = setup(code);
  run(cpu, 10);
  assert.equal(view.getUint32(DATA + 4, true), 0xfff80000);
  assert.equal(view.getUint32(DATA, true), 0);
  const sw = cpu.fpu.statusWord();
  assert.equal(sw & (FSW_IE | FSW_SF), FSW_IE | FSW_SF);
});

test("stack underflow on fadd of an empty register gives the indefinite, C1 clear", () => {
  const { cpu, view } = setup([0xd9, 0xe8, 0xd8, 0xc1, 0xdd, ...m(3, DATA)]);
  run(cpu, 3);
  assert.equal(view.getUint32(DATA + 4, true), 0xfff80000);
  assert.equal(cpu.fpu.sw & (FSW_IE | FSW_SF | FSW_C1), FSW_IE | FSW_SF);
});

test("fdiv by zero sets ZE and gives infinity", () => {
  const { cpu, view } = setup([0xd9, 0xe8, 0xd9, 0xee, 0xde, 0xf9, 0xdd, ...m(3, DATA)]);
  run(cpu, 4);
  assert.equal(view.getFloat64(DATA, true), Number.POSITIVE_INFINITY);
  assert.ok(cpu.fpu.sw & FSW_ZE);
});

test("fnstenv writes 28 bytes with the tag word and masks exceptions", () => {
  // fldcw 0x0360 (unmasked); fld1; fnstenv [DATA]
  const { cpu, mem, view } = setup([0xd9, ...m(5, DATA + 0x80), 0xd9, 0xe8, 0xd9, ...m(6, DATA)]);
  view.setUint16(DATA + 0x80, 0x0360, true);
  run(cpu, 3);
  assert.equal(view.getUint32(DATA, true), 0xffff0360);
  assert.equal(view.getUint16(DATA + 4, true), 0x3800);
  assert.equal(view.getUint16(DATA + 8, true), 0x3fff);
  assert.equal(view.getUint32(DATA + 12, true), CODE + 6);
  assert.equal(view.getUint16(DATA + 18, true), 0x1e8); // fld1's opcode
  assert.equal(cpu.fpu.cw, 0x037f);
  assert.equal(mem[DATA + 28], 0);
});

test("fnsave / frstor restore registers and reinitialize", () => {
  const { cpu, view } = setup([
    0xd9,
    0xeb,
    0xd9,
    0xe8,
    0xdd,
    ...m(6, DATA),
    0xdd,
    ...m(4, DATA),
    0xdd,
    ...m(3, DATA + 0x80),
  ]);
  run(cpu, 3);
  assert.equal(cpu.fpu.tagWord(), 0xffff);
  assert.equal(cpu.fpu.cw, 0x037f);
  assert.equal(view.getUint16(DATA + 28 + 8, true), 0x3fff); // ST(0) = 1.0
  run(cpu, 2);
  assert.equal(view.getFloat64(DATA + 0x80, true), 1);
  assert.equal(cpu.fpu.st(0), Math.PI);
});

test("fbstp / fbld round-trip packed BCD", () => {
  const { cpu, mem, view } = setup([
    0xdd,
    ...m(0, DATA),
    0xdf,
    ...m(6, DATA + 0x10),
    0xdf,
    ...m(4, DATA + 0x10),
    0xdd,
    ...m(3, DATA + 0x20),
  ]);
  view.setFloat64(DATA, -1234567.5, true); // rounds to even: -1234568
  run(cpu, 2);
  assert.equal(hex(mem, DATA + 0x10, 10), "80000000000001234568");
  run(cpu, 2);
  assert.equal(view.getFloat64(DATA + 0x20, true), -1234568);
});

test("fxam classifies zero, infinity and empty", () => {
  const { cpu } = setup([0xd9, 0xe5, 0xd9, 0xee, 0xd9, 0xe0, 0xd9, 0xe5]);
  run(cpu, 1);
  assert.equal(cpu.fpu.sw & (FSW_C3 | FSW_C2 | FSW_C0), FSW_C3 | FSW_C0);
  run(cpu, 3);
  assert.equal(cpu.fpu.sw & (FSW_C3 | FSW_C2 | FSW_C1 | FSW_C0), FSW_C3 | FSW_C1); // -0
});

test("fsqrt and fprem give exact extended results", () => {
  // fld m64 2.0; fsqrt; fstp m80
  const { cpu, mem, view } = setup([0xdd, ...m(0, DATA), 0xd9, 0xfa, 0xdb, ...m(7, DATA + 0x10)]);
  view.setFloat64(DATA, 2, true);
  run(cpu, 3);
  assert.equal(hex(mem, DATA + 0x10, 10), "3fffb504f333f9de6484");
});

test("fprem computes the remainder and quotient bits", () => {
  // fld m64 3.0 (divisor); fld m64 17.0; fprem -> 2, quotient 5 (C0=1 C3=0 C1=1)
  const { cpu, view } = setup([0xdd, ...m(0, DATA), 0xdd, ...m(0, DATA + 8), 0xd9, 0xf8]);
  view.setFloat64(DATA, 3, true);
  view.setFloat64(DATA + 8, 17, true);
  run(cpu, 3);
  assert.equal(cpu.fpu.st(0), 2);
  assert.equal(cpu.fpu.sw & (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3), FSW_C0 | FSW_C1);
});

// ------------------------------------------------------------------ differential vectors

interface VecState {
  eax: number;
  ecx: number;
  edx: number;
  ebx: number;
  esp: number;
  ebp: number;
  esi: number;
  edi: number;
  eip: number;
  eflags: number;
  memory: [number, number][];
}
interface Vector {
  name: string;
  steps?: number;
  flagsMask?: number;
  initial: VecState;
  final: VecState;
}
const REGS = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] as const;

const vecFile = new URL("../../test/vectors/x87.json", import.meta.url);
test("x87 differential vectors (Unicorn) all pass", { skip: !existsSync(vecFile) }, () => {
  const vectors = JSON.parse(readFileSync(vecFile, "utf8")) as Vector[];
  const mem = new Uint8Array(1 << 24);
  const cpu = new Cpu(mem);
  const failures: string[] = [];
  for (const v of vectors) {
    mem.fill(0, 0, 1 << 20);
    cpu.dc.flush();
    cpu.codePage.fill(0);
    cpu.fetchPage = -1;
    cpu.resetFlat32();
    for (const [a, b] of v.initial.memory) mem[a] = b;
    REGS.forEach((r, i) => {
      cpu.regs[i] = v.initial[r];
    });
    cpu.eip = v.initial.eip;
    cpu.setFlags(v.initial.eflags);
    const steps = v.steps ?? 1;
    let bad = "";
    for (let i = 0; i < steps && !bad; i++) {
      if (cpu.run(1) !== Exit.Budget) bad = `exit vector ${cpu.exitVector}`;
    }
    if (!bad) {
      for (const [i, r] of REGS.entries()) {
        if (cpu.regs[i] >>> 0 !== v.final[r] >>> 0)
          bad += ` ${r}=${(cpu.regs[i] >>> 0).toString(16)} want ${v.final[r].toString(16)}`;
      }
      if (cpu.eip >>> 0 !== v.final.eip) bad += ` eip`;
      const mask = v.flagsMask ?? 0x8d5;
      if ((cpu.getFlags() & mask) !== (v.final.eflags & mask))
        bad += ` eflags=${cpu.getFlags().toString(16)} want ${v.final.eflags.toString(16)}`;
      for (const [a, b] of v.final.memory) {
        if (mem[a] !== b) {
          bad += ` mem[${a.toString(16)}]=${mem[a].toString(16)} want ${b.toString(16)}`;
          break;
        }
      }
    }
    if (bad) failures.push(`${v.name}:${bad}`);
  }
  assert.deepEqual(failures.slice(0, 40), [], `${failures.length} of ${vectors.length} failed`);
});
