/**
 * The wasm back end of compiled blocks (src/cpu/wasm/) where its modules compile in the
 * background, as on a browser's main thread (V8 refuses a synchronous compile above 4 KB
 * there): the blocks run as JS until their module is in, then as wasm, in their slots and in
 * the region that links them, and the run is the interpreter's all along.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { CR0_PG, CS, DS, ESP, Exit } from "../src/cpu/regs.js";
import { type Backend, defaultBackend } from "../src/cpu/wasm/arena.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { allocRam } from "../src/machine/ram.js";
import { le32 as d } from "./helpers/bytes.js";
import { type CpuState, runSlice, runSlices } from "./helpers/cpu-state.js";

const CODE = 0x1000;
const DATA = 0x3000;
const N = 20000;

// mov ecx,N; mov esi,DATA
// loop (10): add eax,ecx; xor edx,eax; mov [esi],eax; add esi,4; and esi,0x3ffc; or esi,DATA;
//            cmp ecx,N/2; ja skip; inc ebx
// skip: dec ecx; jz done; mov edi,loop; jmp edi (ends the block: a block run per iteration)
// done (50): hlt
const LOOP = [
  [0xb9, ...d(N)],
  [0xbe, ...d(DATA)],
  [0x01, 0xc8],
  [0x31, 0xc2],
  [0x89, 0x06],
  [0x83, 0xc6, 0x04],
  [0x81, 0xe6, ...d(0x3ffc)],
  [0x81, 0xce, ...d(DATA)],
  [0x81, 0xf9, ...d(N / 2)],
  [0x77, 0x01],
  [0x43],
  [0x49],
  [0x74, 50 - 43],
  [0xbf, ...d(CODE + 10)],
  [0xff, 0xe7],
  [0xf4],
].flat();

function machine(backend: Backend | null): Cpu {
  const cpu = new Cpu(backend === "wasm" ? allocRam(1 << 20) : new Uint8Array(1 << 20));
  cpu.backend = backend ?? "js";
  cpu.resetFlat32();
  cpu.mem8.set(LOOP, CODE);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  cpu.blockThreshold = backend === null ? 0 : 2;
  cpu.regionThreshold = backend === null ? 0 : 2;
  return cpu;
}

describe("wasm blocks compiled in the background", () => {
  it("run as JS until their module is in, then as wasm in their region, exactly", async () => {
    const a = machine(null);
    const want: CpuState[] = [];
    for (let s = runSlice(a, 997); ; s = runSlice(a, 997)) {
      want.push(s);
      if (s.exit !== Exit.Budget) break;
    }
    const b = machine("wasm");
    const wasm = wasmBackend(b);
    assert.ok(wasm !== null, "no wasm back end on a WebAssembly.Memory");
    wasm.batch = 1;
    wasm.syncCompile = false;
    const got: CpuState[] = [];
    let jsRuns = 0;
    for (let i = 0; i < want.length; i++) {
      const runs = wasm.runs;
      const blocks = b.blockRuns + b.regionBlocks;
      got.push(runSlice(b, 997));
      if (i === 0) jsRuns = b.blockRuns + b.regionBlocks - blocks - (wasm.runs - runs);
      // Modules compiled in the background land between slices, as between a page's turns.
      await wasm.compiled();
    }
    assert.deepEqual(got, want);
    assert.deepEqual(b.mem8.subarray(DATA, DATA + 0x4000), a.mem8.subarray(DATA, DATA + 0x4000));
    assert.ok(jsRuns > 0, "the first slice ran no JS block (a synchronous compile?)");
    assert.ok(wasm.modules > 1 && wasm.blocks > 0, `${wasm.modules} modules, ${wasm.blocks} wasm blocks`);
    // Most of the loop ran in wasm blocks (in the region built before their module was in).
    assert.ok(wasm.runs > N / 2, `${wasm.runs} wasm block runs`);
    assert.ok(b.regionBlocks > N / 2, `${b.regionBlocks} blocks run in regions`);
  });
});

// Hostile forms against the wasm fast paths, which check the segment (segChk) and the TLB
// inline: each runs interpreted, with JS blocks and with wasm blocks, and the state after every
// slice and the frames must be the same.
const PD = 0x80000;
const PT = 0x81000;
/** The linear page the loop stores into, mapped to frame FW (then unmapped or remapped to FX). */
const W = 0x40000;
const FW = 0x50000;
const FX = 0x60000;
const SWITCH = 5000;

