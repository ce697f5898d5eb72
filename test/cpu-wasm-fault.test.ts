/**
 * A #PF taken in a wasm block's slow path (src/cpu/wasm/backend.ts reach, gen.ts held): the
 * memory import records the fault (Cpu.reach) and returns, the block returns -1 and its
 * wrapper, or the chain's entry, unwinds as it does for a thrown fault. Each case is a hot
 * loop whose access takes the slow path (a TLB miss, a page-crossing access, a write to a
 * code frame, a push or pop on a 16-bit stack) and faults on some pages; the host maps the
 * page at CR2 and resumes, as a hypervisor bouncing the fault to a guest that fixes it would.
 * The state after every slice (EIP and ESP rolled back, retired, flags, CR2, error code) and
 * the memory after are the interpreter's, with JS blocks and with wasm blocks with the chain
 * off and on; the wasm runs must have taken the recorded path (a thrown fault leaves
 * heldFaults at 0).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, CR0_WP, EAX, ESI, ESP, Exit, SS } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { traceMappingFaults, type Variant, variantCpu } from "./helpers/cpu-state.js";

const PD = 0x100000;
const PT = 0x101000;
const CODE = 0x5000;
/** The data pages (256): every third starts not present. */
const DATA = 0x200000;
const DATA_BYTES = 0x100000;
/** Pages holding a ret each (32), run once, mapped read-only: written by the loop. */
const RETS = 0x320000;
/** The 16-bit stack segment's base (16 pages): odd pages start not present. */
const STACK = 0x360000;

type Kind =
  | "read miss"
  | "byte read miss"
  | "write miss"
  | "rmw miss"
  | "read crossing"
  | "word read crossing"
  | "write crossing"
  | "word write crossing"
  | "rmw crossing"
  | "code frame write"
  | "16-bit push"
  | "16-bit pop"
  | "adc rmw crossing"
  | "sbb rmw miss"
  | "word inc crossing"
  | "byte shift miss";

/** The loop's access (at [esi] or the stack), ESI's start and stride, and the iterations. */
const KINDS: Record<Kind, { access: number[]; esi: number; stride: number; n: number }> = {
  "read miss": { access: [0x8b, 0x06], esi: DATA, stride: 0x400, n: 1024 },
  "byte read miss": { access: [0x8a, 0x06], esi: DATA + 3, stride: 0x400, n: 1024 },
  "write miss": { access: [0x89, 0x06], esi: DATA, stride: 0x400, n: 1024 },
  "rmw miss": { access: [0x01, 0x06], esi: DATA, stride: 0x400, n: 1024 },
  "read crossing": { access: [0x8b, 0x06], esi: DATA + 0xffe, stride: 0x1000, n: 255 },
  "word read crossing": { access: [0x0f, 0xb7, 0x06], esi: DATA + 0xfff, stride: 0x1000, n: 255 },
  "write crossing": { access: [0x89, 0x06], esi: DATA + 0xffd, stride: 0x1000, n: 255 },
  "word write crossing": { access: [0x66, 0x89, 0x06], esi: DATA + 0xfff, stride: 0x1000, n: 255 },
  "rmw crossing": { access: [0x01, 0x06], esi: DATA + 0xffe, stride: 0x1000, n: 255 },
  "code frame write": { access: [0x89, 0x06], esi: RETS + 0x800, stride: 0x100, n: 512 },
  // push eax; sub esp, 0xfc (a page every 16 pushes); pop edx; sub esp, 0x104.
  "16-bit push": { access: [0x50, 0x81, 0xec, ...d(0xfc)], esi: 0, stride: 0, n: 1000 },
  "16-bit pop": { access: [0x5a, 0x81, 0xec, ...d(0x104)], esi: 0, stride: 0, n: 1000 },
  // XenLinux's forms inline in wasm (adc/sbb take CF from the loop's dec, shl's CF feeds add).
  "adc rmw crossing": { access: [0x83, 0x16, 0x35], esi: DATA + 0xffe, stride: 0x1000, n: 255 },
  "sbb rmw miss": { access: [0x19, 0x06], esi: DATA, stride: 0x400, n: 1024 },
  "word inc crossing": { access: [0x66, 0xff, 0x06], esi: DATA + 0xfff, stride: 0x1000, n: 255 },
  "byte shift miss": { access: [0xd0, 0x26], esi: DATA + 3, stride: 0x400, n: 1024 },
};

