/**
 * Runs every differential CPU test vector file in test/vectors/ (see docs/cpu-vectors.md):
 * one test per file, each expecting no failing case.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { runVectorFile, VectorRunner } from "../src/cli/cpu-test.js";

// Compiled to dist/test/: the vectors stay in the source tree.
const dir = fileURLToPath(new URL("../../test/vectors/", import.meta.url));
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort();
const runner = new VectorRunner();

/**
 * The committed files and their case counts (each case runs interpreted and as a compiled
 * block): a file that goes missing, or cases that stop running, fail here instead of
 * shrinking the run unnoticed. Regenerating a file (scripts/gen-vectors.py) updates its count.
 */
const CASES: Record<string, number> = {
  "alu.json": 942,
  "bcd.json": 360,
  "bitops.json": 312,
  "control.json": 276,
  "faults.json": 103,
  "movement-extra.json": 40,
  "movement.json": 443,
  "muldiv.json": 288,
  "setcc-cmov.json": 288,
  "shift.json": 1287,
  "stack.json": 194,
  "string.json": 473,
  "x87-rc.json": 200,
  "x87.json": 1070,
  "xchg-cmpxchg.json": 166,
};

test("the vector files are exactly the pinned ones", () => {
  assert.deepEqual(files, Object.keys(CASES).sort(), `in ${dir}`);
});

for (const f of files) {
  test(`cpu vectors: ${f}`, () => {
    const r = runVectorFile(dir + f, runner);
    const shown = r.failures.slice(0, 5).join("\n  ");
    assert.equal(r.failed, 0, `${r.failed} of ${r.passed + r.failed} cases failed, e.g.\n  ${shown}`);
    assert.equal(r.passed, CASES[f], "cases run");
  });
}

test("the vectors ran as wasm blocks too (a silently disabled back end fails here)", () => {
  assert.ok(runner.wasm !== null, "the runner's memory is a WebAssembly.Memory");
  // Cases whose first instruction is a hot one (1,590 of the 6,442 at the time of writing; 1,465
  // before the guest kernels' stub forms, pusha/popa, mov moffs, xchg, btr, bsf, not, were hot)
  // compile a block, which the wasm pass makes wasm before its first run; it runs when it
  // fits the case's budget, as in the JS pass.
  assert.ok(runner.wasm.blocks > 1200, `${runner.wasm.blocks} wasm blocks`);
  // Each of those blocks runs (the runner turns decoding ahead off, which would lengthen a
  // case's block past its budget: 84 of them ran with it on).
  assert.ok(runner.jsEntries >= 1550, `${runner.jsEntries} entries into JS blocks`);
  assert.equal(runner.wasmEntries, runner.jsEntries, "block and region entries, wasm pass vs JS pass");
  assert.ok(runner.wasm.runs >= runner.wasmEntries, `${runner.wasm.runs} wasm block runs`);
});
