/**
 * Scheduling (semantics.md §7): CPU shares follow the BVT weights, round-robin shares
 * equally, several physical CPUs run domains in parallel, and everything is deterministic
 * because time is virtual.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { launchDomain } from "../src/tools/launch.js";
import type { Domain } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { writeElf32 } from "./helpers/elf32_writer.js";

/** A guest that never stops computing: `inc eax; jmp .-1`. */
const spinner = writeElf32({
  entry: 0xc0000000,
  segments: [{ vaddr: 0xc0000000, data: Uint8Array.from([0x40, 0xeb, 0xfd]) }],
  xenGuest: "GUEST_OS=spin,XEN_VER=3.0,LOADER=generic",
});

function machine(opts: { scheduler?: string; cpus?: number } = {}): Hypervisor {
  return new Hypervisor({ memoryMiB: 32, tscHz: 10_000_000, ...opts });
}

function spin(hv: Hypervisor, name: string): Domain {
  return launchDomain(hv, { name, image: spinner, memoryMiB: 4 }).domain;
}

const share = (d: Domain, all: Domain[]): number =>
  d.vcpus[0].cpuTimeNs / all.reduce((s, x) => s + x.vcpus[0].cpuTimeNs, 0);

describe("scheduling", () => {
  it("BVT gives equal weights equal shares within 2%", () => {
    const hv = machine();
    const ds = [spin(hv, "a"), spin(hv, "b")];
    assert.equal(hv.run(1e9).kind, "time-limit");
    for (const d of ds) assert.ok(Math.abs(share(d, ds) - 0.5) < 0.02, `share ${share(d, ds)}`);
  });

  it("BVT shares follow the inverse of mcu_advance (weights 1:2:3) within 3%", () => {
    const hv = machine();
    const ds = [spin(hv, "w1"), spin(hv, "w2"), spin(hv, "w3")];
    // mcu_advance is the inverse weight: weight w gets advance 60 / w.
    ds[0].bvt.mcuAdvance = 60;
    ds[1].bvt.mcuAdvance = 30;
    ds[2].bvt.mcuAdvance = 20;
    hv.run(2e9);
    const want = [1 / 6, 2 / 6, 3 / 6];
    for (const [i, d] of ds.entries()) {
      assert.ok(Math.abs(share(d, ds) - want[i]) < 0.03, `${d.name}: ${share(d, ds)}`);
    }
  });

  it("round-robin shares equally", () => {
    const hv = machine({ scheduler: "rrobin" });
    const ds = [spin(hv, "a"), spin(hv, "b"), spin(hv, "c")];
    hv.run(1e9);
    for (const d of ds) assert.ok(Math.abs(share(d, ds) - 1 / 3) < 0.02, `share ${share(d, ds)}`);
    assert.equal(hv.sched.policy.id, 3);
  });

  it("two physical CPUs run two domains in parallel, each nearly all the time", () => {
    const hv = machine({ cpus: 2 });
    const a = spin(hv, "a");
    const b = spin(hv, "b");
    hv.sched.migrate(b.vcpus[0], 1);
    hv.run(5e8);
    for (const d of [a, b])
      assert.ok(d.vcpus[0].cpuTimeNs > 0.95 * 5e8, `${d.name}: ${d.vcpus[0].cpuTimeNs}`);
  });

  it("is deterministic: the same run gives the same CPU times", () => {
    const times = () => {
      const hv = machine({ cpus: 2 });
      const ds = [spin(hv, "a"), spin(hv, "b"), spin(hv, "c")];
      ds[1].bvt.mcuAdvance = 20;
      hv.run(3e8);
      return ds.map((d) => d.vcpus[0].cpuTimeNs);
    };
    assert.deepEqual(times(), times());
  });

  it("BVT warping borrows virtual time: the warped domain runs first, shares stay fair", () => {
    const setup = (warplMs: number, warpuMs: number) => {
      const hv = machine();
      const a = spin(hv, "warped");
      const b = spin(hv, "plain");
      Object.assign(a.bvt, {
        warpback: true,
        warp: true,
        warpValue: 1000,
        warplNs: warplMs * 1e6,
        warpuNs: warpuMs * 1e6,
      });
      return { hv, a, b };
    };
    const first = setup(0, 0);
    first.hv.run(5e6);
    assert.equal(first.b.vcpus[0].cpuTimeNs, 0, "the warped domain is dispatched first");
    for (const [l, u] of [
      [0, 0],
      [10, 90],
    ]) {
      const { hv, a, b } = setup(l, u);
      hv.run(1e9);
      assert.ok(Math.abs(share(a, [a, b]) - 0.5) < 0.03, `warpl ${l} warpu ${u}: ${share(a, [a, b])}`);
    }
  });

  it("BVT warp limit: after warpl the warp ends, and with warpu 0 it never resumes", () => {
    const hv = machine();
    const a = spin(hv, "warped");
    spin(hv, "plain");
    Object.assign(a.bvt, { warpback: true, warp: true, warpValue: 1000, warplNs: 10e6, warpuNs: 0 });
    hv.run(2e8);
    assert.equal(a.bvt.warp, false);
    assert.equal(a.bvt.warpback, false);
  });

  it("an unknown policy name is refused", () => {
    assert.throws(() => machine({ scheduler: "atropos" }), /unknown scheduler "atropos"/);
  });
});
