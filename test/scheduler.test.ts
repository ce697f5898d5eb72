/**
 * Scheduling (semantics.md §7): CPU shares follow the BVT weights, round-robin shares
 * equally, several physical CPUs run domains in parallel, and everything is deterministic
 * because time is virtual.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { EBP, EDI, ESI } from "../src/cpu/regs.js";
import { TraceBuf, TraceRec, Trc } from "../src/public/trace.js";
import { SharedInfo } from "../src/public/xen.js";
import { bootDom0, type Dom0 } from "../src/tools/dom0.js";
import { launchDomain } from "../src/tools/launch.js";
import {
  xcBvtCtxAllow,
  xcBvtDomainGet,
  xcBvtDomainSet,
  xcDomainPinCpu,
  xcGetTbufs,
} from "../src/tools/xc.js";
import type { AbiName } from "../src/xen/abi.js";
import type { Domain } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { refreshDomainTime, updateDomainTime } from "../src/xen/schedule.js";
import { writeElf32 } from "./helpers/elf32_writer.js";
import { buildGuests } from "./support/guests.js";

/** A guest that never stops computing: `inc eax; jmp .-1`. */
const spinner = writeElf32({
  entry: 0xc0000000,
  segments: [{ vaddr: 0xc0000000, data: Uint8Array.from([0x40, 0xeb, 0xfd]) }],
  xenGuest: "GUEST_OS=spin,XEN_VER=3.0,LOADER=generic",
});

/**
 * A guest that yields forever, counting results: EDI the zeros, ESI the hypercall numbers
 * (6) left in EAX, EBP anything else.
 */
const yieldCounter = writeElf32({
  entry: 0xc0000000,
  segments: [
    {
      vaddr: 0xc0000000,
      // biome-ignore format: one instruction a line
      data: Uint8Array.from([
        0x31, 0xf6, 0x31, 0xff, 0x31, 0xed, // xor esi,esi; xor edi,edi; xor ebp,ebp
        0xb8, 0x06, 0x00, 0x00, 0x00, // loop: mov eax, __HYPERVISOR_sched_op
        0x31, 0xdb, // xor ebx,ebx (SCHEDOP_yield)
        0xcd, 0x82, // int 0x82
        0x85, 0xc0, 0x74, 0x08, // test eax,eax; jz zero
        0x83, 0xf8, 0x06, 0x74, 0x06, // cmp eax,6; je kept
        0x45, 0xeb, 0xeb, // inc ebp; jmp loop
        0x47, 0xeb, 0xe8, // zero: inc edi; jmp loop
        0x46, 0xeb, 0xe5, // kept: inc esi; jmp loop
      ]),
    },
  ],
  xenGuest: "GUEST_OS=yield,XEN_VER=3.0,LOADER=generic",
});

function yielder(hv: Hypervisor, name: string): Domain {
  return launchDomain(hv, { name, image: yieldCounter, memoryMiB: 4 }).domain;
}

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

  // Xen's do_yield switches away inside __enter_scheduler and never stores its result: a
  // yield that lets another vcpu run resumes with EAX = the hypercall number (issue 17).
  it("a yield that lets another domain run leaves EAX holding the hypercall number; alone it returns 0", () => {
    const counts = (hv: Hypervisor, d: Domain) => {
      const v = d.vcpus[0];
      const r = hv.current === v ? hv.cpu.regs : (v.context?.regs ?? new Int32Array(8));
      return { zero: r[EDI], kept: r[ESI], other: r[EBP] };
    };
    for (const scheduler of ["rrobin", "bvt"]) {
      const two = machine({ scheduler });
      const ds = [yielder(two, "a"), yielder(two, "b")];
      two.run(20e6);
      for (const d of ds) {
        const c = counts(two, d);
        assert.ok(c.kept > 100 && c.other === 0, `${scheduler}, two domains: ${JSON.stringify(c)}`);
      }
      const one = machine({ scheduler });
      const solo = yielder(one, "solo");
      one.run(20e6);
      const c = counts(one, solo);
      assert.ok(c.zero > 100 && c.kept === 0 && c.other === 0, `${scheduler}, alone: ${JSON.stringify(c)}`);
    }
  });

  it("an unknown policy name is refused", () => {
    assert.throws(() => machine({ scheduler: "atropos" }), /unknown scheduler "atropos"/);
  });
});

