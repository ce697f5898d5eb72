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

test("vector files exist", () => {
  assert.ok(files.length > 0, `no *.json in ${dir}`);
});

for (const f of files) {
  test(`cpu vectors: ${f}`, () => {
    const r = runVectorFile(dir + f, runner);
    const shown = r.failures.slice(0, 5).join("\n  ");
    assert.equal(r.failed, 0, `${r.failed} of ${r.passed + r.failed} cases failed, e.g.\n  ${shown}`);
  });
}
