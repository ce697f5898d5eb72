import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CS, DS, ES, ESP, Exit, FS, GS, LDTR, SS, TR } from "../src/cpu/regs.js";
import { enterRing, hostCall, iretTo, loadSegment } from "../src/cpu/segments.js";

// Memory layout of the test machine.
const GDT = 0x10000;
const TSS = 0x11000;
const LDT = 0x12000;
const IDT = 0x20000;
const CODE = 0x1000;
const STACK0 = 0x9000;
const STACK1 = 0xa000;
const STACK3 = 0xb000;

// Selectors.
const K0_CS = 0x08;
const K0_DS = 0x10;
const K1_CS = 0x19;
const K1_DS = 0x21;
const U_CS = 0x2b;
const U_DS = 0x33;
const TSS_SEL = 0x38;
const NP_DS = 0x43; // not present, DPL 3
const GATE0 = 0x4b; // call gate DPL 3 -> ring 0, 2 parameters
const K0_DS_NA = 0x50; // ring-0 data, accessed bit clear
const CONF_CS = 0x58; // ring-0 conforming code
const LDT_SEL = 0x60;
const GATE1 = 0x6b; // call gate DPL 3 -> ring 1, no parameters
const SMALL_DS = 0x70; // ring-0 data, limit 0xfff
const NP_CS1 = 0x79; // ring-1 code, not present
const GDT_LIMIT = 16 * 8 - 1;

function put32(mem: Uint8Array, a: number, v: number): void {
  new DataView(mem.buffer).setUint32(a, v >>> 0, true);
}
function get32(mem: Uint8Array, a: number): number {
  return new DataView(mem.buffer).getUint32(a, true);
}
function get16(mem: Uint8Array, a: number): number {
  return new DataView(mem.buffer).getUint16(a, true);
}

/** Writes a code/data/system descriptor: access byte, flags nibble (G, D/B). */
function desc(mem: Uint8Array, at: number, base: number, limit: number, access: number, flags: number): void {
  put32(mem, at, ((base & 0xffff) << 16) | (limit & 0xffff));
  put32(
    mem,
    at + 4,
    (base & 0xff000000) |
      ((flags & 0xf) << 20) |
      (limit & 0xf0000) |
      ((access & 0xff) << 8) |
      ((base >>> 16) & 0xff),
  );
}

function gate(
  mem: Uint8Array,
  at: number,
  sel: number,
  off: number,
  type: number,
  dpl: number,
  extra = 0,
): void {
  put32(mem, at, (sel << 16) | (off & 0xffff));
  put32(mem, at + 4, (off & 0xffff0000) | 0x8000 | (dpl << 13) | (type << 8) | extra);
}

/** IDT gate for a vector (type 0xe interrupt gate, 0xf trap gate). */
function idtGate(mem: Uint8Array, vector: number, sel: number, off: number, type: number, dpl: number): void {
  gate(mem, IDT + vector * 8, sel, off, type, dpl);
}

const FLAT = 0xfffff;
function machine(): { cpu: Cpu; mem: Uint8Array } {
  const mem = new Uint8Array(1 << 24);
  const cpu = new Cpu(mem);
  cpu.resetFlat32();
  desc(mem, GDT + 0x08, 0, FLAT, 0x9b, 0xc);
  desc(mem, GDT + 0x10, 0, FLAT, 0x93, 0xc);
  desc(mem, GDT + 0x18, 0, FLAT, 0xbb, 0xc);
  desc(mem, GDT + 0x20, 0, FLAT, 0xb3, 0xc);
  desc(mem, GDT + 0x28, 0, FLAT, 0xfb, 0xc);
  desc(mem, GDT + 0x30, 0, FLAT, 0xf3, 0xc);
  desc(mem, GDT + 0x38, TSS, 0x67 + 0x2000 / 8 + 1, 0x89, 0);
  desc(mem, GDT + 0x40, 0, FLAT, 0x73, 0xc);
  gate(mem, GDT + 0x48, K0_CS, 0x3000, 0xc, 3, 2);
  desc(mem, GDT + 0x50, 0, FLAT, 0x92, 0xc);
  desc(mem, GDT + 0x58, 0, FLAT, 0x9f, 0xc);
  desc(mem, GDT + 0x60, LDT, 0x0f, 0x82, 0);
  gate(mem, GDT + 0x68, K1_CS, 0x3100, 0xc, 3, 0);
  desc(mem, GDT + 0x70, 0, 0xfff, 0x93, 0x4);
  desc(mem, GDT + 0x78, 0, FLAT, 0x3b, 0xc);
  // LDT: entry 1 (selector 0x0f) ring-3 data.
  desc(mem, LDT + 8, 0x100000, FLAT, 0xf3, 0xc);
  // TSS: ring 0/1 stacks; I/O bitmap at 0x68 allowing only ports 0x60-0x67.
  put32(mem, TSS + 4, STACK0);
  put32(mem, TSS + 8, K0_DS);
  put32(mem, TSS + 12, STACK1);
  put32(mem, TSS + 16, K1_DS);
  put32(mem, TSS + 100, 0x68 << 16);
  mem.fill(0xff, TSS + 0x68, TSS + 0x68 + 0x2000 / 8 + 1);
  mem[TSS + 0x68 + 0x60 / 8] = 0x00;
  cpu.gdtrBase = GDT;
  cpu.gdtrLimit = GDT_LIMIT;
  cpu.idtrBase = IDT;
  cpu.idtrLimit = 256 * 8 - 1;
  cpu.loadSegmentCache(TR, TSS_SEL, TSS, 0x67 + 0x2000 / 8 + 1, 0x8b);
  return { cpu, mem };
}

/** Puts the CPU at ring `cpl` with flat segments of that ring. */
function ring(cpu: Cpu, cpl: number): void {
  const cs = [K0_CS, K1_CS, 0, U_CS][cpl];
  const ds = [K0_DS, K1_DS, 0, U_DS][cpl];
  const dpl = cpl << 5;
  cpu.loadSegmentCache(CS, cs, 0, -1, 0xc09b | dpl);
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegmentCache(s, ds, 0, -1, 0xc093 | dpl);
  cpu.setCpl(cpl);
  cpu.regs[ESP] = [STACK0 - 0x100, STACK1 - 0x100, 0, STACK3][cpl];
}

