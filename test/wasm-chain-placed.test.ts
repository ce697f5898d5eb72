/**
 * A wasm block put in place while add() runs (its body compiled before: identical code of
 * another domain, or a full batch) is chained in the JS region that holds it (blocks.ts
 * interpreted(): the region is built again after the add). Before, place() left such a block
 * unchained (it chains only in a region linked since the add) and nothing built the region
 * again: 100 idle domains made 14 wasm entries a tick where 6 do. Whole runs of idle domains
 * (the same kernel in each), with the per-code queue threshold low so that the later domains'
 * blocks are placed at their first run; every wasm block a region holds (one ending in iret
 * too) must be its chain's entry there, and runs stay exact (the same guest instructions a tick).
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
  slot: number;
  wasm: unknown;
  id: number;
  tab: unknown;
}

function idle(n: number): Hypervisor {
  const hv = new Hypervisor({ memoryMiB: 16 * n + 32, onConsole: () => {} });
  const image = readFileSync(guestPath("bench_idle"));
  for (let i = 0; i < n; i++)
    launchDomain(hv, { name: `idle${i}`, image, memoryMiB: 16, cmdline: "tick_ms=10" });
  return hv;
}

/** Wasm blocks held by a region, and those of them that are not that region's chain entry. */
function unchained(hv: Hypervisor): { held: number; bad: number } {
  const w = wasmBackend(hv.cpu);
  assert.ok(w !== null, "the wasm back end");
  const dc = hv.cpu.dc;
  let held = 0;
  let bad = 0;
  for (const k of (w as unknown as { known: Map<number, KnownView> }).known.values()) {
    const tab = dc.regionTab[k.slot];
    if (k.wasm === null || tab === null || k.id === 0 || dc.blockFn[k.slot] !== k.wasm) continue;
    held++;
    if (k.tab !== tab) bad++;
  }
  return { held, bad };
}

describe("wasm blocks placed at their add", () => {
  after(() => setInterpretPending(true));

  it("are chained in their region: idle domains of one kernel, each tick's blocks entered through chains", () => {
    // Queued at the 64th run of a code over all domains: the later domains' copies find the
    // body compiled and are placed at their first run (with the old rule, 43 of 128 such
    // blocks were left unchained and a tick made 10.6 wasm entries; 7 now).
    setInterpretPending(true, 128, 64);
    const hv = idle(8);
    hv.run(hv.nowNs() + 1e9);
    const w = wasmBackend(hv.cpu);
    assert.ok(w !== null);
    assert.ok(w.reused > 0, `${w.reused} blocks placed with a body compiled before`);
    const { held, bad } = unchained(hv);
    assert.ok(held >= 8 * 8, `${held} wasm blocks in regions`);
    assert.equal(bad, 0, `${bad} of ${held} wasm blocks in regions not chained there`);
    // A tick's wasm entries: the chains' blocks run inside wasm, the entries are few.
    const c = hv.cpu;
    const runs0 = w.runs;
    const chained0 = w.chainRuns;
    const ret0 = c.retiredTotal;
    const ticks = 8 * 50;
    hv.run(hv.nowNs() + 0.5e9);
    const entries = w.runs - runs0 - (w.chainRuns - chained0);
    assert.equal(c.retiredTotal - ret0, ticks * 307, "guest instructions a tick");
    assert.ok(entries / ticks < 8, `${(entries / ticks).toFixed(2)} wasm entries a tick`);
  });
});
