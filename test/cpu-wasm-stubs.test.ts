/**
 * The exit stubs' forms inline in wasm blocks (src/cpu/wasm/gen.ts stubForm): pusha, popa,
 * push of a segment register, cld/std, call r/m32, mov moffs from AL/EAX, mov r/m8 with an
 * immediate, not r/m32, xchg r/m32 with a register, bsf, btr after a logic or shift record. Each case is a hot loop of one of
 * them, on a 32-bit flat stack or a 16-bit stack at a base whose odd pages start not present,
 * its memory operand walking pages of which every third starts not present: the host maps the
 * page at CR2 at each #PF and resumes, as a hypervisor bouncing the fault would. The state
 * after every slice (EIP and ESP rolled back, retired, flags, CR2, error code) and the memory
 * are the interpreter's, with JS blocks and with wasm blocks with the chain off and on, and
 * the wasm blocks called no handler for the form (wasm.handlers, counted when compiled).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, CR0_WP, CS, DS, EAX, EBX, ECX, ES, ESI, ESP, Exit, FS, GS, SS } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { traceMappingFaults, type Variant, variantCpu } from "./helpers/cpu-state.js";

const PD = 0x100000;
const PT = 0x101000;
const CODE = 0x5000;
/** The data pages (256): every third starts not present. */
const DATA = 0x200000;
const DATA_BYTES = 0x100000;
/** A page of rets, called through [ESI] words that point into it. */
const RETS = 0x320000;
/** The stack segment's base (16 pages): odd pages start not present. */
const STACK = 0x360000;

interface Kind {
  /** The loop's own instructions (ESI walks DATA by stride, EAX counts up). */
  body: number[];
  stride: number;
  n: number;
  /** A 16-bit stack (B clear) at STACK, else a 32-bit one there (limit 4 GiB). */
  stack16: boolean;
  /** ESP at the start (its high half is kept on a 16-bit stack). */
  esp: number;
  /** Handler calls the wasm blocks may make (pushf). */
  handlers: number;
  /** CS's limit, when not 4 GiB: the run ends at the #GP(0) of a call beyond it. */
  csLimit?: number;
}

