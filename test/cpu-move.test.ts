import assert from "node:assert/strict";
import { test } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import {
  AF,
  CF,
  CS,
  DF,
  EAX,
  EBP,
  EBX,
  ECX,
  EDI,
  EDX,
  ESI,
  ESP,
  Exit,
  GP,
  IF,
  IOPL,
  OF,
  PF,
  RF,
  SF,
  SS,
  UD,
  VM,
  ZF,
} from "../src/cpu/regs.js";

const CODE = 0x1000;
const STACK = 0x8000;

function setup(bytes: number[]): { cpu: Cpu; mem: Uint8Array } {
  const mem = new Uint8Array(1 << 22);
  const cpu = new Cpu(mem);
  cpu.resetFlat32();
  mem.set(bytes, CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = STACK;
  return { cpu, mem };
}

function rd32(mem: Uint8Array, a: number): number {
  return (mem[a] | (mem[a + 1] << 8) | (mem[a + 2] << 16) | (mem[a + 3] << 24)) >>> 0;
}
function rd16(mem: Uint8Array, a: number): number {
  return mem[a] | (mem[a + 1] << 8);
}
function wr32(mem: Uint8Array, a: number, v: number): void {
  for (let i = 0; i < 4; i++) mem[a + i] = (v >>> (i * 8)) & 0xff;
}

function expectFault(cpu: Cpu, vector: number, error: number): void {
  const start = cpu.eip;
  assert.equal(cpu.run(1), Exit.Exception);
  assert.equal(cpu.exitVector, vector);
  assert.equal(cpu.exitErrorCode, error);
  assert.equal(cpu.eip, start, "eip stays at the faulting instruction");
}

// ------------------------------------------------------------------ mov

test("mov r/m32, r32 and r32, r/m32 move through memory", () => {
  const { cpu, mem } = setup([0x89, 0x18, 0x8b, 0x08]); // mov [eax], ebx; mov ecx, [eax]
  cpu.regs[EAX] = 0x3000;
  cpu.regs[EBX] = 0x12345678;
  cpu.run(2);
  assert.equal(rd32(mem, 0x3000), 0x12345678);
  assert.equal(cpu.regs[ECX], 0x12345678);
  assert.equal(cpu.eip, CODE + 4);
});

test("mov r8 forms address AH..BH", () => {
  const { cpu } = setup([0x88, 0xc4, 0xb7, 0x99]); // mov ah, al; mov bh, 0x99
  cpu.regs[EAX] = 0x11223344;
  cpu.run(2);
  assert.equal(cpu.regs[EAX] >>> 0, 0x11224444);
  assert.equal(cpu.regs[EBX] >>> 0, 0x9900);
});

test("mov with 0x66 writes only the low 16 bits", () => {
  const { cpu } = setup([0x66, 0xb8, 0x34, 0x12, 0x66, 0x8b, 0xd8]); // mov ax, 0x1234; mov bx, ax
  cpu.regs[EAX] = -1;
  cpu.regs[EBX] = 0x55550000;
  cpu.run(2);
  assert.equal(cpu.regs[EAX] >>> 0, 0xffff1234);
  assert.equal(cpu.regs[EBX] >>> 0, 0x55551234);
});

test("mov moffs honours the segment override and 0x67 16-bit offsets", () => {
  // mov eax, fs:[0x10]; 67 mov [0x20], al
  const { cpu, mem } = setup([0x64, 0xa1, 0x10, 0, 0, 0, 0x67, 0xa2, 0x20, 0x00]);
  cpu.loadSegmentCache(4, 0x10, 0x5000, 0xffffffff, 0xc093);
  wr32(mem, 0x5010, 0xcafebabe);
  cpu.run(2);
  assert.equal(cpu.regs[EAX] >>> 0, 0xcafebabe);
  assert.equal(mem[0x20], 0xbe);
  assert.equal(cpu.eip, CODE + 10);
});

test("mov r/m, imm (C6/C7) stores; a non-zero reg field is #UD", () => {
  const { cpu, mem } = setup([
    0xc7, 0x00, 0x78, 0x56, 0x34, 0x12, 0x66, 0xc7, 0x00, 0xff, 0xff, 0xc6, 0x08, 0x01,
  ]);
  cpu.regs[EAX] = 0x3000;
  cpu.run(2);
  assert.equal(rd32(mem, 0x3000), 0x1234ffff);
  expectFault(cpu, UD, -1);
});

test("movzx and movsx extend bytes and words", () => {
  // movzx eax, bl; movsx ecx, bl; movsx edx, bx; 66 movsx si, bl; movzx edi, bx
  const { cpu } = setup([
    0x0f, 0xb6, 0xc3, 0x0f, 0xbe, 0xcb, 0x0f, 0xbf, 0xd3, 0x66, 0x0f, 0xbe, 0xf3, 0x0f, 0xb7, 0xfb,
  ]);
  cpu.regs[EBX] = 0x1234f080;
  cpu.regs[ESI] = 0x77770000;
  cpu.run(5);
  assert.equal(cpu.regs[EAX], 0x80);
  assert.equal(cpu.regs[ECX], -128);
  assert.equal(cpu.regs[EDX], -3968); // 0xf080 sign-extended
  assert.equal(cpu.regs[ESI] >>> 0, 0x7777ff80);
  assert.equal(cpu.regs[EDI], 0xf080);
});

test("lea computes the offset only, truncated by 0x66 and 0x67; the register form is #UD", () => {
  // lea eax, [ebx+ecx*4+8]; 66 lea dx, [ebx+0x10]; 67 lea esi, [bx+si+2]; lea eax, eax
  const { cpu } = setup([0x8d, 0x44, 0x8b, 0x08, 0x66, 0x8d, 0x53, 0x10, 0x67, 0x8d, 0x70, 0x02, 0x8d, 0xc0]);
  cpu.regs[EBX] = 0x1fff8;
  cpu.regs[ECX] = 2;
  cpu.regs[EDX] = 0x11110000;
  cpu.regs[ESI] = 0xfffe;
  cpu.run(3);
  assert.equal(cpu.regs[EAX], 0x1fff8 + 8 + 8);
  assert.equal(cpu.regs[EDX] >>> 0, 0x11110008);
  assert.equal(cpu.regs[ESI], (0xfff8 + 0xfffe + 2) & 0xffff);
  expectFault(cpu, UD, -1);
});

test("xchg swaps register and memory; 91-97 swap with eax; 90 is nop", () => {
  const { cpu, mem } = setup([0x87, 0x18, 0x91, 0x90, 0xf3, 0x90, 0x66, 0x92, 0x86, 0xe0]);
  cpu.regs[EAX] = 0x3000;
  cpu.regs[EBX] = 0x11111111;
  cpu.regs[ECX] = 0x22222222;
  cpu.regs[EDX] = 0x33334444;
  wr32(mem, 0x3000, 0xdeadbeef);
  cpu.run(1);
  assert.equal(rd32(mem, 0x3000), 0x11111111);
  assert.equal(cpu.regs[EBX] >>> 0, 0xdeadbeef);
  cpu.run(3); // xchg ecx, eax; nop; pause
  assert.equal(cpu.regs[EAX], 0x22222222);
  assert.equal(cpu.regs[ECX], 0x3000);
  cpu.run(1); // xchg dx, ax
  assert.equal(cpu.regs[EAX] >>> 0, 0x22224444);
  assert.equal(cpu.regs[EDX] >>> 0, 0x33332222);
  cpu.run(1); // xchg al, ah
  assert.equal(cpu.regs[EAX] >>> 0, 0x22224444);
  assert.equal(cpu.eip, CODE + 10);
});

test("bswap reverses the bytes of a 32-bit register", () => {
  const { cpu } = setup([0x0f, 0xc9]);
  cpu.regs[ECX] = 0x12345678;
  cpu.run(1);
  assert.equal(cpu.regs[ECX], 0x78563412);
});

test("xlat reads [EBX+AL] (BX+AL under 0x67) in DS or the override", () => {
  const { cpu, mem } = setup([0xd7, 0x26, 0x67, 0xd7]);
  cpu.regs[EBX] = 0x13000;
  cpu.regs[EAX] = 0x10;
  mem[0x13010] = 0x42;
  cpu.loadSegmentCache(0, 0x10, 0x100, 0xffffffff, 0xc093); // ES base 0x100
  mem[0x100 + 0x3042] = 0x77;
  cpu.run(2);
  assert.equal(cpu.regs[EAX], 0x77);
});

// ------------------------------------------------------------------ stack

test("push/pop move 32 or 16 bits; push esp pushes the old value; pop esp loads it", () => {
  const { cpu, mem } = setup([0x54, 0x66, 0x53, 0x66, 0x5a, 0x5c]);
  cpu.regs[EBX] = 0x1234abcd;
  cpu.run(2);
  assert.equal(rd32(mem, STACK - 4), STACK);
  assert.equal(rd16(mem, STACK - 6), 0xabcd);
  assert.equal(cpu.regs[ESP], STACK - 6);
  cpu.run(1); // pop dx
  assert.equal(cpu.regs[EDX] & 0xffff, 0xabcd);
  assert.equal(cpu.regs[ESP], STACK - 4);
  cpu.run(1); // pop esp
  assert.equal(cpu.regs[ESP], STACK);
});

test("push imm8 is sign-extended; push imm16 under 0x66 pushes 2 bytes", () => {
  const { cpu, mem } = setup([0x6a, 0xfe, 0x66, 0x68, 0x34, 0x12]);
  cpu.run(2);
  assert.equal(rd32(mem, STACK - 4), 0xfffffffe);
  assert.equal(rd16(mem, STACK - 6), 0x1234);
  assert.equal(cpu.regs[ESP], STACK - 6);
});

test("pop r/m with an ESP-based address uses ESP after the pop", () => {
  const { cpu, mem } = setup([0x8f, 0x04, 0x24, 0xff, 0x34, 0x24]); // pop [esp]; push [esp]
  wr32(mem, STACK, 0xaabbccdd);
  cpu.run(1);
  assert.equal(cpu.regs[ESP], STACK + 4);
  assert.equal(rd32(mem, STACK + 4), 0xaabbccdd);
  cpu.run(1);
  assert.equal(rd32(mem, STACK), 0xaabbccdd);
});

test("8F with a non-zero reg field is #UD", () => {
  const { cpu } = setup([0x8f, 0xc8]);
  expectFault(cpu, UD, -1);
  assert.equal(cpu.regs[ESP], STACK);
});

test("pusha pushes the original esp; popa skips esp", () => {
  const { cpu, mem } = setup([0x60, 0x61]);
  for (let r = 0; r < 8; r++) if (r !== ESP) cpu.regs[r] = 0x100 * (r + 1);
  cpu.run(1);
  assert.equal(cpu.regs[ESP], STACK - 32);
  assert.equal(rd32(mem, STACK - 4), 0x100); // eax first
  assert.equal(rd32(mem, STACK - 20), STACK); // esp
  assert.equal(rd32(mem, STACK - 32), 0x800); // edi last
  wr32(mem, STACK - 20, 0x5555);
  for (let r = 0; r < 8; r++) if (r !== ESP) cpu.regs[r] = 0;
  cpu.run(1);
  assert.equal(cpu.regs[ESP], STACK);
  for (let r = 0; r < 8; r++) if (r !== ESP) assert.equal(cpu.regs[r], 0x100 * (r + 1));
});

test("popa that faults leaves every register unchanged", () => {
  const { cpu } = setup([0x61]);
  cpu.loadSegmentCache(SS, 0x10, 0, STACK + 16, 0x4093);
  cpu.regs[EAX] = 7;
  expectFault(cpu, 12, 0);
  assert.equal(cpu.regs[EAX], 7);
  assert.equal(cpu.regs[ESP], STACK);
});

test("16-bit pusha/popa move words", () => {
  const { cpu, mem } = setup([0x66, 0x60, 0x66, 0x61]);
  cpu.regs[EAX] = 0x11112222;
  cpu.run(1);
  assert.equal(cpu.regs[ESP], STACK - 16);
  assert.equal(rd16(mem, STACK - 2), 0x2222);
  assert.equal(rd16(mem, STACK - 10), STACK & 0xffff);
  cpu.regs[EAX] = 0x33330000;
  cpu.run(1);
  assert.equal(cpu.regs[EAX] >>> 0, 0x33332222);
  assert.equal(cpu.regs[ESP], STACK);
});

test("enter with level 0 pushes ebp and allocates; leave undoes it", () => {
  const { cpu, mem } = setup([0xc8, 0x10, 0x00, 0x00, 0xc9]);
  cpu.regs[EBP] = 0x1234;
  cpu.run(1);
  assert.equal(rd32(mem, STACK - 4), 0x1234);
  assert.equal(cpu.regs[EBP], STACK - 4);
  assert.equal(cpu.regs[ESP], STACK - 4 - 0x10);
  cpu.run(1);
  assert.equal(cpu.regs[EBP], 0x1234);
  assert.equal(cpu.regs[ESP], STACK);
});

test("enter with nesting level 3 copies two frame pointers and pushes the frame", () => {
  const { cpu, mem } = setup([0xc8, 0x08, 0x00, 0x03]);
  cpu.regs[EBP] = 0x7000;
  wr32(mem, 0x7000 - 4, 0xaaaa);
  wr32(mem, 0x7000 - 8, 0xbbbb);
  cpu.run(1);
  const frame = STACK - 4;
  assert.equal(rd32(mem, frame), 0x7000);
  assert.equal(rd32(mem, frame - 4), 0xaaaa);
  assert.equal(rd32(mem, frame - 8), 0xbbbb);
  assert.equal(rd32(mem, frame - 12), frame);
  assert.equal(cpu.regs[EBP], frame);
  assert.equal(cpu.regs[ESP], frame - 12 - 8);
});

test("enter nesting level is taken mod 32", () => {
  const { cpu } = setup([0xc8, 0x00, 0x00, 0x20]);
  cpu.run(1);
  assert.equal(cpu.regs[ESP], STACK - 4);
});

// ------------------------------------------------------------------ flags

test("pushfd clears VM and RF in the pushed image", () => {
  const { cpu, mem } = setup([0x9c]);
  cpu.setFlags(0x2 | RF | CF | ZF);
  cpu.run(1);
  assert.equal(rd32(mem, STACK - 4), 0x2 | CF | ZF);
});

test("popf at CPL 0 changes IOPL and IF and clears RF", () => {
  const { cpu, mem } = setup([0x9d]);
  cpu.setFlags(0x2 | RF);
  wr32(mem, STACK, IOPL | IF | CF | OF | VM | 0xffc00000);
  cpu.run(1);
  assert.equal(cpu.getFlags(), 0x2 | IOPL | IF | CF | OF);
});

test("popf at CPL 3 leaves IOPL and IF unchanged", () => {
  const { cpu, mem } = setup([0x9d]);
  cpu.setCpl(3);
  cpu.setFlags(0x2 | IF);
  wr32(mem, STACK, IOPL | SF | DF);
  cpu.run(1);
  assert.equal(cpu.getFlags(), 0x2 | IF | SF | DF);
});

test("popf at CPL <= IOPL changes IF but not IOPL", () => {
  const { cpu, mem } = setup([0x9d]);
  cpu.setCpl(1);
  cpu.setFlags(0x2 | (2 << 12));
  wr32(mem, STACK, IF | (1 << 12));
  cpu.run(1);
  assert.equal(cpu.getFlags(), 0x2 | IF | (2 << 12));
});

test("16-bit popf touches only the low 16 bits", () => {
  const { cpu, mem } = setup([0x66, 0x9d, 0x66, 0x9c]);
  cpu.setFlags(0x2 | (1 << 18) | RF);
  mem[STACK] = 0xd5;
  mem[STACK + 1] = 0x0e;
  cpu.run(1);
  assert.equal(cpu.getFlags(), 0x0ed7 | (1 << 18) | RF);
  assert.equal(cpu.regs[ESP], STACK + 2);
  cpu.run(1);
  assert.equal(rd16(mem, STACK), 0x0ed7);
});

test("lahf/sahf move SF ZF AF PF CF through AH", () => {
  const { cpu } = setup([0x9f, 0x9e]);
  cpu.setFlags(0x2 | SF | PF | OF);
  cpu.run(1);
  assert.equal(cpu.regs8[1], SF | PF | 2);
  cpu.regs8[1] = 0xff;
  cpu.run(1);
  assert.equal(cpu.getFlags(), 0x2 | SF | ZF | AF | PF | CF | OF);
});

test("clc, stc, cmc, cld, std", () => {
  const { cpu } = setup([0xf9, 0xf5, 0xf5, 0xf8, 0xfd, 0xfc]);
  const seen: number[] = [];
  for (let i = 0; i < 6; i++) {
    cpu.run(1);
    seen.push(cpu.getFlags() & (CF | DF));
  }
  assert.deepEqual(seen, [CF, 0, CF, 0, DF, 0]);
});

// ------------------------------------------------------------------ control flow

test("jmp short and near are relative to the next instruction", () => {
  const { cpu } = setup([0xeb, 0x03, 0, 0, 0, 0xe9, 0xf6, 0xff, 0xff, 0xff]);
  cpu.run(1);
  assert.equal(cpu.eip, CODE + 5);
  cpu.run(1);
  assert.equal(cpu.eip, CODE);
});

test("jcc takes the branch only when the condition holds", () => {
  // cmp needs the alu; set flags directly instead.
  const { cpu } = setup([0x74, 0x10]);
  cpu.setFlags(0x2);
  cpu.run(1);
  assert.equal(cpu.eip, CODE + 2);
  cpu.eip = CODE;
  cpu.setFlags(0x2 | ZF);
  cpu.run(1);
  assert.equal(cpu.eip, CODE + 0x12);
  // 0F 8F (jg rel32): SF != OF -> not taken.
  const b = setup([0x0f, 0x8f, 0x00, 0x01, 0x00, 0x00]);
  b.cpu.setFlags(0x2 | SF);
  b.cpu.run(1);
  assert.equal(b.cpu.eip, CODE + 6);
  b.cpu.eip = CODE;
  b.cpu.setFlags(0x2 | SF | OF);
  b.cpu.run(1);
  assert.equal(b.cpu.eip, CODE + 6 + 0x100);
});

test("a jump beyond the CS limit raises #GP(0) with eip unchanged", () => {
  const { cpu } = setup([0xe8, 0x00, 0x10, 0x00, 0x00]); // call +0x1000
  cpu.loadSegmentCache(CS, 0x08, 0, 0x1fff, 0x409b);
  expectFault(cpu, GP, 0);
  assert.equal(cpu.regs[ESP], STACK, "nothing pushed");
});

test("jumps under 0x66 truncate eip to 16 bits", () => {
  const { cpu } = setup([0x66, 0xe9, 0x00, 0xe0]); // jmp rel16 -0x2000
  cpu.run(1);
  assert.equal(cpu.eip, (CODE + 4 - 0x2000) & 0xffff);
});

test("call pushes the return address; ret and ret n pop it", () => {
  const { cpu, mem } = setup([0xe8, 0x0b, 0x00, 0x00, 0x00]);
  mem.set([0xc2, 0x08, 0x00], CODE + 0x10);
  cpu.run(1);
  assert.equal(cpu.eip, CODE + 0x10);
  assert.equal(rd32(mem, STACK - 4), CODE + 5);
  cpu.run(1);
  assert.equal(cpu.eip, CODE + 5);
  assert.equal(cpu.regs[ESP], STACK + 8);
});

test("call r/m and jmp r/m go to an absolute target", () => {
  const { cpu, mem } = setup([0xff, 0xd0, 0xff, 0x23]); // call eax; jmp [ebx]
  mem.set([0xc3], 0x2000);
  cpu.regs[EAX] = 0x2000;
  cpu.regs[EBX] = 0x3000;
  wr32(mem, 0x3000, 0x4444);
  cpu.run(2);
  assert.equal(cpu.eip, CODE + 2);
  cpu.run(1);
  assert.equal(cpu.eip, 0x4444);
});

test("call and ret under 0x66 push and pop 16 bits", () => {
  const { cpu, mem } = setup([0x66, 0xe8, 0x02, 0x00, 0, 0, 0x66, 0xc3]);
  cpu.run(1);
  assert.equal(cpu.regs[ESP], STACK - 2);
  assert.equal(rd16(mem, STACK - 2), CODE + 4);
  assert.equal(cpu.eip, CODE + 6);
  cpu.run(1);
  assert.equal(cpu.eip, CODE + 4);
  assert.equal(cpu.regs[ESP], STACK);
});

test("loop decrements ECX and jumps while it is non-zero; 0x67 uses CX", () => {
  const { cpu } = setup([0xe2, 0xfe]);
  cpu.regs[ECX] = 3;
  cpu.run(3);
  assert.equal(cpu.regs[ECX], 0);
  assert.equal(cpu.eip, CODE + 2);
  const b = setup([0x67, 0xe2, 0xfd]);
  b.cpu.regs[ECX] = 0x10000;
  b.cpu.run(1);
  assert.equal(b.cpu.regs[ECX], 0x1ffff);
  assert.equal(b.cpu.eip, CODE);
});

test("loope and loopne also test ZF; jecxz tests ECX", () => {
  const { cpu } = setup([0xe1, 0x10]);
  cpu.regs[ECX] = 5;
  cpu.setFlags(0x2);
  cpu.run(1);
  assert.equal(cpu.eip, CODE + 2);
  assert.equal(cpu.regs[ECX], 4);
  const b = setup([0xe0, 0x10]);
  b.cpu.regs[ECX] = 5;
  b.cpu.setFlags(0x2);
  b.cpu.run(1);
  assert.equal(b.cpu.eip, CODE + 0x12);
  const c = setup([0xe3, 0x10]);
  c.cpu.regs[ECX] = 0;
  c.cpu.run(1);
  assert.equal(c.cpu.eip, CODE + 0x12);
  assert.equal(c.cpu.regs[ECX], 0);
});

// ------------------------------------------------------------------ cpuid, rdtsc, nops

test("cpuid reports GenuineIntel family 6 without SSE/MMX/FXSR/PAE/APIC/SEP", () => {
  const { cpu } = setup([0x0f, 0xa2, 0x0f, 0xa2]);
  cpu.regs[EAX] = 0;
  cpu.run(1);
  const vendor = Buffer.alloc(12);
  vendor.writeInt32LE(cpu.regs[EBX], 0);
  vendor.writeInt32LE(cpu.regs[EDX], 4);
  vendor.writeInt32LE(cpu.regs[ECX], 8);
  assert.equal(vendor.toString("latin1"), "GenuineIntel");
  cpu.regs[EAX] = 1;
  cpu.run(1);
  assert.equal((cpu.regs[EAX] >> 8) & 0xf, 6);
  const edx = cpu.regs[EDX];
  for (const bit of [6, 9, 11, 23, 24, 25, 26]) assert.equal((edx >> bit) & 1, 0, `bit ${bit}`);
  for (const bit of [0, 4, 8, 15]) assert.equal((edx >> bit) & 1, 1, `bit ${bit}`);
});

test("rdtsc returns the TSC; with CR4.TSD at CPL 3 it is #GP(0)", () => {
  const { cpu } = setup([0x0f, 0x31, 0x0f, 0x31]);
  cpu.tscOffset = 0x100000000 * 3 + 5;
  cpu.run(1);
  assert.equal(cpu.regs[EDX], 3);
  assert.equal(cpu.regs[EAX], 5);
  cpu.cr4 = 4;
  cpu.setCpl(3);
  expectFault(cpu, GP, 0);
});

test("multi-byte nop and prefetch hints do nothing", () => {
  const { cpu } = setup([0x0f, 0x1f, 0x44, 0x00, 0x00, 0x0f, 0x18, 0x08, 0x0f, 0x0d, 0x08]);
  cpu.run(3);
  assert.equal(cpu.eip, CODE + 11);
});