function code(cpu: Cpu, mem: Uint8Array, bytes: number[], at = CODE): void {
  mem.set(bytes, at);
  cpu.invalidateCode(at, bytes.length);
  cpu.eip = at;
}

/** Architectural-mode run: the handler at `at` is a hlt; returns after it. */
function runToHandler(cpu: Cpu, mem: Uint8Array, at: number): void {
  mem[at] = 0xf4;
  cpu.invalidateCode(at, 1);
  assert.equal(cpu.run(10), Exit.Halt);
  assert.equal(cpu.eip, at + 1, "stopped at the handler's hlt");
}

function expectFault(cpu: Cpu, vector: number, error: number): void {
  const r = cpu.run(1);
  assert.equal(r, Exit.Exception, "expected an exception exit");
  assert.equal(cpu.exitVector, vector, "vector");
  assert.equal(cpu.exitErrorCode, error, `error code 0x${cpu.exitErrorCode.toString(16)}`);
}

describe("segment register loads", () => {
  it("mov ds, ax loads the descriptor cache and sets the accessed bit", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.regs[0] = K0_DS_NA;
    code(cpu, mem, [0x8e, 0xd8]);
    assert.equal(cpu.run(1), Exit.Budget);
    assert.equal(cpu.segSel[DS], K0_DS_NA);
    assert.equal(cpu.segLimit[DS], -1);
    assert.equal(cpu.segAttr[DS], 0xc093);
    assert.equal((get32(mem, GDT + 0x54) >>> 8) & 0xff, 0x93, "accessed bit written back");
  });

  it("load of a not-present data segment raises #NP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[0] = NP_DS;
    code(cpu, mem, [0x8e, 0xc0]); // mov es, ax
    expectFault(cpu, 11, NP_DS & 0xfffc);
    assert.equal(cpu.eip, CODE);
    assert.equal(cpu.segSel[ES], U_DS);
  });

  it("load of a DPL 0 data segment at CPL 3 raises #GP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[0] = K0_DS | 3;
    code(cpu, mem, [0x8e, 0xd8]);
    expectFault(cpu, 13, K0_DS);
  });

  it("RPL above the data segment's DPL raises #GP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.regs[0] = K1_DS | 2;
    code(cpu, mem, [0x8e, 0xd8]);
    expectFault(cpu, 13, K1_DS & 0xfffc);
  });

  it("a selector beyond the GDT limit raises #GP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.regs[0] = 0x80;
    code(cpu, mem, [0x8e, 0xe0]); // mov fs, ax
    expectFault(cpu, 13, 0x80);
  });

  it("a code segment that is not readable cannot go in DS but conforming readable code can", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    desc(mem, GDT + 0x78, 0, FLAT, 0xf8, 0xc); // execute-only, DPL 3
    cpu.regs[0] = 0x7b;
    code(cpu, mem, [0x8e, 0xd8]);
    expectFault(cpu, 13, 0x78);
    cpu.regs[0] = CONF_CS; // DPL 0 conforming readable: allowed at CPL 3
    code(cpu, mem, [0x8e, 0xd8]);
    assert.equal(cpu.run(1), Exit.Budget);
    assert.equal(cpu.segSel[DS], CONF_CS);
  });

  it("a null selector in DS is allowed and a later access raises #GP(0)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[0] = 3;
    code(cpu, mem, [0x8e, 0xd8, 0x8b, 0x03]); // mov ds, ax; mov eax, [ebx]
    assert.equal(cpu.run(1), Exit.Budget);
    assert.equal(cpu.segSel[DS], 3);
    expectFault(cpu, 13, 0);
    assert.equal(cpu.eip, CODE + 2);
  });

  it("mov ss with a null selector raises #GP(0)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.regs[0] = 0;
    code(cpu, mem, [0x8e, 0xd0]);
    expectFault(cpu, 13, 0);
  });

  it("mov ss with RPL != CPL raises #GP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    cpu.regs[0] = K1_DS & ~3; // RPL 0, DPL 1
    code(cpu, mem, [0x8e, 0xd0]);
    expectFault(cpu, 13, K1_DS & 0xfffc);
  });

  it("mov ss with a not-present segment raises #SS(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[0] = NP_DS;
    code(cpu, mem, [0x8e, 0xd0]);
    expectFault(cpu, 12, NP_DS & 0xfffc);
  });

  it("mov ss with a read-only data segment raises #GP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    desc(mem, GDT + 0x78, 0, FLAT, 0x91, 0xc);
    cpu.regs[0] = 0x78;
    code(cpu, mem, [0x8e, 0xd0]);
    expectFault(cpu, 13, 0x78);
  });

  it("mov to cs raises #UD", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.regs[0] = K0_CS;
    code(cpu, mem, [0x8e, 0xc8]);
    expectFault(cpu, 6, -1);
  });

  it("mov r32, sreg zero-extends; mov m16, sreg stores 16 bits", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[0] = -1;
    cpu.regs[3] = 0x5000;
    put32(mem, 0x5000, 0xaaaaaaaa);
    code(cpu, mem, [0x8c, 0xd8, 0x8c, 0x13]); // mov eax, ds; mov [ebx], ss
    cpu.run(2);
    assert.equal(cpu.regs[0], U_DS);
    assert.equal(get32(mem, 0x5000), (0xaaaa0000 | U_DS) >>> 0);
  });

  it("push/pop of segment registers", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    // push fs; push 0x21... no: push ds; pop es; push cs; pop gs must fail (code in GS ok: readable)
    code(cpu, mem, [0x0f, 0xa0, 0x07, 0x0e, 0x0f, 0xa9]); // push fs; pop es; push cs; pop gs
    cpu.loadSegmentCache(FS, K0_DS_NA, 0, -1, 0xc093);
    cpu.run(4);
    assert.equal(cpu.segSel[ES], K0_DS_NA);
    assert.equal(cpu.segSel[GS], K0_CS);
    assert.equal(cpu.regs[ESP], STACK0 - 0x100);
  });

  it("pop ds that faults leaves ESP unchanged", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    put32(mem, STACK3 - 4, K0_DS);
    cpu.regs[ESP] = STACK3 - 4;
    code(cpu, mem, [0x1f]);
    expectFault(cpu, 13, K0_DS);
    assert.equal(cpu.regs[ESP], STACK3 - 4);
  });

  it("lds/lss load the segment and the register; register form raises #UD", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    put32(mem, 0x5000, 0x12345678);
    put32(mem, 0x5004, K1_DS);
    cpu.regs[3] = 0x5000;
    code(cpu, mem, [0xc5, 0x33, 0x0f, 0xb2, 0x23]); // lds esi, [ebx]; lss esp, [ebx]
    cpu.run(2);
    assert.equal(cpu.regs[6], 0x12345678);
    assert.equal(cpu.regs[ESP], 0x12345678);
    assert.equal(cpu.segSel[SS], K1_DS);
    code(cpu, mem, [0xc4, 0xc0]);
    expectFault(cpu, 6, -1);
  });

  it("LDT selectors use the LDTR, and lldt / sldt work", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.regs[0] = LDT_SEL;
    cpu.regs[1] = 0x0f;
    code(cpu, mem, [0x0f, 0x00, 0xd0, 0x8e, 0xe1, 0x0f, 0x00, 0xc2]); // lldt ax; mov fs, cx; sldt edx
    cpu.run(3);
    assert.equal(cpu.segSel[LDTR], LDT_SEL);
    assert.equal(cpu.segBase[FS], 0x100000);
    assert.equal(cpu.regs[2], LDT_SEL);
    // With a null LDTR, the same selector is beyond the table.
    cpu.regs[0] = 0;
    code(cpu, mem, [0x0f, 0x00, 0xd0, 0x8e, 0xe1]);
    cpu.run(1);
    expectFault(cpu, 13, 0x0c);
  });
});