/**
 * 0: mov edx, RETS; mov ecx, 32; l0: call edx; add edx, 0x1000; dec ecx; jnz l0 (each ret's
 * frame holds decoded code); mov ecx, n; loop: <access>; add ebx, eax; inc eax; add esi,
 * stride; dec ecx; jnz loop; hlt.
 */
function program(kind: Kind): number[] {
  const k = KINDS[kind];
  const body = [...k.access, 0x01, 0xc3, 0x40, 0x81, 0xc6, ...d(k.stride), 0x49];
  return [
    [0xba, ...d(RETS)],
    [0xb9, ...d(32)],
    [0xff, 0xd2],
    [0x81, 0xc2, ...d(0x1000)],
    [0x49],
    [0x75, (10 - 21) & 0xff],
    [0xb9, ...d(k.n)],
    body,
    [0x75, -(body.length + 2) & 0xff],
    [0xf4],
  ].flat();
}

function machine(kind: Kind, variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 22, 2);
  const mem = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
  mem.setUint32(PD, PT | 3, true);
  for (let p = 0; p < 1024; p++) {
    const lin = p << 12;
    let pte = lin | 3;
    if (lin >= DATA && lin < DATA + DATA_BYTES && ((lin - DATA) >>> 12) % 3 === 1) pte = lin | 2;
    if (lin >= RETS && lin < RETS + 0x20000) pte = lin | 1;
    if (lin >= STACK && lin < STACK + 0x10000 && (lin >>> 12) & 1) pte = lin | 2;
    mem.setUint32(PT + p * 4, pte, true);
  }
  cpu.mem8.set(program(kind), CODE);
  for (let i = 0; i < 32; i++) cpu.mem8[RETS + i * 0x1000] = 0xc3;
  for (let i = 0; i < DATA_BYTES; i += 4) mem.setUint32(DATA + i, (i * 2654435761) | 0, true);
  for (let i = 0; i < 0x10000; i += 4) mem.setUint32(STACK + i, (i * 40503) ^ 0x5a5a, true);
  cpu.setCr3(PD);
  cpu.setCr0(cpu.cr0 | CR0_PG | CR0_WP);
  // A 16-bit stack (B clear), limit 0xffff, at STACK.
  cpu.loadSegmentCache(SS, 0x10, STACK, 0xffff, 0x93);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0xfff0;
  cpu.regs[ESI] = KINDS[kind].esi;
  cpu.regs[EAX] = 0x1234567;
  return cpu;
}

/** Runs to the hlt in slices; at each #PF the host makes the page at CR2 present and writable. */
const trace = (kind: Kind, variant: Variant, slice: number) =>
  traceMappingFaults(machine(kind, variant), slice, PT);

describe("a #PF in a wasm block's slow path", () => {
  for (const kind of Object.keys(KINDS) as Kind[])
    for (const slice of [13, 1000, 10_000_000]) {
      it(`${kind}, in slices of ${slice}: as the interpreter, recorded and not thrown`, () => {
        const a = trace(kind, "interp", slice);
        assert.equal(a.steps[a.steps.length - 1].exit, Exit.Halt);
        assert.ok(a.faults >= 8, `${a.faults} page faults`);
        const mem = Buffer.from(a.cpu.mem8.buffer, a.cpu.mem8.byteOffset, 0x400000);
        for (const variant of ["js", "wasm", "chain"] as const) {
          const b = trace(kind, variant, slice);
          assert.deepEqual(b.steps, a.steps, variant);
          assert.ok(
            mem.equals(Buffer.from(b.cpu.mem8.buffer, b.cpu.mem8.byteOffset, 0x400000)),
            `${variant}: memory`,
          );
          const w = wasmBackend(b.cpu);
          if (variant === "js") continue;
          // Most faults come after the loop is in wasm (its 32nd run and a compile).
          const held = w?.heldFaults ?? 0;
          assert.ok(
            held >= a.faults / 2,
            `${variant}: ${held} of ${a.faults} faults recorded by the wasm imports`,
          );
          assert.ok((w?.runs ?? 0) > 0, `${variant}: wasm block runs`);
        }
      });
    }
});
