import assert from "node:assert/strict";
import { test } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CF, CR0_PG, DF, EAX, ECX, EDI, ES, ESI, ESP, Exit, GP, PF_VEC, SF, ZF } from "../src/cpu/regs.js";

const CODE = 0x1000;

function setup(bytes: number[]): { cpu: Cpu; mem: Uint8Array } {
  const mem = new Uint8Array(1 << 22);
  const cpu = new Cpu(mem);
  cpu.resetFlat32();
  mem.set(bytes, CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  return { cpu, mem };
}

function rd32(mem: Uint8Array, a: number): number {
  return (mem[a] | (mem[a + 1] << 8) | (mem[a + 2] << 16) | (mem[a + 3] << 24)) >>> 0;
}

function fill(mem: Uint8Array, at: number, n: number, f: (i: number) => number): void {
  for (let i = 0; i < n; i++) mem[at + i] = f(i) & 0xff;
}

function regs(cpu: Cpu): { esi: number; edi: number; ecx: number } {
  return { esi: cpu.regs[ESI] >>> 0, edi: cpu.regs[EDI] >>> 0, ecx: cpu.regs[ECX] >>> 0 };
}

/** Identity-maps the first 4 MiB with 4 KiB pages, leaving the pages in `holes` not present. */
function enablePaging(cpu: Cpu, mem: Uint8Array, holes: number[]): void {
  const pd = 0x200000;
  const pt = 0x201000;
  const w = (a: number, v: number) => {
    for (let i = 0; i < 4; i++) mem[a + i] = (v >>> (i * 8)) & 0xff;
  };
  w(pd, pt | 7);
  for (let i = 0; i < 1024; i++) w(pt + i * 4, holes.includes(i) ? 0 : (i << 12) | 7);
  cpu.setCr3(pd);
  cpu.setCr0(cpu.cr0 | CR0_PG);
}

test("rep movsb with ECX=0 does nothing", () => {
  const { cpu, mem } = setup([0xf3, 0xa4]);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x4000;
  cpu.regs[ECX] = 0;
  mem[0x3000] = 0x55;
  assert.equal(cpu.run(1), Exit.Budget);
  assert.deepEqual(regs(cpu), { esi: 0x3000, edi: 0x4000, ecx: 0 });
  assert.equal(mem[0x4000], 0);
  assert.equal(cpu.eip, CODE + 2);
});

test("rep movsd copies forward and leaves ESI/EDI after the data, ECX = 0", () => {
  const { cpu, mem } = setup([0xf3, 0xa5]);
  fill(mem, 0x3000, 0x2100, (i) => i * 7 + 1);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x6002; // unaligned, crosses pages
  cpu.regs[ECX] = 0x840;
  cpu.run(1);
  assert.deepEqual(regs(cpu), { esi: 0x3000 + 0x2100, edi: 0x6002 + 0x2100, ecx: 0 });
  for (let i = 0; i < 0x2100; i++) assert.equal(mem[0x6002 + i], (i * 7 + 1) & 0xff);
  assert.equal(mem[0x6002 + 0x2100], 0);
});

test("rep movsb with the destination one byte above the source replicates the first byte", () => {
  const { cpu, mem } = setup([0xf3, 0xa4]);
  fill(mem, 0x3000, 16, (i) => i + 1);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x3001;
  cpu.regs[ECX] = 15;
  cpu.run(1);
  for (let i = 0; i < 16; i++) assert.equal(mem[0x3000 + i], 1);
});

test("rep movsd with an overlap of 2 bytes copies element by element", () => {
  const { cpu, mem } = setup([0xf3, 0xa5]);
  fill(mem, 0x3000, 16, (i) => i + 1);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x3002;
  cpu.regs[ECX] = 3;
  cpu.run(1);
  // Element 0: bytes 1..4 -> 3002; element 1 reads 3004..3007 = [3,4,7,8] -> 3006; element 2 reads 3008.. = [3,4,9,10]... recomputed below.
  const ref = new Uint8Array(16);
  for (let i = 0; i < 16; i++) ref[i] = i + 1;
  for (let e = 0; e < 3; e++) {
    const v = ref.slice(e * 4, e * 4 + 4);
    ref.set(v, 2 + e * 4);
  }
  assert.deepEqual([...mem.subarray(0x3000, 0x3010)], [...ref]);
});

test("with DF set, rep movsw copies downwards", () => {
  const { cpu, mem } = setup([0xfd, 0x66, 0xf3, 0xa5]);
  fill(mem, 0x3000, 8, (i) => 0xa0 + i);
  cpu.regs[ESI] = 0x3006;
  cpu.regs[EDI] = 0x4006;
  cpu.regs[ECX] = 4;
  cpu.run(2);
  assert.deepEqual(regs(cpu), { esi: 0x2ffe, edi: 0x3ffe, ecx: 0 });
  assert.deepEqual([...mem.subarray(0x4000, 0x4008)], [...mem.subarray(0x3000, 0x3008)]);
});

test("movsb under 0x67 uses SI/DI and wraps at 64 KiB", () => {
  const { cpu, mem } = setup([0x67, 0xa4]);
  cpu.regs[ESI] = 0x1ffff;
  cpu.regs[EDI] = 0x2fffe;
  mem[0xffff] = 0x99;
  cpu.run(1);
  assert.equal(mem[0xfffe], 0x99);
  assert.equal(cpu.regs[ESI], 0x10000);
  assert.equal(cpu.regs[EDI], 0x2ffff);
});

test("rep movsb under 0x67 counts with CX and leaves ECX's high half", () => {
  const { cpu, mem } = setup([0x67, 0xf3, 0xa4]);
  fill(mem, 0x3000, 4, (i) => i + 1);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x4000;
  cpu.regs[ECX] = 0x50004;
  cpu.run(1);
  assert.deepEqual(regs(cpu), { esi: 0x3004, edi: 0x4004, ecx: 0x50000 });
  assert.equal(mem[0x4003], 4);
});

test("the source segment can be overridden; the destination is always ES", () => {
  const { cpu, mem } = setup([0x64, 0xa4, 0x26, 0xaa]); // fs movsb; es stosb (override ignored)
  cpu.loadSegmentCache(4, 0x10, 0x5000, 0xffffffff, 0xc093); // FS
  cpu.loadSegmentCache(ES, 0x10, 0x100, 0xffffffff, 0xc093);
  mem[0x5010] = 0x42;
  cpu.regs[ESI] = 0x10;
  cpu.regs[EDI] = 0x20;
  cpu.regs[EAX] = 0x77;
  cpu.run(2);
  assert.equal(mem[0x120], 0x42);
  assert.equal(mem[0x121], 0x77);
});

test("F2 before movs acts as rep", () => {
  const { cpu, mem } = setup([0xf2, 0xa4]);
  fill(mem, 0x3000, 3, () => 9);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x4000;
  cpu.regs[ECX] = 3;
  cpu.run(1);
  assert.equal(cpu.regs[ECX], 0);
  assert.equal(mem[0x4002], 9);
});

test("rep stosd fills unaligned memory across pages", () => {
  const { cpu, mem } = setup([0xf3, 0xab]);
  cpu.regs[EAX] = 0x11223344;
  cpu.regs[EDI] = 0x3ffd;
  cpu.regs[ECX] = 0x401;
  cpu.run(1);
  assert.deepEqual(regs(cpu), { esi: 0, edi: 0x3ffd + 0x1004, ecx: 0 });
  for (let i = 0; i < 0x401; i++) assert.equal(rd32(mem, 0x3ffd + i * 4), 0x11223344);
  assert.equal(mem[0x3ffd + 0x1004], 0);
});

test("rep stosb with DF set fills downwards", () => {
  const { cpu, mem } = setup([0xfd, 0xf3, 0xaa]);
  cpu.regs[EAX] = 0xab;
  cpu.regs[EDI] = 0x3003;
  cpu.regs[ECX] = 4;
  cpu.run(2);
  assert.equal(cpu.regs[EDI], 0x2fff);
  assert.deepEqual([...mem.subarray(0x2fff, 0x3005)], [0, 0xab, 0xab, 0xab, 0xab, 0]);
});

test("stosw under 0x66 stores AX", () => {
  const { cpu, mem } = setup([0x66, 0xab]);
  cpu.regs[EAX] = 0x11223344;
  cpu.regs[EDI] = 0x3000;
  cpu.run(1);
  assert.equal(rd32(mem, 0x3000), 0x3344);
  assert.equal(cpu.regs[EDI], 0x3002);
});

test("lodsd loads EAX; rep lodsb leaves the last byte in AL", () => {
  const { cpu, mem } = setup([0xad, 0xf3, 0xac]);
  fill(mem, 0x3000, 8, (i) => 0x10 + i);
  cpu.regs[ESI] = 0x3000;
  cpu.run(1);
  assert.equal(cpu.regs[EAX], 0x13121110);
  cpu.regs[ECX] = 3;
  cpu.run(1);
  assert.equal(cpu.regs[EAX], 0x13121116);
  assert.equal(cpu.regs[ESI], 0x3007);
});

test("repne scasb stops after the matching byte with ZF set", () => {
  const { cpu, mem } = setup([0xf2, 0xae]);
  fill(mem, 0x3000, 0x1800, () => 1);
  mem[0x3000 + 0x1234] = 0;
  cpu.regs[EAX] = 0;
  cpu.regs[EDI] = 0x3000;
  cpu.regs[ECX] = -1;
  cpu.run(1);
  assert.equal(cpu.regs[EDI], 0x3000 + 0x1235);
  assert.equal(cpu.regs[ECX] >>> 0, 0xffffffff - 0x1235);
  assert.equal(cpu.zf(), 1);
});

test("repne scasb without a match runs ECX down to 0 with flags of the last compare", () => {
  const { cpu, mem } = setup([0xf2, 0xae]);
  fill(mem, 0x3000, 0x10, () => 5);
  cpu.regs[EAX] = 3;
  cpu.regs[EDI] = 0x3000;
  cpu.regs[ECX] = 0x10;
  cpu.run(1);
  assert.equal(cpu.regs[ECX], 0);
  assert.equal(cpu.regs[EDI], 0x3010);
  assert.equal(cpu.getFlags() & (ZF | CF | SF), CF | SF); // 3 - 5
});

test("repe scasw skips equal words", () => {
  const { cpu, mem } = setup([0x66, 0xf3, 0xaf]);
  mem.set([0x34, 0x12, 0x34, 0x12, 0x35, 0x12], 0x3000);
  cpu.regs[EAX] = 0x1234;
  cpu.regs[EDI] = 0x3000;
  cpu.regs[ECX] = 10;
  cpu.run(1);
  assert.equal(cpu.regs[ECX], 7);
  assert.equal(cpu.regs[EDI], 0x3006);
  assert.equal(cpu.getFlags() & (ZF | CF), CF);
});

test("repe cmpsb stops at the first difference with that compare's flags", () => {
  const { cpu, mem } = setup([0xf3, 0xa6]);
  mem.set([1, 2, 3, 4], 0x3000);
  mem.set([1, 2, 9, 4], 0x4000);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x4000;
  cpu.regs[ECX] = 4;
  cpu.run(1);
  assert.deepEqual(regs(cpu), { esi: 0x3003, edi: 0x4003, ecx: 1 });
  assert.equal(cpu.getFlags() & (ZF | CF | SF), CF | SF); // 3 - 9
});

test("cmpsd compares source minus destination", () => {
  const { cpu, mem } = setup([0xa7]);
  mem.set([0, 0, 0, 0x80], 0x3000);
  mem.set([1, 0, 0, 0], 0x4000);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x4000;
  cpu.run(1);
  // 0x80000000 - 1 = 0x7fffffff: OF set, CF clear.
  assert.equal(cpu.of(), 1);
  assert.equal(cpu.cf(), 0);
  assert.equal(cpu.regs[ESI], 0x3004);
});

test("rep cmpsb with ECX=0 leaves the flags unchanged", () => {
  const { cpu } = setup([0xf3, 0xa6]);
  cpu.setFlags(0x2 | ZF | CF);
  cpu.regs[ECX] = 0;
  cpu.run(1);
  assert.equal(cpu.getFlags(), 0x2 | ZF | CF);
});

test("a fault in the middle of rep movsb leaves ECX/ESI/EDI at the faulting iteration", () => {
  const { cpu, mem } = setup([0xf3, 0xa4]);
  cpu.loadSegmentCache(ES, 0x10, 0, 0x4005, 0x4093);
  fill(mem, 0x3000, 10, (i) => i + 1);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x4000;
  cpu.regs[ECX] = 10;
  assert.equal(cpu.run(1), Exit.Exception);
  assert.equal(cpu.exitVector, GP);
  assert.equal(cpu.exitErrorCode, 0);
  assert.equal(cpu.eip, CODE);
  assert.deepEqual(regs(cpu), { esi: 0x3006, edi: 0x4006, ecx: 4 });
  assert.equal(mem[0x4005], 6);
  assert.equal(mem[0x4006], 0);
});

test("a page fault in the middle of rep movsb reports the page and stops there", () => {
  const { cpu, mem } = setup([0xf3, 0xa4]);
  enablePaging(cpu, mem, [5]);
  fill(mem, 0x3000, 0x1000, (i) => i ^ 0x5a);
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = 0x4800;
  cpu.regs[ECX] = 0x1000;
  assert.equal(cpu.run(1), Exit.Exception);
  assert.equal(cpu.exitVector, PF_VEC);
  assert.equal(cpu.exitErrorCode, 2); // write, not present, supervisor
  assert.equal(cpu.exitCr2, 0x5000);
  assert.deepEqual(regs(cpu), { esi: 0x3800, edi: 0x5000, ecx: 0x800 });
  assert.equal(mem[0x4fff], (0x7ff ^ 0x5a) & 0xff);
});

test("rep movsb that overwrites code already decoded is seen on the next execution", () => {
  const { cpu, mem } = setup([0xf3, 0xa4, 0xb8, 0x01, 0x00, 0x00, 0x00]);
  cpu.eip = CODE + 2;
  cpu.run(1); // decode and run mov eax, 1
  assert.equal(cpu.regs[EAX], 1);
  mem.set([0xb8, 0x78, 0x56, 0x34, 0x12], 0x3000);
  cpu.eip = CODE;
  cpu.regs[ESI] = 0x3000;
  cpu.regs[EDI] = CODE + 2;
  cpu.regs[ECX] = 5;
  cpu.run(2);
  assert.equal(cpu.regs[EAX], 0x12345678);
});

test("a long rep stosb resumes from the instruction after 65536 elements", () => {
  const { cpu, mem } = setup([0xf3, 0xaa]);
  cpu.regs[EAX] = 0xcc;
  cpu.regs[EDI] = 0x10000;
  cpu.regs[ECX] = 200000;
  cpu.run(1);
  assert.equal(cpu.eip, CODE);
  assert.ok(cpu.regs[ECX] > 0 && cpu.regs[ECX] < 200000);
  let steps = 1;
  while (cpu.eip === CODE && steps < 10) {
    cpu.run(1);
    steps++;
  }
  assert.equal(cpu.eip, CODE + 2);
  assert.equal(cpu.regs[ECX], 0);
  assert.equal(cpu.regs[EDI], 0x10000 + 200000);
  assert.equal(mem[0x10000 + 199999], 0xcc);
  assert.equal(mem[0x10000 + 200000], 0);
});

test("rep movsd through paging copies with the fast path and the same result", () => {
  const { cpu, mem } = setup([0xf3, 0xa5]);
  enablePaging(cpu, mem, []);
  fill(mem, 0x10000, 0x3000, (i) => i * 13);
  cpu.regs[ESI] = 0x10000;
  cpu.regs[EDI] = 0x20010;
  cpu.regs[ECX] = 0xc00;
  cpu.run(1);
  for (let i = 0; i < 0x3000; i++) assert.equal(mem[0x20010 + i], (i * 13) & 0xff);
  assert.equal(cpu.regs[ECX], 0);
  assert.equal(cpu.getFlags() & DF, 0);
});