describe("interrupts through the IDT (architectural mode)", () => {
  it("int 0x80 through a gate with DPL 0 from CPL 3 raises #GP(0x402)", () => {
    // The #GP is delivered through vector 13 with that error code, EIP at the int.
    const a = machine();
    ring(a.cpu, 3);
    a.cpu.deliverThroughIdt = true;
    idtGate(a.mem, 0x80, K0_CS, 0x4000, 0xe, 0);
    idtGate(a.mem, 13, K0_CS, 0x4100, 0xe, 0);
    code(a.cpu, a.mem, [0xcd, 0x80]);
    runToHandler(a.cpu, a.mem, 0x4100);
    assert.equal(a.cpu.cpl, 0);
    const sp = a.cpu.regs[ESP];
    assert.equal(sp, STACK0 - 24);
    assert.deepEqual(
      [0, 4, 8, 12, 16, 20].map((o) => get32(a.mem, sp + o)),
      [0x402, CODE, U_CS, 0x2, STACK3, U_DS],
    );
  });

  it("int n in host mode exits with the vector, soft, eip after the instruction", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    code(cpu, mem, [0xcd, 0x80]);
    assert.equal(cpu.run(1), Exit.Exception);
    assert.equal(cpu.exitVector, 0x80);
    assert.equal(cpu.exitSoft, true);
    assert.equal(cpu.exitErrorCode, -1);
    assert.equal(cpu.eip, CODE + 2);
  });

  it("int 0x80 from CPL 3 through a DPL 3 trap gate switches to the TSS ring-0 stack", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.deliverThroughIdt = true;
    cpu.setFlags(0x202 | 0x100); // IF, TF
    idtGate(mem, 0x80, K0_CS, 0x4000, 0xf, 3);
    code(cpu, mem, [0xcd, 0x80]);
    assert.equal(cpu.run(1), Exit.Budget);
    assert.equal(cpu.eip, 0x4000);
    assert.equal(cpu.segSel[CS], K0_CS);
    assert.equal(cpu.segSel[SS], K0_DS);
    assert.equal(cpu.cpl, 0);
    const sp = cpu.regs[ESP];
    assert.equal(sp, STACK0 - 20);
    assert.deepEqual(
      [0, 4, 8, 12, 16].map((o) => get32(mem, sp + o)),
      [CODE + 2, U_CS, 0x302, STACK3, U_DS],
    );
    assert.equal(cpu.getFlags() & 0x300, 0x200, "trap gate keeps IF, clears TF");
  });

  it("an interrupt gate at the same privilege pushes EFLAGS, CS, EIP, error code and clears IF", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.deliverThroughIdt = true;
    cpu.setFlags(0x202);
    idtGate(mem, 13, K0_CS, 0x4000, 0xe, 0);
    cpu.regs[0] = K0_DS | 3; // RPL 3 > DPL 0
    code(cpu, mem, [0x8e, 0xd8]);
    const sp0 = cpu.regs[ESP];
    runToHandler(cpu, mem, 0x4000);
    assert.equal(cpu.regs[ESP], sp0 - 16);
    assert.deepEqual(
      [0, 4, 8, 12].map((o) => get32(mem, sp0 - 16 + o)),
      [K0_DS, CODE, K0_CS, 0x202],
    );
    assert.equal(cpu.getFlags() & 0x200, 0);
  });

  it("a not-present IDT gate raises #NP(vector*8+2+EXT) for exceptions", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.deliverThroughIdt = true;
    idtGate(mem, 11, K0_CS, 0x4000, 0xe, 0);
    gate(mem, IDT + 6 * 8, K0_CS, 0x4100, 0xe, 0);
    mem[IDT + 6 * 8 + 5] &= 0x7f; // #UD gate not present
    code(cpu, mem, [0x0f, 0x0b]); // ud2
    const sp0 = cpu.regs[ESP];
    runToHandler(cpu, mem, 0x4000);
    assert.equal(get32(mem, sp0 - 16), 6 * 8 + 2 + 1);
  });

  it("#GP during #GP delivery becomes a double fault; a fault delivering #DF is a triple fault", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.deliverThroughIdt = true;
    cpu.idtrLimit = 13 * 8 - 1; // vector 13 beyond the IDT
    idtGate(mem, 8, K0_CS, 0x4000, 0xe, 0);
    cpu.regs[0] = 0x80;
    code(cpu, mem, [0x8e, 0xd8]); // #GP(0x80)
    const sp0 = cpu.regs[ESP];
    runToHandler(cpu, mem, 0x4000);
    assert.equal(get32(mem, sp0 - 16), 0, "#DF error code 0");
    const b = machine();
    ring(b.cpu, 0);
    b.cpu.deliverThroughIdt = true;
    b.cpu.idtrLimit = 7;
    code(b.cpu, b.mem, [0x0f, 0x0b]);
    // #UD (benign) beyond the IDT -> #GP (serially), beyond too -> #DF, beyond -> triple fault.
    assert.equal(b.cpu.run(1), Exit.TripleFault);
  });

  it("#GP while delivering a benign exception is delivered serially with EXT set", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.deliverThroughIdt = true;
    idtGate(mem, 13, K0_CS, 0x4000, 0xe, 0);
    idtGate(mem, 6, 0x80, 0x4100, 0xe, 0); // target selector beyond the GDT
    code(cpu, mem, [0x0f, 0x0b]);
    const sp0 = cpu.regs[ESP];
    runToHandler(cpu, mem, 0x4000);
    assert.equal(get32(mem, sp0 - 16), 0x81);
  });

  it("interrupt to an inner ring with a bad TSS stack raises #TS(ss selector + EXT)", () => {
    for (const [bytes, ext] of [
      [[0xcd, 0x80], 0],
      [[0x0f, 0x0b], 1],
    ] as const) {
      const { cpu, mem } = machine();
      ring(cpu, 3);
      cpu.deliverThroughIdt = true;
      put32(mem, TSS + 8, K1_DS); // ss0 with DPL 1
      idtGate(mem, 0x80, K0_CS, 0x4000, 0xe, 3);
      idtGate(mem, 6, K0_CS, 0x4000, 0xe, 0);
      idtGate(mem, 10, U_CS, 0x4200, 0xe, 3); // #TS handled at ring 3 (no stack switch)
      mem[0x4200] = 0x90;
      code(cpu, mem, [...bytes]);
      assert.equal(cpu.run(1), Exit.Budget);
      assert.equal(cpu.eip, 0x4201);
      assert.equal(cpu.cpl, 3);
      assert.equal(cpu.regs[ESP], STACK3 - 16);
      assert.deepEqual(
        [0, 4, 8].map((o) => get32(mem, STACK3 - 16 + o)),
        [(K1_DS & 0xfffc) + ext, CODE, U_CS],
        "error code, EIP of the faulting instruction, CS",
      );
    }
    // Host mode does not look at the IDT.
    const b = machine();
    ring(b.cpu, 3);
    put32(b.mem, TSS + 8, K1_DS);
    idtGate(b.mem, 0x80, K0_CS, 0x4000, 0xe, 3);
    code(b.cpu, b.mem, [0xcd, 0x80]);
    assert.equal(b.cpu.run(1), Exit.Exception);
    assert.equal(b.cpu.exitVector, 0x80);
  });

  it("a fault while delivering a #GP to an inner ring with an unusable TSS stack is a double fault", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.deliverThroughIdt = true;
    put32(mem, TSS + 8, 0); // null ss0
    idtGate(mem, 13, K0_CS, 0x4000, 0xe, 0);
    idtGate(mem, 8, U_CS, 0x4300, 0xe, 3);
    mem[0x4300] = 0x90;
    code(cpu, mem, [0xfa]); // cli at CPL 3: #GP(0) -> #TS(EXT) -> #DF
    cpu.run(1);
    assert.equal(cpu.eip, 0x4301);
    assert.equal(get32(mem, STACK3 - 16), 0);
  });
});