/** 17 bytes run once, at ECX = SWITCH: W unmapped or remapped to FX, then invlpg. */
const PTE_OF_W = PT + (W >>> 12) * 4;
const TLB_ACTIONS = {
  unmap: [0xc7, 0x05, ...d(PTE_OF_W), ...d(0), 0x0f, 0x01, 0x3d, ...d(W)],
  remap: [0xc7, 0x05, ...d(PTE_OF_W), ...d(FX | 3), 0x0f, 0x01, 0x3d, ...d(W)],
};

// mov ecx,10000; mov esi,W
// loop (10): mov [esi],ecx; add esi,4; and esi,W|0xffc; cmp ecx,SWITCH; jne skip; <action, 17>
// skip (46): dec ecx; jnz loop; hlt
function storeLoop(action: keyof typeof TLB_ACTIONS): number[] {
  return [
    [0xb9, ...d(2 * SWITCH)],
    [0xbe, ...d(W)],
    [0x89, 0x0e],
    [0x83, 0xc6, 0x04],
    [0x81, 0xe6, ...d(W | 0xffc)],
    [0x81, 0xf9, ...d(SWITCH)],
    [0x75, 17],
    TLB_ACTIONS[action],
    [0x49],
    [0x75, (10 - 49) & 0xff],
    [0xf4],
  ].flat();
}

// mov ecx,N; mov esi,DATA
// loop (10): mov [esi],ecx; mov eax,[esi]; add esi,1; dec ecx; jnz loop; (20) hlt
const LIMIT_LOOP = [
  [0xb9, ...d(N)],
  [0xbe, ...d(DATA)],
  [0x89, 0x0e],
  [0x8b, 0x06],
  [0x83, 0xc6, 0x01],
  [0x49],
  [0x75, (10 - 20) & 0xff],
  [0xf4],
].flat();

type Variant = Backend | "interp";

/** A machine running code at CODE: paged (W mapped to FW) or with setup's segments. */
function hostile(code: number[], v: Variant, paged: boolean, setup: (cpu: Cpu) => void = () => {}): Cpu {
  const cpu = new Cpu(v === "wasm" ? allocRam(1 << 20) : new Uint8Array(1 << 20));
  cpu.backend = v === "wasm" ? "wasm" : "js";
  const wasm = wasmBackend(cpu);
  if (wasm !== null) wasm.batch = 1;
  cpu.resetFlat32();
  cpu.mem8.set(code, CODE);
  if (paged) {
    const mem = new DataView(cpu.mem8.buffer, cpu.mem8.byteOffset);
    mem.setUint32(PD, PT | 3, true);
    for (let p = 0; p < 256; p++) mem.setUint32(PT + p * 4, (p << 12) | 3, true);
    mem.setUint32(PTE_OF_W, FW | 3, true);
    cpu.setCr3(PD);
    cpu.setCr0(cpu.cr0 | CR0_PG);
  }
  setup(cpu);
  cpu.eip = CODE;
  cpu.regs[ESP] = 0x8000;
  cpu.blockThreshold = v === "interp" ? 0 : 2;
  cpu.regionThreshold = v === "interp" ? 0 : 2;
  return cpu;
}

/** Runs code every way in slices of each size: the same states and memory; the wasm runs. */
function sameEveryWay(
  code: number[],
  paged: boolean,
  slices: number[],
  setup?: (cpu: Cpu) => void,
): {
  steps: CpuState[];
  wasm: Cpu;
}[] {
  const out: { steps: CpuState[]; wasm: Cpu }[] = [];
  for (const slice of slices) {
    const a = hostile(code, "interp", paged, setup);
    const want = runSlices(a, slice, 1_000_000);
    let wasm: Cpu | null = null;
    for (const v of ["js", "wasm"] as const) {
      const b = hostile(code, v, paged, setup);
      assert.deepEqual(runSlices(b, slice, 1_000_000), want, `${v}, slice ${slice}`);
      assert.ok(Buffer.from(b.mem8).equals(Buffer.from(a.mem8)), `${v}, slice ${slice}: memory differs`);
      if (v === "wasm") wasm = b;
    }
    const w = wasm as Cpu;
    const runs = wasmBackend(w)?.runs ?? 0;
    // In long slices most instructions ran in blocks, and the blocks were wasm (a loop may be
    // one block going round inside itself: few runs, many instructions).
    if (slice >= 100) {
      assert.ok(runs > 0, `slice ${slice}: no wasm block ran`);
      assert.ok(
        w.blockInsnsTotal > w.retiredTotal / 2,
        `slice ${slice}: ${w.blockInsnsTotal} of ${w.retiredTotal} in blocks`,
      );
    }
    out.push({ steps: want, wasm: w });
  }
  return out;
}

