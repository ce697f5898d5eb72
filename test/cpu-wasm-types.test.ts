/**
 * The wasm modules' function types have one owner (gen.ts TYPES, filled by sig()): each
 * import, thunk, block, hub and chain names its type by an index sig() gave, and a thunk's
 * parameters are its import's and DONE. A table reordered, or an import's arity changed on one
 * side only, must fail at the back end's construction or work, never run a mismatched type.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Cpu } from "../src/cpu/cpu.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { I32, moduleBytes } from "../src/cpu/wasm/emit.js";
import {
  BLOCK_TYPE,
  CHAIN_TYPE,
  HUB_TYPE,
  IMPORT_PARAMS,
  IMPORT_TYPES,
  IMPORTS,
  THUNK_TYPES,
  THUNKS,
  TYPES,
  thunkBody,
} from "../src/cpu/wasm/gen.js";
import { allocRam } from "../src/machine/ram.js";

const shape = (t: number) => [TYPES[t].params.length, TYPES[t].results.length];

describe("wasm function types", () => {
  it("are each listed once, and every index names the signature its function needs", () => {
    const keys = TYPES.map((t) => `${t.params.join()}>${t.results.join()}`);
    assert.equal(new Set(keys).size, TYPES.length, `duplicate types: ${keys.join(" ")}`);
    for (const t of TYPES) assert.ok([...t.params, ...t.results].every((v) => v === I32));
    assert.equal(IMPORT_TYPES.length, IMPORTS.length);
    let checked = 0;
    for (let i = 0; i < IMPORTS.length; i++) {
      assert.deepEqual(shape(IMPORT_TYPES[i]), [IMPORT_PARAMS[i], 1], IMPORTS[i]);
      checked++;
    }
    assert.equal(THUNK_TYPES.length, THUNKS.length);
    for (let j = 0; j < THUNKS.length; j++) {
      const im = IMPORTS.indexOf(THUNKS[j]);
      assert.deepEqual(shape(THUNK_TYPES[j]), [IMPORT_PARAMS[im] + 1, 1], THUNKS[j]);
      checked++;
    }
    assert.equal(checked, 17 + 9);
    assert.deepEqual(shape(BLOCK_TYPE), [3, 2]);
    assert.deepEqual(shape(HUB_TYPE), [2, 1]);
    assert.deepEqual(shape(CHAIN_TYPE), [4, 1]);
  });

  it("make a module of the thunks that validates, each calling its import", () => {
    const bytes = moduleBytes({
      types: TYPES,
      imports: IMPORTS.map((name, i) => ({ name, type: IMPORT_TYPES[i] })),
      memPages: 1,
      funcs: THUNKS.map((_, j) => ({ type: THUNK_TYPES[j], locals: [], body: thunkBody(0, j) })),
      exports: THUNKS.map((n, j) => ({ name: n, func: IMPORTS.length + j })),
    });
    assert.ok(WebAssembly.validate(bytes));
  });

  it("agree with the back end's JS imports (checked at its construction)", () => {
    const cpu = new Cpu(allocRam(1 << 20));
    cpu.backend = "wasm";
    cpu.resetFlat32();
    assert.ok(wasmBackend(cpu) !== null);
  });
});