describe("iret", () => {
  function iretFrame(mem: Uint8Array, sp: number, vals: number[]): void {
    for (let i = 0; i < vals.length; i++) put32(mem, sp + i * 4, vals[i]);
  }

  it("iret from ring 1 to ring 3 loads SS:ESP from the frame", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    const sp = cpu.regs[ESP];
    iretFrame(mem, sp, [0x6000, U_CS, 0x3202, 0x7ff0, U_DS]);
    code(cpu, mem, [0xcf]);
    assert.equal(cpu.run(1), Exit.Budget);
    assert.equal(cpu.cpl, 3);
    assert.equal(cpu.eip, 0x6000);
    assert.equal(cpu.segSel[CS], U_CS);
    assert.equal(cpu.segSel[SS], U_DS);
    assert.equal(cpu.regs[ESP], 0x7ff0);
    // CPL 1 > IOPL 0: IOPL is not changed, IF not either (was 0).
    assert.equal(cpu.getFlags(), 0x002);
  });

  it("iret to an outer ring nulls data segments the new CPL may not use", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.loadSegmentCache(FS, U_DS, 0, -1, 0xc0f3);
    cpu.loadSegmentCache(GS, CONF_CS, 0, -1, 0xc09f);
    iretFrame(mem, cpu.regs[ESP], [0x6000, K1_CS, 0x3202, 0x7ff0, K1_DS]);
    code(cpu, mem, [0xcf]);
    cpu.run(1);
    assert.equal(cpu.cpl, 1);
    assert.equal(cpu.getFlags(), 0x3202, "CPL 0 may change IOPL and IF");
    assert.equal(cpu.segSel[DS], 0);
    assert.equal(cpu.segSel[ES], 0);
    assert.equal(cpu.segSel[FS], U_DS, "DPL 3 data kept");
    assert.equal(cpu.segSel[GS], CONF_CS, "conforming code kept");
  });

  it("iret from ring 1 to ring 3 nulls each of ES, DS, FS, GS alone when it holds ring-1 data or code", () => {
    // segments.ts nullInaccessibleSegs tests each register on its own (written out four
    // times): one ring-1 descriptor at a time, the other three ring-3 data, which stay.
    const segs = [ES, DS, FS, GS];
    for (const seg of segs)
      for (const [sel, attr] of [
        [K1_DS, 0xc0b3],
        [K1_CS, 0xc0bb],
      ]) {
        const { cpu, mem } = machine();
        ring(cpu, 1);
        for (const s of segs) cpu.loadSegmentCache(s, U_DS, 0, -1, 0xc0f3);
        cpu.loadSegmentCache(seg, sel, 0, -1, attr);
        iretFrame(mem, cpu.regs[ESP], [0x6000, U_CS, 0x202, STACK3 - 16, U_DS]);
        code(cpu, mem, [0xcf]);
        cpu.run(1);
        assert.equal(cpu.cpl, 3);
        for (const s of segs)
          assert.equal(cpu.segSel[s], s === seg ? 0 : U_DS, `seg ${s} with seg ${seg} at ring 1 (${sel})`);
      }
  });

  it("iret at the same level keeps SS and pops three dwords", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    const sp = cpu.regs[ESP] - 12;
    cpu.regs[ESP] = sp;
    iretFrame(mem, sp, [0x6000, U_CS, 0x3ed7]);
    code(cpu, mem, [0xcf]);
    cpu.run(1);
    assert.equal(cpu.eip, 0x6000);
    assert.equal(cpu.regs[ESP], sp + 12);
    assert.equal(cpu.getFlags(), 0x0cd7 | 2, "IOPL and IF unchanged at CPL 3");
  });

  it("iret to an inner ring raises #GP(selector) and changes nothing", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    const sp = cpu.regs[ESP] - 12;
    cpu.regs[ESP] = sp;
    iretFrame(mem, sp, [0x6000, K1_CS, 0x202]);
    code(cpu, mem, [0xcf]);
    expectFault(cpu, 13, K1_CS & 0xfffc);
    assert.equal(cpu.regs[ESP], sp);
    assert.equal(cpu.eip, CODE);
    assert.equal(cpu.cpl, 3);
  });

  it("iret to a ring whose SS has the wrong DPL raises #GP(ss) and changes nothing", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    const sp = cpu.regs[ESP];
    iretFrame(mem, sp, [0x6000, U_CS, 0x202, 0x7ff0, K1_DS | 3]);
    code(cpu, mem, [0xcf]);
    expectFault(cpu, 13, K1_DS & 0xfffc);
    assert.equal(cpu.segSel[CS], K1_CS);
    assert.equal(cpu.segSel[SS], K1_DS);
    assert.equal(cpu.cpl, 1);
  });

  it("iret to a not-present code segment raises #NP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    iretFrame(mem, cpu.regs[ESP], [0x6000, NP_CS1, 0x202, 0x7ff0, K1_DS]);
    code(cpu, mem, [0xcf]);
    expectFault(cpu, 11, NP_CS1 & 0xfffc);
  });

  it("iret with EIP beyond the code segment limit raises #GP(0)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    desc(mem, GDT + 0x78, 0, 0xfff, 0xbb, 0x4); // ring-1 code, limit 0xfff
    iretFrame(mem, cpu.regs[ESP], [0x1000, NP_CS1, 0x202, 0x7ff0, K1_DS]);
    code(cpu, mem, [0xcf]);
    expectFault(cpu, 13, 0);
  });
});

