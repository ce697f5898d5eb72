/**
 * SCHEDOP_shutdown reasons (semantics.md §7.3): reboot (1), suspend (2) and a reason outside
 * Xen's list are recorded as the domain's shutdown code, visible to the hypervisor's run
 * result and to dom0 through GETDOMAININFO's flags (SHUTDOWN, reason in bits 16..23).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HypercallMar, SCHEDOP_REASONSHIFT, SchedOpMar, Shutdown } from "../src/public/xen.js";
import { bootDom0 } from "../src/tools/dom0.js";
import { launchDomain } from "../src/tools/launch.js";
import { xcDomainGetInfo } from "../src/tools/xc.js";
import { DomainState } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { writeElf32 } from "./helpers/elf32_writer.js";

const le32 = (x: number): number[] => [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24];

/** sched_op(SCHEDOP_shutdown | reason << 8), then `jmp .`. */
const shutsDown = (reason: number): Uint8Array =>
  writeElf32({
    entry: 0xc0000000,
    segments: [
      {
        vaddr: 0xc0000000,
        data: Uint8Array.from([
          0xb8,
          ...le32(HypercallMar.sched_op),
          0xbb,
          ...le32(SchedOpMar.shutdown | (reason << SCHEDOP_REASONSHIFT)),
          0xcd,
          0x82,
          0xeb,
          0xfe,
        ]),
      },
    ],
    xenGuest: "GUEST_OS=test,XEN_VER=3.0,LOADER=generic",
  });

describe("SCHEDOP_shutdown reasons", () => {
  for (const [name, reason] of [
    ["reboot", Shutdown.reboot],
    ["suspend", Shutdown.suspend],
    ["out of range (200)", 200],
  ] as const) {
    it(`${name} is recorded and reported by GETDOMAININFO`, () => {
      const hv = new Hypervisor({ memoryMiB: 32, tscHz: 10_000_000, onLog: () => {} });
      const dom0 = bootDom0(hv);
      const { domain } = launchDomain(hv, { name: "g", image: shutsDown(reason), memoryMiB: 4 });
      const r = hv.run(1e8);
      assert.equal(r.kind, "shutdown");
      assert.equal(r.kind === "shutdown" ? r.reason : -1, reason);
      assert.equal(domain.state, DomainState.Shutdown);
      assert.equal(domain.shutdownCode, reason);
      const info = xcDomainGetInfo(dom0, domain.id);
      assert.equal(info?.domid, domain.id);
      assert.equal(info?.shutdown, true);
      assert.equal(info?.crashed, false);
      assert.equal(info?.shutdownReason, reason);
    });
  }
});