/** The SCHED_SWITCH records in CPU 0's trace buffer, as dom0 reads them: [cycles, domid]. */
function switches(hv: Hypervisor, dom0: Dom0): Array<[number, number]> {
  const t = xcGetTbufs(dom0);
  const nrRecs = hv.read32(t.machAddr + TraceBuf.size);
  const head = hv.read32(t.machAddr + TraceBuf.head);
  assert.ok(head <= nrRecs, `the trace ring wrapped (${head} records)`);
  const out: Array<[number, number]> = [];
  for (let i = 0; i < head; i++) {
    const rec = t.machAddr + TraceBuf.SIZE + i * TraceRec.SIZE;
    if (hv.read32(rec + TraceRec.event) !== Trc.SCHED_SWITCH) continue;
    const cycles = hv.read32(rec + TraceRec.cycles) + hv.read32(rec + TraceRec.cycles + 4) * 2 ** 32;
    out.push([cycles, hv.read32(rec + TraceRec.d1)]);
  }
  return out;
}

describe("scheduling through the administrative interface (dom0)", () => {
  const withDom0 = (opts: { cpus?: number } = {}) => {
    const hv = machine(opts);
    return { hv, dom0: bootDom0(hv) };
  };

  it("BVT shares follow mcu_advance set by DOM0_ADJUSTDOM (weights 1:2:3) within 3%", () => {
    const { hv, dom0 } = withDom0();
    const ds = [spin(hv, "w1"), spin(hv, "w2"), spin(hv, "w3")];
    const advance = [60, 30, 20];
    for (const [i, d] of ds.entries()) xcBvtDomainSet(dom0, d.id, { mcuAdvance: advance[i] });
    for (const [i, d] of ds.entries()) assert.equal(xcBvtDomainGet(dom0, d.id).mcuAdvance, advance[i]);
    hv.run(2e9);
    const want = [1 / 6, 2 / 6, 3 / 6];
    for (const [i, d] of ds.entries())
      assert.ok(Math.abs(share(d, ds) - want[i]) < 0.03, `${d.name}: ${share(d, ds)}`);
  });

  it("DOM0_ADJUSTDOM changes the shares of domains already running", () => {
    const { hv, dom0 } = withDom0();
    const a = spin(hv, "a");
    const b = spin(hv, "b");
    hv.run(2e8);
    const before = [a.vcpus[0].cpuTimeNs, b.vcpus[0].cpuTimeNs];
    xcBvtDomainSet(dom0, a.id, { mcuAdvance: 10 });
    xcBvtDomainSet(dom0, b.id, { mcuAdvance: 30 });
    hv.run(2e9);
    const ranA = a.vcpus[0].cpuTimeNs - before[0];
    const ranB = b.vcpus[0].cpuTimeNs - before[1];
    assert.ok(Math.abs(ranA / (ranA + ranB) - 0.75) < 0.03, `a: ${ranA / (ranA + ranB)}`);
  });

  it("DOM0_SCHEDCTL ctx_allow sets the slice: fewer, longer slices, shares unchanged", () => {
    const run = (ctxAllowMs: number) => {
      const { hv, dom0 } = withDom0();
      xcGetTbufs(dom0); // the trace reader starts before the run (records are written from then on)
      assert.equal(xcBvtCtxAllow(dom0, ctxAllowMs * 1e6), ctxAllowMs * 1e6);
      assert.equal(xcBvtCtxAllow(dom0), ctxAllowMs * 1e6);
      const ds = [spin(hv, "a"), spin(hv, "b")];
      hv.run(4e8);
      for (const d of ds) assert.ok(Math.abs(share(d, ds) - 0.5) < 0.03, `share ${share(d, ds)}`);
      // Slices: the time between switches to different domains, in the trace's cycle stamps.
      const sw = switches(hv, dom0);
      const slices: number[] = [];
      for (let i = 1; i < sw.length; i++) {
        assert.notEqual(sw[i][1], sw[i - 1][1], "a switch changes the domain");
        slices.push(hv.clock.ns(sw[i][0] - sw[i - 1][0]));
      }
      // Drop the first (start-up) slice; the rest are steady state.
      const steady = slices.slice(1);
      return {
        count: sw.length,
        mean: steady.reduce((x, y) => x + y, 0) / steady.length,
        min: Math.min(...steady),
      };
    };
    const short = run(2);
    const long = run(20);
    // Every slice lasts at least ctx_allow (the allowance is added to the BVT difference).
    assert.ok(short.min >= 2e6 - 1e5, `ctx_allow 2 ms: shortest slice ${short.min} ns`);
    assert.ok(long.min >= 20e6 - 1e5, `ctx_allow 20 ms: shortest slice ${long.min} ns`);
    // Two equal spinners: each slice is ctx_allow plus the BVT lead it buys, under 3 x ctx_allow.
    assert.ok(short.mean < 6e6 && long.mean < 60e6, `mean slices ${short.mean} / ${long.mean} ns`);
    // Ten times the allowance: the slices grow about tenfold, the switches shrink as much.
    const ratio = long.mean / short.mean;
    assert.ok(ratio > 8 && ratio < 12, `mean slices ${short.mean} / ${long.mean} ns`);
    assert.ok(long.count * 5 < short.count, `switches ${short.count} / ${long.count}`);
  });

  it("DOM0_PINCPUDOMAIN on two CPUs: pinned apart each runs > 95%, pinned together ~50% each", () => {
    const run = (cpuA: number, cpuB: number) => {
      const { hv, dom0 } = withDom0({ cpus: 2 });
      const a = spin(hv, "a");
      const b = spin(hv, "b");
      xcDomainPinCpu(dom0, a.id, 0, cpuA);
      xcDomainPinCpu(dom0, b.id, 0, cpuB);
      assert.deepEqual([a.vcpus[0].processor, b.vcpus[0].processor], [cpuA, cpuB]);
      assert.ok(a.vcpus[0].cpuPinned && b.vcpus[0].cpuPinned);
      hv.run(5e8);
      return [a.vcpus[0].cpuTimeNs / 5e8, b.vcpus[0].cpuTimeNs / 5e8];
    };
    for (const f of run(0, 1)) assert.ok(f > 0.95, `pinned apart: ${f}`);
    // Move both away from where they start, and back together onto CPU 0.
    for (const f of run(1, 0)) assert.ok(f > 0.95, `pinned apart, swapped: ${f}`);
    for (const f of run(0, 0)) assert.ok(Math.abs(f - 0.5) < 0.03, `pinned together: ${f}`);
    for (const f of run(1, 1)) assert.ok(Math.abs(f - 0.5) < 0.03, `pinned together on CPU 1: ${f}`);
  });
});

