/**
 * dom0_op in the July-2005 interface (abi.md §2.11, §4.7 JUL flow): a dom0 of either revision
 * builds guests of either revision, and a July caller's op is decoded in its own layouts.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  DOM0_INTERFACE_VERSION,
  Dom0Cmd,
  Dom0CmdJul,
  Dom0GetDomainInfoJul,
  Dom0GetVcpuContextJul,
  Dom0PhysInfoJul,
  VcpuGuestContextJul,
} from "../src/public/dom0_ops.js";
import { EACCES, ENOSYS, ESRCH } from "../src/public/errno.js";
import { bootDom0 } from "../src/tools/dom0.js";
import { launchDomain } from "../src/tools/launch.js";
import { dom0Op, dom0OpJulRaw, xcDomainGetInfo, xcDomainList } from "../src/tools/xc.js";
import type { AbiName } from "../src/xen/abi.js";
import { DomainState } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { buildGuests } from "./support/guests.js";

function machine(dom0Abi: AbiName) {
  const outs = new Map<number, Uint8Array[]>();
  const hv = new Hypervisor({
    memoryMiB: 64,
    onConsole: (d, b) => {
      const list = outs.get(d.id) ?? [];
      list.push(b.slice());
      outs.set(d.id, list);
    },
  });
  const dom0 = bootDom0(hv, undefined, { abi: dom0Abi });
  const text = (id: number): string => Buffer.concat(outs.get(id) ?? []).toString("latin1");
  return { hv, dom0, text };
}

for (const dom0Abi of ["2005-03", "2005-07"] as AbiName[]) {
  describe(`a ${dom0Abi} dom0 builds guests of both revisions`, () => {
    it("a March and a July conformance guest, side by side, both pass", () => {
      const { hv, dom0, text } = machine(dom0Abi);
      assert.equal(dom0.domain.abi.name, dom0Abi);
      const dir = buildGuests();
      const mar = launchDomain(hv, {
        name: "mar",
        image: readFileSync(join(dir, "conf_sched_op.elf")),
        memoryMiB: 16,
      });
      const jul = launchDomain(hv, {
        name: "jul",
        image: readFileSync(join(dir, "jul", "conf_sched_op.elf")),
        memoryMiB: 16,
        abi: "2005-07",
      });
      assert.equal(mar.domain.abi.name, "2005-03");
      assert.equal(jul.domain.abi.name, "2005-07");
      for (const d of [mar.domain, jul.domain]) {
        assert.equal(d.totPages, 4096, `${d.name} got its memory`);
        assert.equal(d.maxPages, 4096);
      }
      const listed = xcDomainList(dom0).map((i) => i.domid);
      assert.deepEqual(listed, [0, mar.domain.id, jul.domain.id]);
      const info = xcDomainGetInfo(dom0, jul.domain.id, { withContext: true });
      assert.equal(info?.context?.cs, 0xe019, "the July guest's flat selector comes back");
      assert.equal(info?.context?.ptBase, jul.image.cr3);
      for (let i = 0; i < 2; i++) hv.run(10e9);
      for (const d of [mar.domain, jul.domain]) {
        assert.match(text(d.id), /DONE passed=\d+ failed=0/, `${d.name}: ${text(d.id)}`);
        assert.equal(d.state, DomainState.Shutdown);
      }
    });
  });
}

describe("dom0_op from a July dom0", () => {
  it("checks the July interface version; the March one is -EACCES", () => {
    const { dom0 } = machine("2005-07");
    assert.equal(dom0OpJulRaw(dom0, Dom0CmdJul.SCHED_ID, () => {}, DOM0_INTERFACE_VERSION).rc, -EACCES);
    assert.equal(dom0OpJulRaw(dom0, Dom0CmdJul.SCHED_ID, () => {}).rc, 0);
  });

  it("commands July dropped (PCIDEV_ACCESS, SETDOMAININITIALMEM, Xen 2.0's 14 and 30) are -ENOSYS", () => {
    const { dom0 } = machine("2005-07");
    for (const cmd of [Dom0Cmd.PCIDEV_ACCESS, Dom0Cmd.SETDOMAININITIALMEM, 14, 30, 99])
      assert.equal(dom0OpJulRaw(dom0, cmd, () => {}).rc, -ENOSYS, `cmd ${cmd}`);
  });

  it("CREATEDOMAIN makes an empty domain; GETDOMAININFO reports vcpus, CPUs and a crash as shutdown(3)", () => {
    const { hv, dom0 } = machine("2005-07");
    const r = dom0Op(dom0, Dom0Cmd.CREATEDOMAIN, () => {});
    assert.equal(r.rc, 0);
    const id = r.u16(16);
    const d = hv.domains.get(id);
    assert.ok(d);
    assert.equal(d.totPages, 0);
    const G = Dom0GetDomainInfoJul;
    const g = dom0OpJulRaw(dom0, Dom0CmdJul.GETDOMAININFO, (u) => u.setUint16(G.domain, id, true));
    assert.equal(g.rc, 0);
    assert.equal(g.dv.getUint16(G.domain, true), id);
    assert.equal(g.dv.getUint32(G.n_vcpu, true), 1);
    assert.equal(g.dv.getInt32(G.vcpu_to_cpu, true), d.vcpus[0].processor);
    assert.equal(g.dv.getInt32(G.vcpu_to_cpu + 4, true), -1);
    assert.ok(g.dv.getUint32(G.flags, true) & 8, "paused");
    hv.crashDomain(d, "test");
    const c = dom0OpJulRaw(dom0, Dom0CmdJul.GETDOMAININFO, (u) => u.setUint16(G.domain, id, true));
    const flags = c.dv.getUint32(G.flags, true);
    assert.equal(flags & 2, 0, "no CRASHED flag at July");
    assert.ok(flags & 4, "SHUTDOWN");
    assert.equal((flags >>> 16) & 255, 3, "reason crash");
    assert.equal(
      dom0OpJulRaw(dom0, Dom0CmdJul.GETDOMAININFO, (u) => u.setUint16(G.domain, id + 1, true)).rc,
      -ESRCH,
    );
  });

  it("GETVCPUCONTEXT gives the vcpu_guest_context_t (ctrlreg[3] = page-table base) and cpu_time", () => {
    const { hv, dom0 } = machine("2005-07");
    const dir = buildGuests();
    const { domain, image } = launchDomain(hv, {
      name: "g",
      image: readFileSync(join(dir, "jul", "conf_sched_op.elf")),
      memoryMiB: 8,
      abi: "2005-07",
      paused: true,
    });
    const V = Dom0GetVcpuContextJul;
    const C = VcpuGuestContextJul;
    let va = 0;
    const r = dom0OpJulRaw(dom0, Dom0CmdJul.GETVCPUCONTEXT, (u, alloc) => {
      va = alloc(C.SIZE);
      u.setUint16(V.domain, domain.id, true);
      u.setUint32(V.ctxt, va, true);
    });
    assert.equal(r.rc, 0);
    const ctx = new DataView(dom0.read(va, C.SIZE).buffer);
    assert.equal(ctx.getUint32(C.ctrlreg + 12, true), image.cr3);
    assert.equal(ctx.getUint32(C.user_regs + 32, true), image.entry, "eip");
    assert.equal(ctx.getUint32(C.kernel_ss, true), 0xe021);
    assert.equal(
      dom0OpJulRaw(dom0, Dom0CmdJul.GETVCPUCONTEXT, (u) => {
        u.setUint16(V.domain, domain.id, true);
        u.setUint16(V.vcpu, 1, true);
      }).rc,
      -ESRCH,
    );
  });

  it("PHYSINFO in July's layout", () => {
    const { hv, dom0 } = machine("2005-07");
    const P = Dom0PhysInfoJul;
    const r = dom0OpJulRaw(dom0, Dom0CmdJul.PHYSINFO, () => {});
    assert.equal(r.rc, 0);
    assert.equal(r.dv.getUint32(P.threads_per_core, true), 1);
    assert.equal(r.dv.getUint32(P.cores_per_socket, true), hv.sched.pcpus.length);
    assert.equal(r.dv.getUint32(P.total_pages, true), hv.frames.nrFrames);
  });
});