describe("far jmp, call and ret", () => {
  it("far call through a call gate to ring 0 copies parameters; far ret n returns to ring 3", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[ESP] = STACK3 - 8;
    put32(mem, STACK3 - 8, 0x1111); // parameter 1 (last pushed)
    put32(mem, STACK3 - 4, 0x2222);
    code(cpu, mem, [0x9a, 0, 0, 0, 0, GATE0, 0]); // call GATE0:0
    mem.set([0xca, 8, 0], 0x3000); // ret far 8
    cpu.invalidateCode(0x3000, 3);
    assert.equal(cpu.run(1), Exit.Budget);
    assert.equal(cpu.cpl, 0);
    assert.equal(cpu.eip, 0x3000);
    assert.equal(cpu.segSel[CS], K0_CS);
    assert.equal(cpu.segSel[SS], K0_DS);
    const sp = cpu.regs[ESP];
    assert.equal(sp, STACK0 - 24);
    assert.deepEqual(
      [0, 4, 8, 12, 16, 20].map((o) => get32(mem, sp + o)),
      [CODE + 7, U_CS, 0x1111, 0x2222, STACK3 - 8, U_DS],
    );
    cpu.loadSegmentCache(DS, K0_DS, 0, -1, 0xc093); // nulled on return
    assert.equal(cpu.run(1), Exit.Budget);
    assert.equal(cpu.cpl, 3);
    assert.equal(cpu.eip, CODE + 7);
    assert.equal(cpu.regs[ESP], STACK3);
    assert.equal(cpu.segSel[SS], U_DS);
    assert.equal(cpu.segSel[DS], 0);
  });

  it("far call through a call gate to ring 1 uses the TSS ring-1 stack", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    code(cpu, mem, [0xff, 0x1d, 0x00, 0x50, 0, 0]); // call far [0x5000]
    put32(mem, 0x5000, 0x12345);
    put32(mem, 0x5004, GATE1);
    cpu.run(1);
    assert.equal(cpu.cpl, 1);
    assert.equal(cpu.eip, 0x3100, "the gate's offset, not the pointer's");
    assert.equal(cpu.segSel[CS], K1_CS);
    assert.equal(cpu.regs[ESP], STACK1 - 16);
    assert.equal(get32(mem, STACK1 - 16), CODE + 6);
  });

  it("a call gate whose DPL is below CPL raises #GP(gate selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    mem[GDT + 0x48 + 5] = 0x8c; // DPL 0
    code(cpu, mem, [0x9a, 0, 0, 0, 0, GATE0, 0]);
    expectFault(cpu, 13, GATE0 & 0xfffc);
  });

  it("a call gate whose new stack has no room raises #SS(new ss) and changes nothing", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    put32(mem, TSS + 4, 8);
    put32(mem, TSS + 8, SMALL_DS);
    code(cpu, mem, [0x9a, 0, 0, 0, 0, GATE0, 0]);
    expectFault(cpu, 12, SMALL_DS);
    assert.equal(cpu.cpl, 3);
    assert.equal(cpu.regs[ESP], STACK3);
    assert.equal(cpu.segSel[SS], U_DS);
  });

  it("16-bit far call through FF /3 pushes a 16-bit frame; 16-bit far ret pops it", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    const sp0 = cpu.regs[ESP];
    put32(mem, 0x5000, (K1_CS << 16) | 0x3000);
    code(cpu, mem, [0x66, 0xff, 0x1d, 0x00, 0x50, 0, 0]); // call far word [0x5000]
    mem.set([0x66, 0xcb], 0x3000);
    cpu.invalidateCode(0x3000, 2);
    cpu.run(1);
    assert.equal(cpu.eip, 0x3000);
    assert.equal(cpu.regs[ESP], sp0 - 4);
    assert.equal(get32(mem, sp0 - 4), (K1_CS << 16) | (CODE + 7));
    cpu.run(1);
    assert.equal(cpu.eip, CODE + 7);
    assert.equal(cpu.regs[ESP], sp0);
  });

  it("a 16-bit iret at the same level pops IP, CS and FLAGS words", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[ESP] = STACK3 - 6;
    put32(mem, STACK3 - 6, (U_CS << 16) | 0x3000);
    mem[STACK3 - 2] = 0xd7;
    mem[STACK3 - 1] = 0x0c;
    code(cpu, mem, [0x66, 0xcf]);
    cpu.run(1);
    assert.equal(cpu.eip, 0x3000);
    assert.equal(cpu.regs[ESP], STACK3);
    assert.equal(cpu.getFlags(), 0x0cd7 | 2);
  });

  it("a far call beyond the target's limit raises #GP(0) before pushing anything", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    desc(mem, GDT + 0x78, 0, 0xfff, 0xbb, 0x4); // ring-1 code, limit 0xfff
    const sp0 = cpu.regs[ESP];
    put32(mem, sp0 - 4, 0x5555);
    code(cpu, mem, [0x9a, 0x00, 0x20, 0, 0, NP_CS1, 0]);
    expectFault(cpu, 13, 0);
    assert.equal(get32(mem, sp0 - 4), 0x5555);
    assert.equal(cpu.regs[ESP], sp0);
  });

  it("mov with a segment register number above 5 raises #UD", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    code(cpu, mem, [0x8c, 0xf0]);
    expectFault(cpu, 6, -1);
    code(cpu, mem, [0x8e, 0xf8]);
    expectFault(cpu, 6, -1);
  });

  it("far call to a same-ring code segment pushes CS:EIP; far ret pops them", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    const sp0 = cpu.regs[ESP];
    code(cpu, mem, [0x9a, 0x00, 0x30, 0, 0, K1_CS, 0]);
    mem[0x3000] = 0xcb;
    cpu.invalidateCode(0x3000, 1);
    cpu.run(1);
    assert.equal(cpu.eip, 0x3000);
    assert.equal(cpu.regs[ESP], sp0 - 8);
    assert.equal(get32(mem, sp0 - 8), CODE + 7);
    assert.equal(get32(mem, sp0 - 4), K1_CS);
    cpu.run(1);
    assert.equal(cpu.eip, CODE + 7);
    assert.equal(cpu.regs[ESP], sp0);
  });

  it("far jmp to a non-conforming code segment of another DPL raises #GP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    code(cpu, mem, [0xea, 0, 0x30, 0, 0, K0_CS, 0]);
    expectFault(cpu, 13, K0_CS);
    code(cpu, mem, [0xea, 0, 0x30, 0, 0, CONF_CS, 0]); // conforming DPL 0 from CPL 1: ok
    cpu.run(1);
    assert.equal(cpu.eip, 0x3000);
    assert.equal(cpu.segSel[CS], CONF_CS | 1, "RPL becomes CPL");
    assert.equal(cpu.cpl, 1);
  });

  it("far jmp to a not-present code segment raises #NP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    code(cpu, mem, [0xea, 0, 0x30, 0, 0, NP_CS1, 0]);
    expectFault(cpu, 11, NP_CS1 & 0xfffc);
  });

  it("far jmp to a data segment or null selector raises #GP", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    code(cpu, mem, [0xea, 0, 0x30, 0, 0, K0_DS, 0]);
    expectFault(cpu, 13, K0_DS);
    code(cpu, mem, [0xea, 0, 0x30, 0, 0, 0, 0]);
    expectFault(cpu, 13, 0);
  });

  it("far ret to an inner ring raises #GP(selector)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[ESP] = STACK3 - 8;
    put32(mem, STACK3 - 8, 0x3000);
    put32(mem, STACK3 - 4, K0_CS);
    code(cpu, mem, [0xcb]);
    expectFault(cpu, 13, K0_CS);
  });
});