describe("wasm blocks against hostile code", () => {
  it("a store through a page unmapped mid-loop (PTE cleared, invlpg) faults, its old frame untouched", () => {
    for (const { steps, wasm } of sameEveryWay(storeLoop("unmap"), true, [1, 13, 100, 1_000_000])) {
      const last = steps[steps.length - 1];
      assert.equal(last.exit, Exit.Exception);
      assert.equal(last.vector, 14, "#PF");
      assert.equal(
        wasm.exitCr2 >>> 0,
        W + (((SWITCH + 1) * 4) & 0xffc),
        "CR2: the first store after the unmap",
      );
      // The frame took each store before the unmap and none after (ECX counts down to SWITCH).
      const fw = new Int32Array(wasm.mem8.buffer, FW, 1024);
      assert.ok(
        fw.every((v) => v === 0 || v >= SWITCH),
        "a store after the unmap reached the old frame",
      );
    }
  });

  it("stores after a remap mid-loop (PTE rewritten, invlpg) go to the new frame", () => {
    for (const { steps, wasm } of sameEveryWay(storeLoop("remap"), true, [1, 13, 100, 1_000_000])) {
      assert.equal(steps[steps.length - 1].exit, Exit.Halt);
      const fw = new Int32Array(wasm.mem8.buffer, FW, 1024);
      const fx = new Int32Array(wasm.mem8.buffer, FX, 1024);
      assert.ok(
        fw.every((v) => v === 0 || v >= SWITCH),
        "a store after the remap reached the old frame",
      );
      assert.ok(
        fx.some((v) => v > 0 && v < SWITCH),
        "no store after the remap reached the new frame",
      );
    }
  });

  it("a dword store and load at a data segment's limit: up to the last byte, then #GP", () => {
    // DS limit DATA+99 (byte granular): the dword at DATA+96 fits, at DATA+97 it does not.
    const lim = (cpu: Cpu) => cpu.loadSegmentCache(DS, 0x10, 0, DATA + 99, 0x4093);
    for (const { steps, wasm } of sameEveryWay(LIMIT_LOOP, false, [1, 7, 100, 1_000_000], lim)) {
      const last = steps[steps.length - 1];
      assert.equal(last.exit, Exit.Exception);
      assert.equal(last.vector, 13, "#GP");
      assert.equal(wasm.regs[6], DATA + 97, "ESI at the faulting store");
    }
  });

  it("code running up to the CS limit: the loop runs, the fall-through past the limit is #GP", () => {
    // mov ecx,N; mov esi,DATA; loop (10): mov [esi],ecx; dec ecx; jnz loop; (15) hlt. CS limit:
    // the jnz's last byte, so the hlt after it is beyond the limit.
    const code = [...LIMIT_LOOP.slice(0, 10), 0x89, 0x0e, 0x49, 0x75, 0xfb, 0xf4];
    const lim = (cpu: Cpu) => cpu.loadSegmentCache(CS, 0x08, 0, CODE + 14, 0x409b);
    for (const { steps } of sameEveryWay(code, false, [1, 7, 100, 1_000_000], lim)) {
      const last = steps[steps.length - 1];
      assert.equal(last.exit, Exit.Exception);
      assert.equal(last.vector, 13, "#GP");
      assert.equal(last.eip, CODE + 15, "at the instruction past the limit");
    }
  });
});

describe("TSXEN_CPU_BACKEND", () => {
  it("selects wasm by default or when unset/empty, js when asked, and names a typo", () => {
    const saved = process.env.TSXEN_CPU_BACKEND;
    const pick = (v: string | undefined): Backend => {
      if (v === undefined) delete process.env.TSXEN_CPU_BACKEND;
      else process.env.TSXEN_CPU_BACKEND = v;
      return defaultBackend();
    };
    try {
      assert.equal(pick(undefined), "wasm");
      assert.equal(pick(""), "wasm");
      assert.equal(pick("wasm"), "wasm");
      assert.equal(pick("js"), "js");
      assert.throws(() => pick("JS "), /TSXEN_CPU_BACKEND="JS ": expected "wasm" \(the default\) or "js"/);
    } finally {
      if (saved === undefined) delete process.env.TSXEN_CPU_BACKEND;
      else process.env.TSXEN_CPU_BACKEND = saved;
    }
  });
});
