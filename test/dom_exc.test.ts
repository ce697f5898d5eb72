/**
 * VIRQ_DOM_EXC (semantics.md §5.4): dom0 hears, on its listener for the VIRQ, of every domain
 * that crashes (domain_crash, or SCHEDOP_shutdown with reason crash), and not of a domain it
 * destroys itself.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HypercallMar, SCHEDOP_REASONSHIFT, SchedOpMar, Shutdown, VirqMar } from "../src/public/xen.js";
import { bootDom0, type Dom0 } from "../src/tools/dom0.js";
import { launchDomain } from "../src/tools/launch.js";
import { xcDomainDestroy, xcDomainGetInfo } from "../src/tools/xc.js";
import type { Domain } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { writeElf32 } from "./helpers/elf32_writer.js";

const image = (code: number[]): Uint8Array =>
  writeElf32({
    entry: 0xc0000000,
    segments: [{ vaddr: 0xc0000000, data: Uint8Array.from(code) }],
    xenGuest: "GUEST_OS=test,XEN_VER=3.0,LOADER=generic",
  });

const le32 = (x: number): number[] => [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24];

/** `inc eax; jmp .-1`. */
const spinner = image([0x40, 0xeb, 0xfd]);
/** `xor esp, esp; ud2`: the #UD bounce frame cannot be written, so Xen crashes the domain. */
const faulter = image([0x31, 0xe4, 0x0f, 0x0b]);
/** sched_op(SCHEDOP_shutdown | crash << 8), then `jmp .`. */
const reportsCrash = image([
  0xb8,
  ...le32(HypercallMar.sched_op),
  0xbb,
  ...le32(SchedOpMar.shutdown | (Shutdown.crash << SCHEDOP_REASONSHIFT)),
  0xcd,
  0x82,
  0xeb,
  0xfe,
]);

function setup(): { hv: Hypervisor; dom0: Dom0; seen: number[] } {
  const hv = new Hypervisor({ memoryMiB: 32, tscHz: 10_000_000, onLog: () => {} });
  const dom0 = bootDom0(hv);
  const seen: number[] = [];
  dom0.onVirq(VirqMar.DOM_EXC, (p) => seen.push(p));
  return { hv, dom0, seen };
}

function launch(hv: Hypervisor, img: Uint8Array, name = "guest"): Domain {
  return launchDomain(hv, { name, image: img, memoryMiB: 4 }).domain;
}

describe("VIRQ_DOM_EXC reaches dom0", () => {
  it("when a guest's fault makes Xen crash it (domain_crash)", () => {
    const { hv, dom0, seen } = setup();
    const d = launch(hv, faulter);
    const r = hv.run(1e8);
    assert.equal(r.kind, "crashed");
    assert.equal(seen.length, 1, "one VIRQ_DOM_EXC");
    const info = xcDomainGetInfo(dom0, d.id);
    assert.equal(info?.domid, d.id);
    assert.ok(info?.crashed, "GETDOMAININFO reports it crashed");
    // Destroying the crashed domain sends nothing more.
    xcDomainDestroy(dom0, d.id);
    hv.run(1e7);
    assert.equal(seen.length, 1);
    assert.deepEqual(checkInvariants(hv), []);
  });

  it("when a guest reports a crash (SCHEDOP_shutdown, reason crash)", () => {
    const { hv, dom0, seen } = setup();
    const d = launch(hv, reportsCrash);
    assert.equal(hv.run(1e8).kind, "crashed");
    assert.equal(seen.length, 1, "one VIRQ_DOM_EXC");
    assert.ok(xcDomainGetInfo(dom0, d.id)?.crashed);
  });

  it("once per crashed domain, while others keep running", () => {
    const { hv, seen } = setup();
    const a = launch(hv, spinner, "spin");
    launch(hv, faulter, "f1");
    launch(hv, reportsCrash, "f2");
    // run() returns at each crash; go on until the time limit.
    const kinds: string[] = [];
    for (let k = hv.run(1e8).kind; kinds.push(k) < 5 && k === "crashed"; k = hv.run(1e8).kind);
    assert.deepEqual(kinds, ["crashed", "crashed", "time-limit"]);
    assert.equal(seen.length, 2, "two crashes, two events");
    assert.ok(a.vcpus[0].cpuTimeNs > 0);
  });
});

describe("VIRQ_DOM_EXC does not reach dom0", () => {
  it("when dom0 destroys a running domain (DOM0_DESTROYDOMAIN)", () => {
    const { hv, dom0, seen } = setup();
    const d = launch(hv, spinner);
    hv.run(3e7);
    assert.ok(d.vcpus[0].cpuTimeNs > 0, "it ran");
    xcDomainDestroy(dom0, d.id);
    hv.runDeferred();
    hv.run(3e7);
    assert.equal(seen.length, 0, "no VIRQ_DOM_EXC on destroy");
    assert.notEqual(xcDomainGetInfo(dom0, d.id)?.domid, d.id, "the domain is gone");
    assert.deepEqual(checkInvariants(hv), []);
  });

  it("when dom0 destroys a paused, never-run domain", () => {
    const { hv, dom0, seen } = setup();
    const d = launchDomain(hv, { name: "paused", image: spinner, memoryMiB: 4, paused: true }).domain;
    xcDomainDestroy(dom0, d.id);
    hv.runDeferred();
    hv.run(1e7);
    assert.equal(seen.length, 0);
  });
});
