/**
 * A wasm block's inner loops (gen.ts midLoops): a jcc back to an earlier instruction of the
 * block other than its first goes round inside the block while the budget allows a whole
 * block, instead of leaving to the chain at each pass. Loops in loops (the outer one the
 * block's own), a head reached through a followed backward jmp (as gcc lays loops out), the
 * record the pre-header or the last pass left read at the head, forward jccs inside the loop
 * and around it, one jumping into the loop (no inner loop then), a #DE on a later pass, and
 * the loop rewriting its own immediate each pass: the state after every slice must be the
 * interpreter's, with JS blocks and with wasm blocks with the chain off and on, in slices of
 * 41, 1000 and whole; and wasm blocks must run fewer times than JS ones where a loop is inner.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Cpu } from "../src/cpu/cpu.js";
import { Exit } from "../src/cpu/regs.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { le32 as d } from "./helpers/bytes.js";
import { runSlices, type Variant, variantCpu } from "./helpers/cpu-state.js";

const CODE = 0x5000;
/** Outer passes. */
const OUTER = 300;

/** setb al; setz dl; sets al, each zero-extended and added to esi: reads the record at the head (ecx counts). */
const READS = [
  [0x92, 0],
  [0x94, 2],
  [0x98, 0],
].flatMap(([cc, r]) => [0x0f, cc, 0xc0 | r, 0x0f, 0xb6, 0xc0 | (r << 3) | r, 0x01, 0xc6 | (r << 3)]);
/** imul ebx, edi, 0x9e3779b1; add esi, ebx. */
const MIX = [
  [0x69, 0xdf, ...d(0x9e3779b1)],
  [0x01, 0xde],
].flat();
/** cmp ebx, 0x80000000; jb +3; add esi, 5 (a forward jcc inside the loop). */
const SKIP = [
  [0x81, 0xfb, ...d(0x80000000)],
  [0x72, 0x03],
  [0x83, 0xc6, 0x05],
].flat();
/** mov edx, esi; mov eax, edi; div ebp: #DE once the sum in esi reaches ebp. */
const DIV = [0x89, 0xf2, 0x89, 0xf8, 0xf7, 0xf5];

/** mov ecx, OUTER; xor esi, esi; mov ebp, 0xf0000000; mov ebx, 0. */
const START = [
  [0xb9, ...d(OUTER)],
  [0x31, 0xf6],
  [0xbd, ...d(0xf0000000)],
  [0xbb, ...d(0)],
].flat();

interface Shape {
  /** The outer loop's body before the inner loop's head (the block's start is the outer head). */
  pre: number[];
  /** The inner loop's body (then dec edi; jnz head). */
  body: number[];
  /** Through a followed backward jmp: the block starts at a mov edi and jumps back to the pre-header. */
  rotated?: boolean;
  /**
   * Every 64th outer pass the pre-header rewrites the immediate of the add esi the inner
   * loop starts with (the block writes its own inner loop before entering it).
   */
  selfWrite?: boolean;
  /** The inner loop must run inside the block (fewer wasm block runs than JS ones). */
  inner: boolean;
}

/**
 * START; X: mov edi, 7; <pre>; H: <body>; dec edi; jnz H; dec ecx; jnz X; hlt. Rotated:
 * START; jmp X; L: <pre>; H: <body>; dec edi; jnz H; dec ecx; jnz X; hlt; X: mov edi, 7; jmp L.
 */