describe("privileged and I/O instructions", () => {
  it("hlt at CPL 0 exits with Exit.Halt, eip after it; at CPL 1 raises #GP(0)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    code(cpu, mem, [0xf4, 0x90]);
    assert.equal(cpu.run(10), Exit.Halt);
    assert.equal(cpu.eip, CODE + 1);
    ring(cpu, 1);
    code(cpu, mem, [0xf4]);
    expectFault(cpu, 13, 0);
  });

  it("cli/sti check IOPL against CPL", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.setFlags(0x202);
    code(cpu, mem, [0xfa]);
    expectFault(cpu, 13, 0);
    cpu.setFlags(0x3202);
    code(cpu, mem, [0xfa, 0xfb]);
    cpu.run(1);
    assert.equal(cpu.getFlags() & 0x200, 0);
    cpu.run(1);
    assert.equal(cpu.getFlags() & 0x200, 0x200);
  });

  it("in/out at CPL 3 consult the TSS I/O permission bitmap", () => {
    const { cpu, mem } = machine();
    const log: string[] = [];
    cpu.io = {
      read: (port, size) => {
        log.push(`r${port.toString(16)}/${size}`);
        return 0x12345678;
      },
      write: (port, size, v) => {
        log.push(`w${port.toString(16)}/${size}=${v.toString(16)}`);
      },
    };
    ring(cpu, 3);
    cpu.regs[0] = 0xab;
    code(cpu, mem, [0xe6, 0x64, 0xe5, 0x64, 0xe6, 0x70]); // out 0x64, al; in eax, 0x64; out 0x70, al
    cpu.run(2);
    assert.equal(cpu.regs[0], 0x12345678);
    expectFault(cpu, 13, 0);
    // A dword at 0x66 spans 0x66-0x69: 0x68 is not allowed.
    cpu.regs[2] = 0x66;
    code(cpu, mem, [0xed]);
    expectFault(cpu, 13, 0);
    assert.deepEqual(log, ["w64/1=ab", "r64/4"]);
    // IOPL 3: no bitmap check.
    cpu.setFlags(0x3002);
    code(cpu, mem, [0xe6, 0x70]);
    cpu.run(1);
    assert.equal(log.at(-1), "w70/1=78");
  });

  it("rep insb reads the port into ES:EDI; rep outsd writes DS:ESI", () => {
    const { cpu, mem } = machine();
    let n = 0;
    const out: number[] = [];
    cpu.io = { read: () => n++, write: (_p, _s, v) => out.push(v) };
    ring(cpu, 0);
    cpu.regs[1] = 4;
    cpu.regs[7] = 0x5000;
    cpu.regs[2] = 0x60;
    code(cpu, mem, [0xf3, 0x6c]);
    cpu.run(1);
    assert.deepEqual([...mem.subarray(0x5000, 0x5004)], [0, 1, 2, 3]);
    assert.equal(cpu.regs[1], 0);
    assert.equal(cpu.regs[7], 0x5004);
    cpu.regs[1] = 1;
    cpu.regs[6] = 0x5000;
    code(cpu, mem, [0xf3, 0x6f]);
    cpu.run(1);
    assert.deepEqual(out, [0x03020100]);
  });

  it("ltr loads TR and marks the TSS busy; str stores it", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.loadSegmentCache(TR, 0, 0, 0, 0);
    cpu.regs[0] = TSS_SEL;
    code(cpu, mem, [0x0f, 0x00, 0xd8, 0x0f, 0x00, 0xcb]); // ltr ax; str ebx
    cpu.run(2);
    assert.equal(cpu.segBase[TR], TSS);
    assert.equal(cpu.segAttr[TR] & 0xff, 0x8b);
    assert.equal(mem[GDT + 0x38 + 5], 0x8b);
    assert.equal(cpu.regs[3], TSS_SEL);
    // Busy now: a second ltr raises #GP(sel).
    code(cpu, mem, [0x0f, 0x00, 0xd8]);
    expectFault(cpu, 13, TSS_SEL);
  });

  it("lar, lsl, verr, verw", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[0] = U_DS;
    cpu.regs[3] = 0;
    cpu.regs[6] = 0;
    // lar ebx, ax; lsl esi, ax
    code(cpu, mem, [0x0f, 0x02, 0xd8, 0x0f, 0x03, 0xf0]);
    cpu.run(2);
    assert.equal(cpu.regs[3], 0x00c0f300);
    assert.equal(cpu.regs[6], -1);
    assert.equal(cpu.zf(), 1);
    cpu.regs[0] = K0_DS; // DPL 0 at CPL 3: ZF=0, destination unchanged
    code(cpu, mem, [0x0f, 0x02, 0xd8]);
    cpu.run(1);
    assert.equal(cpu.zf(), 0);
    assert.equal(cpu.regs[3], 0x00c0f300);
    cpu.regs[0] = U_CS; // verr: readable code ok; verw: not writable
    code(cpu, mem, [0x0f, 0x00, 0xe0]);
    cpu.run(1);
    assert.equal(cpu.zf(), 1);
    code(cpu, mem, [0x0f, 0x00, 0xe8]);
    cpu.run(1);
    assert.equal(cpu.zf(), 0);
    cpu.regs[0] = U_DS;
    code(cpu, mem, [0x0f, 0x00, 0xe8]);
    cpu.run(1);
    assert.equal(cpu.zf(), 1);
    // lsl of a call gate is invalid; lar of it is valid.
    cpu.regs[0] = GATE0;
    code(cpu, mem, [0x0f, 0x03, 0xf0]);
    cpu.run(1);
    assert.equal(cpu.zf(), 0);
    code(cpu, mem, [0x0f, 0x02, 0xd8]);
    cpu.run(1);
    assert.equal(cpu.zf(), 1);
    assert.equal(cpu.regs[3], 0xec00);
  });

  it("arpl raises the RPL of the destination", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.regs[0] = 0x10;
    cpu.regs[3] = 0x2b;
    code(cpu, mem, [0x63, 0xd8, 0x63, 0xd8]); // arpl ax, bx twice
    cpu.run(1);
    assert.equal(cpu.regs[0], 0x13);
    assert.equal(cpu.zf(), 1);
    cpu.run(1);
    assert.equal(cpu.zf(), 0);
  });

  it("mov to cr0/cr3, lgdt and wrmsr at CPL 1 raise #GP(0)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 1);
    for (const bytes of [
      [0x0f, 0x22, 0xc0],
      [0x0f, 0x22, 0xd8],
      [0x0f, 0x20, 0xc0],
      [0x0f, 0x01, 0x15, 0, 0x50, 0, 0],
      [0x0f, 0x30],
      [0x0f, 0x06],
      [0x0f, 0x09],
    ]) {
      code(cpu, mem, bytes);
      expectFault(cpu, 13, 0);
    }
  });

  it("mov cr/dr at CPL 0, smsw and lmsw, clts", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.regs[0] = 0x2000;
    cpu.cr0 |= 8;
    // mov cr3, eax; mov ebx, cr3; mov ecx, cr0; clts; smsw edx; mov dr7, eax; mov esi, dr7
    code(cpu, mem, [0x0f, 0x22, 0xd8, 0x0f, 0x20, 0xdb, 0x0f, 0x20, 0xc1, 0x0f, 0x06, 0x0f, 0x01, 0xe2]);
    cpu.run(5);
    assert.equal(cpu.cr3, 0x2000);
    assert.equal(cpu.regs[3], 0x2000);
    assert.equal(cpu.regs[1] & 8, 8);
    assert.equal(cpu.cr0 & 8, 0);
    assert.equal(cpu.regs[2], cpu.cr0);
    code(cpu, mem, [0x0f, 0x22, 0xc8]); // mov cr1: #UD
    expectFault(cpu, 6, -1);
    cpu.regs[0] = 0x20; // PAE: not supported
    code(cpu, mem, [0x0f, 0x22, 0xe0]);
    expectFault(cpu, 13, 0);
    cpu.regs[0] = 0xe; // lmsw cannot clear PE
    code(cpu, mem, [0x0f, 0x01, 0xf0]);
    cpu.run(1);
    assert.equal(cpu.cr0 & 0xf, 0xf);
  });

  it("rdmsr/wrmsr use cpu.msrs; an unknown MSR raises #GP(0)", () => {
    const { cpu, mem } = machine();
    ring(cpu, 0);
    cpu.msrs.set(0x174, 0x1_0000_0008n);
    cpu.regs[1] = 0x174;
    code(cpu, mem, [0x0f, 0x32]);
    cpu.run(1);
    assert.equal(cpu.regs[0], 8);
    assert.equal(cpu.regs[2], 1);
    cpu.regs[0] = 0x10;
    cpu.regs[2] = 0;
    code(cpu, mem, [0x0f, 0x30]);
    cpu.run(1);
    assert.equal(cpu.msrs.get(0x174), 0x10n);
    cpu.regs[1] = 0x999;
    code(cpu, mem, [0x0f, 0x32]);
    expectFault(cpu, 13, 0);
  });

  it("sgdt/sidt store limit and base; lidt loads them", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    code(cpu, mem, [0x0f, 0x01, 0x05, 0, 0x50, 0, 0]);
    cpu.run(1);
    assert.equal(get16(mem, 0x5000), GDT_LIMIT);
    assert.equal(get32(mem, 0x5002), GDT);
    ring(cpu, 0);
    put32(mem, 0x5100, 0x12340fff);
    put32(mem, 0x5104, 0x5678);
    code(cpu, mem, [0x0f, 0x01, 0x1d, 0x00, 0x51, 0, 0]);
    cpu.run(1);
    assert.equal(cpu.idtrLimit, 0xfff);
    assert.equal(cpu.idtrBase, 0x56781234);
  });

  it("bound raises #BR outside the bounds", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    put32(mem, 0x5000, -5);
    put32(mem, 0x5004, 10);
    cpu.regs[0] = -5;
    code(cpu, mem, [0x62, 0x05, 0, 0x50, 0, 0]);
    assert.equal(cpu.run(1), Exit.Budget);
    cpu.regs[0] = 11;
    code(cpu, mem, [0x62, 0x05, 0, 0x50, 0, 0]);
    expectFault(cpu, 5, -1);
  });

  it("into traps only with OF set; int3 is a soft #BP", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.setFlags(2);
    code(cpu, mem, [0xce, 0xcc]);
    assert.equal(cpu.run(1), Exit.Budget);
    assert.equal(cpu.run(1), Exit.Exception);
    assert.equal(cpu.exitVector, 3);
    assert.equal(cpu.exitSoft, true);
    assert.equal(cpu.eip, CODE + 2);
  });
});