describe("the periodic tick and the time version protocol (guests/conformance/timer_tick.c)", () => {
  for (const abi of ["2005-03", "2005-07"] as AbiName[]) {
    it(`a busy guest takes >= 2 ticks in 30 ms, versions and times move in 10 ms steps (${abi})`, () => {
      const dir = join(buildGuests(), abi === "2005-07" ? "jul" : "");
      const out: Uint8Array[] = [];
      const hv = new Hypervisor({ memoryMiB: 64, onConsole: (_d, b) => void out.push(b.slice()) });
      launchDomain(hv, {
        name: "tick",
        image: readFileSync(join(dir, "conf_timer_tick.elf")),
        memoryMiB: 16,
        abi,
      });
      const result = hv.run(5e9);
      const text = Buffer.concat(out).toString("latin1");
      assert.equal(result.kind, "shutdown", text);
      assert.doesNotMatch(text, /^FAIL/m);
      for (const name of [
        "versions_equal_at_rest",
        "periodic_tick_reaches_busy_guest",
        "versions_advance_together_across_ticks",
        "system_time_and_tsc_timestamp_monotonic",
        "system_time_steps_10ms_at_ticks",
        "tsc_timestamp_consistent_with_system_time",
        "wall_clock_consistent_with_system_time",
      ])
        assert.match(text, new RegExp(`^PASS ${name}$`, "m"));
      assert.match(text, /^DONE passed=\d+ failed=0$/m);
    });
  }

  it("the time update drops code decoded from the shared-info frame, as any write into a code frame", () => {
    // updateDomainTime stores its words straight into the frame (schedule.ts): a guest that
    // maps its shared info and runs code there must not keep running what it decoded before.
    const hv = new Hypervisor({ memoryMiB: 64 });
    const image = readFileSync(join(buildGuests(), "bench_idle.elf"));
    const d = launchDomain(hv, { name: "idle", image, memoryMiB: 16, cmdline: "tick_ms=10" }).domain;
    hv.run(hv.nowNs() + 100e6);
    const frame = d.sharedInfoMfn;
    const si = frame * 4096;
    const before = hv.read32(si + SharedInfo.time_version1);
    hv.cpu.codePage[frame] = 1;
    const writes = hv.cpu.codeWrites;
    updateDomainTime(hv, d.vcpus[0], hv.sched.pcpus[0].lastTickCycles);
    assert.equal(hv.cpu.codePage[frame], 0, "the frame is no longer a code frame");
    assert.equal(hv.cpu.codeWrites, writes + 1, "one write into a code frame");
    assert.equal(hv.read32(si + SharedInfo.time_version1), (before + 1) >>> 0);
    assert.equal(hv.read32(si + SharedInfo.time_version2), (before + 1) >>> 0);
    assert.equal(
      hv.read32(si + SharedInfo.system_time),
      hv.clock.ns(hv.sched.pcpus[0].lastTickCycles) % 2 ** 32,
    );
    // The wall clock in seconds and microseconds below a second, whatever the offset's sign.
    for (const offsetUs of [1_234_567, -98_765_432]) {
      hv.wallClockOffsetUs = offsetUs;
      const tick = hv.sched.pcpus[0].lastTickCycles;
      updateDomainTime(hv, d.vcpus[0], tick);
      const usecs = Math.floor(hv.clock.ns(tick) / 1000) + offsetUs;
      const sec = hv.read32(si + SharedInfo.wc_sec) | 0;
      const usec = hv.read32(si + SharedInfo.wc_usec);
      assert.ok(usec < 1e6, `wc_usec ${usec}`);
      assert.equal((sec - hv.clock.bootEpochSeconds) * 1e6 + usec, usecs);
    }
  });

  it("the time block is written once a tick: a timer's fire and the switch-in of the same tick share it", () => {
    // semantics.md §7.4: update_dom_time writes only when the block lacks the last tick's stamp.
    // An idle domain's timer fires (update, VIRQ) and it is switched in within that tick: one
    // write, versions +1 a tick (before, +2 a tick with the same words).
    const hv = new Hypervisor({ memoryMiB: 64 });
    const image = readFileSync(join(buildGuests(), "bench_idle.elf"));
    const d = launchDomain(hv, { name: "idle", image, memoryMiB: 16, cmdline: "tick_ms=10" }).domain;
    const si = d.sharedInfoMfn * 4096;
    const p = hv.sched.pcpus[0];
    hv.run(hv.nowNs() + 100e6);
    const v1 = hv.read32(si + SharedInfo.time_version1);
    const t1 = p.tick;
    hv.run(hv.nowNs() + 1000e6);
    const v2 = hv.read32(si + SharedInfo.time_version1);
    assert.equal(p.tick - t1, 100, "100 ticks in 1 s");
    assert.equal(v2 - v1, 100, "one write a tick");
    assert.equal(hv.read32(si + SharedInfo.time_version2), v2, "versions equal between updates");
    assert.equal(hv.read32(si + SharedInfo.tsc_timestamp), p.lastTickCycles % 2 ** 32);
    assert.equal(d.timeStamp, p.lastTickCycles);
    // Within a tick: skipped; a host's write (DOM0_SETTIME's) always writes; a new stamp writes.
    refreshDomainTime(hv, d.vcpus[0], p.lastTickCycles);
    assert.equal(hv.read32(si + SharedInfo.time_version1), v2, "same stamp: not written");
    updateDomainTime(hv, d.vcpus[0], p.lastTickCycles);
    assert.equal(hv.read32(si + SharedInfo.time_version1), v2 + 1, "updateDomainTime writes");
    refreshDomainTime(hv, d.vcpus[0], p.lastTickCycles + 1_000_000);
    assert.equal(hv.read32(si + SharedInfo.time_version1), v2 + 2, "a new stamp: written");
    assert.equal(hv.read32(si + SharedInfo.tsc_timestamp), (p.lastTickCycles + 1_000_000) % 2 ** 32);
  });
});