const sub = (n: number) => [0x81, 0xec, ...d(n)];
const KINDS: Record<string, Kind> = {
  // pusha; sub esp, 0xe4: the 32 bytes cross a page now and then, and fault part-way.
  "pusha, 32-bit stack": {
    body: [0x60, ...sub(0xe4)],
    stride: 0,
    n: 600,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  "pusha, 16-bit stack": {
    body: [0x60, ...sub(0xe4)],
    stride: 0,
    n: 600,
    stack16: true,
    esp: 0x7a5c_fff0,
    handlers: 0,
  },
  // ECX kept in memory across popa (ESP's dword skipped); sub esp, 0x124: the 16-bit one
  // wraps from 0xfff0 to 0.
  "popa, 32-bit stack": {
    body: [0x89, 0x0d, ...d(DATA + 0x100), 0x61, 0x8b, 0x0d, ...d(DATA + 0x100), ...sub(0x124)],
    stride: 0,
    n: 600,
    stack16: false,
    esp: 0x1fff0,
    handlers: 0,
  },
  "popa, 16-bit stack": {
    body: [0x89, 0x0d, ...d(DATA + 0x100), 0x61, 0x8b, 0x0d, ...d(DATA + 0x100), ...sub(0x124)],
    stride: 0,
    n: 600,
    stack16: true,
    esp: 0x7a5c_fff0,
    handlers: 0,
  },
  // push es, cs, ss, ds, fs, gs, each popped into EDX and added up; sub esp, 0x7c.
  "push of segment registers": {
    body: [
      ...[[0x06], [0x0e], [0x16], [0x1e], [0x0f, 0xa0], [0x0f, 0xa8]].flatMap((p) => [
        ...p,
        0x5a,
        0x01,
        0xd3,
      ]),
      0x1e,
      ...sub(0x7c),
    ],
    stride: 0,
    n: 600,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  "push of segment registers, 16-bit stack": {
    body: [0x1e, 0x06, 0x0f, 0xa8, ...sub(0xf4)],
    stride: 0,
    n: 600,
    stack16: true,
    esp: 0xfff0,
    handlers: 0,
  },
  // std; pushf; cld; pushf; pop edx; pop edx (pushf is the handler's).
  "cld and std": {
    body: [0xfd, 0x9c, 0xfc, 0x9c, 0x5a, 0x01, 0xd3, 0x5a, 0x01, 0xd3],
    stride: 0,
    n: 300,
    stack16: false,
    esp: 0xfff0,
    handlers: 2,
  },
  // call [esi] (a word pointing at a ret), call edi (EDI is RETS + 0x40).
  "call r/m32": {
    body: [0xff, 0x16, 0xff, 0xd7],
    stride: 0x400,
    n: 700,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  // The same with CS's limit in the page of rets: the 9th call's target is beyond it.
  "call r/m32 beyond CS's limit": {
    body: [0xff, 0x16, 0xff, 0xd7],
    stride: 0x400,
    n: 700,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
    csLimit: RETS + 0x7ff,
  },
  "mov moffs32, eax and moffs8, al": {
    body: [0xa3, ...d(DATA + 0x1ffe), 0xa2, ...d(DATA + 0x4fff), 0xa3, ...d(DATA + 0x7000)],
    stride: 0,
    n: 300,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  "mov byte [esi], imm8 and mov bl, imm8": {
    body: [0xc6, 0x06, 0x5a, 0xc6, 0xc3, 0xa5],
    stride: 0x3ff,
    n: 1000,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  "not [esi] crossing and not ebx": {
    body: [0xf7, 0x16, 0xf7, 0xd3],
    stride: 0xffd,
    n: 250,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  "xchg [esi], eax crossing and xchg ebx, edx": {
    body: [0x87, 0x06, 0x87, 0xd3],
    stride: 0xfff,
    n: 250,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  // bsf edx, [esi]; adc eax, edx; bsf ebx, ebx (0 now and then: the destination stays);
  // sete dh; adc eax, ebx; and ebx, eax.
  bsf: {
    body: [0x0f, 0xbc, 0x16, 0x11, 0xd0, 0x0f, 0xbc, 0xdb, 0x0f, 0x94, 0xc6, 0x11, 0xd8, 0x21, 0xc3],
    stride: 0x401,
    n: 1000,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  // btr [esi], edx after and (a logic record), the dword at ESI + 4 * (EDX >> 5) crossing
  // pages; adc ebx, 0 reads its CF.
  "btr [esi], edx after a logic op": {
    body: [0x89, 0xc2, 0x83, 0xe2, 0x7f, 0x0f, 0xb3, 0x16, 0x83, 0xd3, 0x00],
    stride: 0xffd,
    n: 250,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  // shl edx, 1 of a data word leaves OF and AF in the flags word (L_RES), OF 1 when its top
  // two bits differ; and then makes the record a logic one (OF and AF 0), which btr keeps:
  // seto dl reads OF after it.
  "btr after a logic op on a flags word with OF": {
    body: [0x8b, 0x16, 0xd1, 0xe2, 0x83, 0xe2, 0x7f, 0x0f, 0xb3, 0x16, 0x0f, 0x90, 0xc2, 0x01, 0xd3],
    stride: 0x3ff,
    n: 1000,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  // btr [esi+4], edx after sar (an L_RES record): EDX -32..31, the dword at ESI or ESI + 4.
  "btr [esi+4], edx after a shift, negative offsets": {
    body: [0x89, 0xc2, 0xc1, 0xe2, 0x1a, 0xc1, 0xfa, 0x1a, 0x0f, 0xb3, 0x56, 0x04, 0x83, 0xd3, 0x00],
    stride: 0x3ff,
    n: 1000,
    stack16: false,
    esp: 0xfff0,
    handlers: 0,
  },
  // btr ebx, edx after and; and after add (an arithmetic record: the handler's).
  "btr ebx, edx; btr after add": {
    body: [
      ...[0x89, 0xc2, 0x83, 0xe2, 0x3f, 0x0f, 0xb3, 0xd3, 0x83, 0xd3, 0x00],
      ...[0x83, 0xc2, 0x03, 0x0f, 0xb3, 0x16, 0x83, 0xd3, 0x00],
    ],
    stride: 0x401,
    n: 1000,
    stack16: false,
    esp: 0xfff0,
    handlers: 1,
  },
};

/**
 * 0: mov ecx, n; loop: <body>; add ebx, eax; inc eax; add esi, stride; dec ecx; jnz loop; hlt.
 * EDI (RETS + 0x40, a ret) is for call r/m32.
 */
function program(k: Kind): number[] {
  const body = [...k.body, 0x01, 0xc3, 0x40, 0x81, 0xc6, ...d(k.stride), 0x49];
  return [[0xb9, ...d(k.n)], body, [0x75, -(body.length + 2) & 0xff], [0xf4]].flat();
}

function machine(name: string, variant: Variant): Cpu {
  const k = KINDS[name];
  const cpu = variantCpu(variant, 1 << 22, 2);
  const mem = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  mem.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 1024; p++) {
    const lin = p << 12;
    let pte = lin | 3;
    if (lin >= DATA && lin < DATA + DATA_BYTES && ((lin - DATA) >>> 12) % 3 === 1) pte = lin | 2;
    if (lin >= STACK && lin < STACK + 0x10000 && (lin >>> 12) & 1) pte = lin | 2;
    mem.setUint32(PT + p * 4, pte, true);
  }
  cpu.mem8.set(program(k), CODE);
  cpu.mem8.fill(0xc3, RETS, RETS + 0x1000);
  for (let i = 0; i < DATA_BYTES; i += 4) {
    // Words of sparse bits (bsf, some 0), and for call r/m32 pointers into the page of rets.
    const v = name.startsWith("call")
      ? RETS + ((i >>> 2) & 0xfff)
      : (i * 2654435761) & (i & 0x10 ? 0 : 0x80402010);
    mem.setUint32(DATA + i, v | 0, true);
  }
  for (let i = 0; i < 0x10000; i += 4) mem.setUint32(STACK + i, (i * 40503) ^ 0x5a5a, true);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG | CR0_WP);
  if (k.csLimit !== undefined) cpu.loadSegmentCache(CS, cpu.segSel[CS], 0, k.csLimit, cpu.segAttr[CS]);
  cpu.loadSegmentCache(SS, 0x10, STACK, k.stack16 ? 0xffff : -1, k.stack16 ? 0x93 : 0xc093);
  // Data selectors other than the flat ones: the pushes must push each register's own.
  cpu.loadSegmentCache(DS, 0x2b, 0, -1, 0xc093);
  cpu.loadSegmentCache(ES, 0x33, 0, -1, 0xc093);
  cpu.loadSegmentCache(FS, 0x3b, 0, -1, 0xc093);
  cpu.loadSegmentCache(GS, 0, 0, 0, 0);
  cpu.eip = CODE;
  cpu.regs[ESP] = k.esp;
  cpu.regs[ESI] = DATA;
  cpu.regs[EAX] = 0x1234567;
  cpu.regs[EBX] = 0x10;
  cpu.regs[ECX] = 0;
  cpu.regs[7] = RETS + 0x40;
  return cpu;
}

/** Runs to the hlt in slices, the host mapping the page at CR2 at each #PF. */
const trace = (name: string, variant: Variant, slice: number) =>
  traceMappingFaults(machine(name, variant), slice, PT);

describe("the exit stubs' forms inline in wasm blocks", () => {
  for (const name of Object.keys(KINDS))
    for (const slice of [7, 1000, 10_000_000]) {
      it(`${name}, in slices of ${slice}: as the interpreter, without handler calls`, () => {
        const a = trace(name, "interp", slice);
        const last = a.steps[a.steps.length - 1];
        if (KINDS[name].csLimit === undefined) assert.equal(last.exit, Exit.Halt, JSON.stringify(last));
        else assert.deepEqual([last.vector, last.eip], [13, CODE + 5], JSON.stringify(last));
        const mem = Buffer.from(a.cpu.mem8.buffer, a.cpu.mem8.byteOffset, 0x400000);
        for (const variant of ["js", "wasm", "chain"] as const) {
          const b = trace(name, variant, slice);
          assert.deepEqual(b.steps, a.steps, variant);
          assert.ok(
            mem.equals(Buffer.from(b.cpu.mem8.buffer, b.cpu.mem8.byteOffset, 0x400000)),
            `${variant}: memory`,
          );
          if (variant === "js") continue;
          const w = wasmBackend(b.cpu);
          // Slices of 7 are shorter than most of these blocks, which then run interpreted.
          if (slice > 7) assert.ok((w?.runs ?? 0) > 0, `${variant}: wasm block runs`);
          assert.ok((w?.inline ?? 0) > 0, `${variant}: inline forms`);
          assert.ok(
            (w?.handlers ?? -1) <= KINDS[name].handlers,
            `${variant}: ${w?.handlers} handler calls compiled`,
          );
        }
      });
    }
  it("faults part-way through pusha and popa, and wraps popa on the 16-bit stack", () => {
    for (const name of ["pusha, 16-bit stack", "popa, 16-bit stack", "pusha, 32-bit stack"]) {
      const a = trace(name, "interp", 10_000_000);
      assert.ok(a.faults >= 4, `${name}: ${a.faults} page faults`);
    }
  });
});