describe("host helpers", () => {
  it("loadSegment checks like mov and reports faults through hostCall", () => {
    const { cpu } = machine();
    ring(cpu, 3);
    assert.equal(
      hostCall(cpu, (c) => loadSegment(c, DS, NP_DS)),
      false,
    );
    assert.equal(cpu.exitVector, 11);
    assert.equal(cpu.exitErrorCode, NP_DS & 0xfffc);
    assert.equal(
      hostCall(cpu, (c) => loadSegment(c, GS, K1_DS, 1)),
      true,
    );
    assert.equal(cpu.segSel[GS], K1_DS);
  });

  it("enterRing pushes a bounce frame on the ring-1 stack and switches to ring 1", () => {
    const { cpu, mem } = machine();
    ring(cpu, 3);
    cpu.eip = 0x6000;
    const frame = [U_DS, cpu.regs[ESP], cpu.getFlags(), U_CS, cpu.eip, 0x1234];
    assert.equal(
      hostCall(cpu, (c) => enterRing(c, K1_CS, 0x4000, K1_DS, STACK1, frame)),
      true,
    );
    assert.equal(cpu.cpl, 1);
    assert.equal(cpu.eip, 0x4000);
    assert.equal(cpu.segSel[SS], K1_DS);
    assert.equal(cpu.regs[ESP], STACK1 - 24);
    assert.deepEqual(
      [0, 4, 8, 12, 16, 20].map((o) => get32(mem, STACK1 - 24 + o)),
      [0x1234, 0x6000, U_CS, 2, STACK3, U_DS],
    );
    // A stack that is not mapped (beyond the limit): nothing changes.
    const b = machine();
    ring(b.cpu, 3);
    assert.equal(
      hostCall(b.cpu, (c) => enterRing(c, K1_CS, 0x4000, SMALL_DS | 1, 0x10, frame)),
      false,
    );
    assert.equal(b.cpu.exitVector, 13, "SMALL_DS has DPL 0: #GP(ss)");
    assert.equal(b.cpu.cpl, 3);
    assert.equal(b.cpu.segSel[CS], U_CS);
  });

  it("iretTo returns from the hypervisor to ring 3 with the given frame", () => {
    const { cpu } = machine();
    ring(cpu, 1);
    assert.equal(
      hostCall(cpu, (c) => iretTo(c, 0x6000, U_CS, 0x3246, 0x7000, U_DS, 0)),
      true,
    );
    assert.equal(cpu.cpl, 3);
    assert.equal(cpu.eip, 0x6000);
    assert.equal(cpu.regs[ESP], 0x7000);
    assert.equal(cpu.segSel[SS], U_DS);
    assert.equal(cpu.getFlags(), 0x3246);
    assert.equal(cpu.segSel[DS], 0, "ring-1 DS nulled");
    // Returning to ring 1 from 0 also takes SS:ESP.
    assert.equal(
      hostCall(cpu, (c) => iretTo(c, 0x6100, K1_CS, 0x202, 0x8000, K1_DS, 0)),
      true,
    );
    assert.equal(cpu.cpl, 1);
    assert.equal(cpu.regs[ESP], 0x8000);
    assert.equal(
      hostCall(cpu, (c) => iretTo(c, 0x6100, K0_CS, 0x202, 0x8000, K0_DS, 1)),
      false,
    );
    assert.equal(cpu.exitErrorCode, K0_CS);
  });
});
