/**
 * A wasm block placed with a function compiled for an identical block before (another
 * domain's copy of the same kernel) keeps neither its body nor its key (backend.ts add and
 * install): kept, each domain held the bytes of all its blocks twice, as a number array and
 * as a string, and 100 idle domains grew tsxend's RSS by ~0.7 MiB a domain
 * (bench:scale: 1.9-2.3 MiB a domain, 1.2-1.3 without them). Whole runs of idle domains of
 * one kernel: every placed block has dropped both, and the later domains' blocks were reused.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, describe, it } from "node:test";
import { setInterpretPending } from "../src/cpu/blocks.js";
import { wasmBackend } from "../src/cpu/wasm/backend.js";
import { launchDomain } from "../src/tools/launch.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { guestPath } from "./support/guests.js";

interface KnownView {
  index: number;
  key: string;
  body: number[] | null;
}

describe("wasm blocks of identical code in several domains", () => {
  after(() => setInterpretPending(true));

  it("placed blocks hold no body and no key: only the shared function's key is kept", () => {
    // Queued at the 64th run of a code over all domains, as in wasm-chain-placed.
    setInterpretPending(true, 128, 64);
    const hv = new Hypervisor({ memoryMiB: 16 * 8 + 32, onConsole: () => {} });
    const image = readFileSync(guestPath("bench_idle"));
    for (let i = 0; i < 8; i++)
      launchDomain(hv, { name: `idle${i}`, image, memoryMiB: 16, cmdline: "tick_ms=10" });
    hv.run(hv.nowNs() + 1e9);
    const w = wasmBackend(hv.cpu);
    assert.ok(w !== null, "the wasm back end");
    assert.ok(w.reused >= 7 * 8, `${w.reused} blocks placed with a body compiled before`);
    let placed = 0;
    let kept = 0;
    for (const k of (w as unknown as { known: Map<number, KnownView> }).known.values()) {
      if (k.index < 0) continue;
      placed++;
      if (k.body !== null || k.key !== "") kept++;
    }
    assert.ok(placed >= 8 * 8, `${placed} placed blocks`);
    assert.equal(kept, 0, `${kept} of ${placed} placed blocks keep their body or key`);
  });
});
