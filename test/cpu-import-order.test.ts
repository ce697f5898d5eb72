/**
 * The CPU's modules load whatever one a program imports first: blocks.ts, cpu.ts and the wasm
 * back end copy imported bindings at module level (ops/table.ts's handler tables among them),
 * which reads them while the module is evaluated, so ops/table.js must never wait on cpu.js
 * (segments.ts takes TLB_SUP_READ from tlb_bits.js, not cpu.js). Each entry is a fresh process
 * (a module graph is evaluated once a process) that then runs a few instructions through the
 * run loop, the pending runner and a wasm block.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const CPU = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "cpu");
const url = (m: string): string => pathToFileURL(join(CPU, m)).href;

/** Imports `first`, then runs a 3-instruction loop 3,000 times on a wasm-backed CPU. */
function runAfter(first: string): { status: number | null; out: string } {
  const src = `
    await import(${JSON.stringify(url(first))});
    const { Cpu } = await import(${JSON.stringify(url("cpu.js"))});
    const { allocRam } = await import(${JSON.stringify(pathToFileURL(join(CPU, "..", "machine", "ram.js")).href)});
    const cpu = new Cpu(allocRam(1 << 20));
    cpu.backend = "wasm";
    cpu.resetFlat32();
    // mov ecx,3000; (5) inc eax; dec ecx; jnz (5); hlt
    cpu.mem8.set([0xb9, 0xb8, 0x0b, 0, 0, 0x40, 0x49, 0x75, 0xfc, 0xf4], 0x1000);
    cpu.eip = 0x1000;
    cpu.regs[4] = 0x8000;
    cpu.blockThreshold = 2;
    cpu.regionThreshold = 2;
    for (let i = 0; i < 100 && cpu.retired < 9001; i++) cpu.run(1000);
    console.log(cpu.retired, cpu.regs[0]);
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", src], { encoding: "utf8" });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe("the CPU's modules, whichever is imported first", () => {
  for (const first of [
    "ops/table.js",
    "ops/system.js",
    "segments.js",
    "blocks.js",
    "wasm/backend.js",
    "cpu.js",
  ]) {
    it(`${first} first`, () => {
      const r = runAfter(first);
      assert.equal(r.status, 0, r.out);
      // 1 + 3 x 3,000 instructions and the hlt, EAX counted up 3,000 times.
      assert.equal(r.out.trim(), "9002 3000");
    });
  }
});
