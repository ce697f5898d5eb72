/**
 * bounce()'s handler CS and kernel SS are read through the CPU's TLB where it holds the GDT's
 * page (traps.ts loadBounceSegment, descriptors.ts readWords), as bounceInRun reads them: the
 * event upcall's bounce walked the page tables for its CS every time. The rule that makes it
 * exact is readWords': the GDT lies in Xen's per-domain area, whose mappings only Xen changes,
 * flushing the TLB when it does (hostile-gdtflush attacks set_gdt's flush).
 *
 * The exits guest loops its event send + upcall; then the test calls bounce() itself with the
 * vcpu's event callback: as it is, the handler is entered (CS the walk's descriptor); with the
 * TLB entry of the GDT's page pointed at a zeroed frame (a stale entry, which no Xen path
 * leaves), the read goes through it: the domain crashes ("bad handler code selector"), and with
 * the invariant checks on, the walk's comparison throws first. From ring 3, the kernel stack's
 * SS is read the same way (its own case, the stack switch's crash).
 *
 * Mutations (dist copy), each failing this test: loadBounceSegment reading with tlb = false
 * (the poisoned cases enter the handler); its walkAgrees call removed (no InvariantError).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CS, SS } from "../src/cpu/regs.js";
import { TLB_SUP_READ } from "../src/cpu/tlb_bits.js";
import { launchDomain } from "../src/tools/launch.js";
import { DomainState } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { InvariantError } from "../src/xen/invariants.js";
import { bounce } from "../src/xen/traps.js";
import { guestPath } from "./support/guests.js";

type Poison = "none" | "cs" | "ss";

/** The upcall loop run a while, then one bounce() to the event callback, poisoned or not. */
function bounceAfterLoop(poison: Poison, invariants: boolean, fromRing3 = false) {
  const log: string[] = [];
  const hv = new Hypervisor({ memoryMiB: 64, onConsole: () => {}, onLog: (m) => void log.push(m) });
  const { domain } = launchDomain(hv, {
    name: "x",
    image: readFileSync(guestPath("bench_exits")),
    memoryMiB: 16,
    cmdline: "n=100000000 batch=16 rounds=1 only=event_upcall",
  });
  hv.run(0.02e9);
  const cpu = hv.cpu;
  const v = domain.vcpus[0];
  assert.equal(hv.current, v);
  hv.checkInvariantsAfterHypercall = invariants;
  if (fromRing3) {
    // As if ring 3 was interrupted: the bounce switches to the kernel stack (v.kernelSs).
    cpu.setCpl(3);
  }
  const sel = poison === "ss" ? v.kernelSs : v.eventCs;
  const lin = (cpu.gdtrBase + (sel & 0xfff8)) | 0;
  const e = cpu.tlb[lin >>> 12];
  // The loop's own segment loads left the GDT page's entry in the TLB (else nothing is tested).
  assert.notEqual(e & TLB_SUP_READ, 0, "the GDT page held for a supervisor read");
  if (poison !== "none") {
    // A zeroed frame of host memory the domain does not use: its last 4 KiB.
    const zero = cpu.mem32.length * 4 - 4096;
    assert.ok(cpu.mem32.subarray(zero >>> 2, (zero + 4096) >>> 2).every((w) => w === 0));
    cpu.tlb[lin >>> 12] = zero | (e & 0xfff);
  }
  let threw: unknown = null;
  let ok = false;
  try {
    ok = bounce(hv, v, v.eventCs, v.eventEip, -1, null);
  } catch (err) {
    threw = err;
  }
  return { log, cpu, v, domain, ok, threw };
}

describe("exits: bounce() reads the handler's CS and the kernel's SS through the TLB", () => {
  it("as the TLB holds them: the handler entered, CS and SS the walk's descriptors", () => {
    for (const ring3 of [false, true]) {
      const r = bounceAfterLoop("none", true, ring3);
      assert.equal(r.threw, null);
      assert.equal(r.ok, true);
      assert.equal(r.domain.state, DomainState.Running);
      assert.equal(r.cpu.segSel[CS], r.v.eventCs & 0xffff);
      assert.equal(r.cpu.eip, r.v.eventEip);
      assert.equal(r.cpu.cpl, 1);
      if (ring3) assert.equal(r.cpu.segSel[SS], r.v.kernelSs & 0xffff);
    }
  });

  for (const poison of ["cs", "ss"] as const)
    it(`a TLB entry of the GDT's page not the walk's (${poison}): read through it, the invariant check throws`, () => {
      const off = bounceAfterLoop(poison, false, poison === "ss");
      assert.equal(off.threw, null);
      assert.equal(off.ok, false, "the zeroed descriptor read through the TLB fails the check");
      assert.equal(off.domain.state, DomainState.Crashed);
      assert.match(
        off.log.join("\n"),
        poison === "cs" ? /bad handler code selector/ : /bad kernel stack selector/,
      );
      const on = bounceAfterLoop(poison, true, poison === "ss");
      assert.ok(on.threw instanceof InvariantError, `threw ${String(on.threw)}`);
      assert.match((on.threw as Error).message, /the TLB's read and the walk's differ/);
    });
});