function program(s: Shape): number[] {
  const movEdi = [0xbf, ...d(7)];
  let body = s.body;
  let pre = s.pre;
  if (s.selfWrite) {
    // test cl, 63; jnz +6; mov [imm], esi (its address patched below); then add esi, imm32.
    pre = [s.pre, [0xf6, 0xc1, 0x3f, 0x75, 0x06, 0x89, 0x35, ...d(0)]].flat();
    body = [[0x81, 0xc6, ...d(1)], s.body].flat();
  }
  const inner = [body, [0x4f], [0x75, -(body.length + 3) & 0xff]].flat();
  let code: number[];
  let headAt: number;
  if (!s.rotated) {
    const x = [movEdi, pre].flat();
    const loop = [x, inner, [0x49]].flat();
    code = [START, loop, [0x75, -(loop.length + 2) & 0xff], [0xf4]].flat();
    headAt = START.length + x.length;
  } else {
    // jmp X (rel32) over L..hlt; X: mov edi, 7; jmp L (rel32, back).
    const l = [pre, inner, [0x49]].flat();
    const mid = [l, [0x0f, 0x85, ...d(0)], [0xf4]].flat(); // jnz X, patched below
    code = [START, [0xe9, ...d(mid.length)], mid, movEdi, [0xe9, ...d(-(mid.length + 5 + 5))]].flat();
    const jnzAt = START.length + 5 + l.length;
    const xAt = START.length + 5 + mid.length;
    code.splice(jnzAt + 2, 4, ...d(xAt - (jnzAt + 6)));
    headAt = START.length + 5 + pre.length;
  }
  if (s.selfWrite) code.splice(headAt - 4, 4, ...d(CODE + headAt + 2));
  return code;
}

const SHAPES: Record<string, Shape> = {
  "a loop in a loop": { pre: [], body: MIX, inner: true },
  "the pre-header's record and the last pass's read at the head": {
    pre: [0x81, 0xf9, ...d(150)], // cmp ecx, 150
    body: [...READS, ...MIX],
    inner: true,
  },
  "a forward jcc inside the inner loop": { pre: [], body: [...MIX, ...SKIP], inner: true },
  // test cl, 1; jz +3 (past the loop: around it); add esi, 3.
  "a forward jcc before the head, past it": {
    pre: [0xf6, 0xc1, 0x01, 0x74, 0x03, 0x83, 0xc6, 0x03],
    body: [...MIX, ...SKIP],
    inner: true,
  },
  // test cl, 1; jz into the loop (past add esi, 3): the loop is not inner then.
  "a forward jcc into the loop": {
    pre: [0xf6, 0xc1, 0x01, 0x74, 0x03],
    body: [0x83, 0xc6, 0x03, ...MIX],
    inner: false,
  },
  "reached through a followed backward jmp": {
    pre: [0x31, 0xc0],
    body: [...READS, ...MIX],
    rotated: true,
    inner: true,
  },
  "a #DE on a later pass": { pre: [], body: [...DIV, ...MIX], inner: true },
  "the block rewriting its inner loop": { pre: [], body: MIX, selfWrite: true, inner: true },
};

/** The code at CODE, blocks and regions at their second run (the interpreter: none). */
function machine(code: number[], variant: Variant): Cpu {
  const cpu = variantCpu(variant, 1 << 20, 2);
  cpu.mem8.set(code, CODE);
  cpu.eip = CODE;
  return cpu;
}

describe("a wasm block's inner loops", () => {
  for (const [name, shape] of Object.entries(SHAPES))
    for (const slice of [41, 1000, 10_000_000]) {
      it(`${name}, in slices of ${slice}: as the interpreter`, () => {
        const code = program(shape);
        const a = runSlices(machine(code, "interp"), slice, 100_000);
        const last = a[a.length - 1];
        if (name.includes("#DE"))
          assert.ok(last.exit === Exit.Exception && last.vector === 0 && last.retired > 100);
        else assert.equal(last.exit, Exit.Halt, JSON.stringify(last));
        const runs: Record<string, number> = {};
        for (const variant of ["js", "wasm", "chain"] as const) {
          const cpu = machine(code, variant);
          assert.deepEqual(runSlices(cpu, slice, 100_000), a, variant);
          runs[variant] = variant === "js" ? cpu.blockRuns + cpu.regionBlocks : (wasmBackend(cpu)?.runs ?? 0);
          if (variant !== "js") assert.ok(runs[variant] > 0, `${variant}: wasm block runs`);
        }
        // The inner loop's passes stay in the block: well under the JS blocks' runs.
        if (shape.inner && slice > 41 && !name.includes("#DE"))
          for (const v of ["wasm", "chain"])
            assert.ok(runs[v] * 2 < runs.js, `${v}: ${JSON.stringify(runs)}`);
      });
    }
});
