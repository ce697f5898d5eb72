/**
 * dom0 and dom0_op (semantics.md §8, §9.2, §11, §7.2): dom0 is a real privileged domain whose
 * toolstack issues every command through the ordinary hypercall dispatch; each command and its
 * error paths; a domain's whole life through dom0_op alone, leaving no frame or reference.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import {
  CONSOLE_RING_SIZE,
  Dom0Cmd,
  Dom0CmdXen20,
  Dom0GetDomainInfo,
  Dom0GetMemList,
  Dom0SetDomainInfo,
  DomFlags,
  FullExecutionContext,
  PageFrameType,
  ShadowOp,
} from "../src/public/dom0_ops.js";
import {
  E2BIG,
  EACCES,
  EFAULT,
  EINVAL,
  ENODEV,
  ENOMEM,
  ENOSYS,
  ENXIO,
  EPERM,
  ESRCH,
} from "../src/public/errno.js";
import { SchedAdjdomCmd, SchedCtlCmd } from "../src/public/sched_ctl.js";
import { TraceBuf, TraceRec, Trc } from "../src/public/trace.js";
import {
  DomId,
  HypercallMar,
  MMUEXT_DOMID_SHIFT,
  MmuExtMar,
  MmuMar,
  SharedInfo,
  VirqMar,
} from "../src/public/xen.js";
import { bootDom0, DOM0_BUFFER_VA, type Dom0 } from "../src/tools/dom0.js";
import { launchDomain } from "../src/tools/launch.js";
import {
  dom0Op,
  encodeContext,
  initialContext,
  XcError,
  xcBvtCtxAllow,
  xcBvtDomainGet,
  xcBvtDomainSet,
  xcDomainCreate,
  xcDomainDestroy,
  xcDomainGetInfo,
  xcDomainList,
  xcDomainPause,
  xcDomainPinCpu,
  xcDomainSetContext,
  xcDomainUnpause,
  xcGetMemList,
  xcGetPageFrameInfo,
  xcGetPageFrameInfo2,
  xcGetTbufs,
  xcIopl,
  xcIoportPermission,
  xcMmuUpdate,
  xcMsr,
  xcPcidevAccess,
  xcPhysInfo,
  xcReadConsole,
  xcSchedId,
  xcSetDomainVmAssist,
  xcSetInitialMem,
  xcSetMaxMem,
  xcSetTime,
  xcShadowControl,
} from "../src/tools/xc.js";
import type { Domain } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { checkInvariants } from "../src/xen/invariants.js";
import { writeElf32 } from "./helpers/elf32_writer.js";
import { guestPath } from "./support/guests.js";

const GUEST = "GUEST_OS=test,XEN_VER=3.0,LOADER=generic";
/** `inc eax; jmp .-1`: never stops, never writes memory. */
const spinner = writeElf32({
  entry: 0xc0000000,
  segments: [{ vaddr: 0xc0000000, data: Uint8Array.from([0x40, 0xeb, 0xfd]) }],
  xenGuest: GUEST,
});
/** `incl 0xc0010000; jmp .-6`: writes one page (pfn 16) forever. */
const writer = writeElf32({
  entry: 0xc0000000,
  segments: [{ vaddr: 0xc0000000, data: Uint8Array.from([0xff, 0x05, 0x00, 0x00, 0x01, 0xc0, 0xeb, 0xf8]) }],
  xenGuest: GUEST,
});

function machine(opts: { cpus?: number; scheduler?: string; onLog?: (m: string) => void } = {}): {
  hv: Hypervisor;
  dom0: Dom0;
} {
  const hv = new Hypervisor({ memoryMiB: 32, tscHz: 10_000_000, ...opts });
  return { hv, dom0: bootDom0(hv) };
}

function xcErrno(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof XcError) return e.errno;
    throw e;
  }
  assert.fail("expected the call to fail");
}

/** Asserts that fn fails with XcError(errno). */
function assertXcErrno(fn: () => unknown, errno: number, message?: string): void {
  assert.equal(xcErrno(fn), errno, message);
}

function clean(hv: Hypervisor): void {
  assert.deepEqual(checkInvariants(hv), []);
}

/** A built, runnable (paused) domain: what launchDomain does, left paused. */
function built(hv: Hypervisor, image = spinner, memoryMiB = 4): Domain {
  return launchDomain(hv, { name: "guest", image, memoryMiB, paused: true }).domain;
}

describe("dom0 is a real domain", () => {
  it("is domain 0, privileged, owning its page tables and buffers, and never scheduled", () => {
    const { hv, dom0 } = machine();
    assert.equal(dom0.domain.id, 0);
    assert.ok(dom0.domain.privileged);
    assert.ok(dom0.vcpu.baseMfn !== 0);
    assert.equal(hv.frames.owner[dom0.vcpu.baseMfn], 0);
    clean(hv);
    assert.equal(hv.run(1e8).kind, "idle");
  });

  it("a request walks dom0's own page tables: a pointer outside its buffers is -EFAULT", () => {
    const { dom0 } = machine();
    assert.equal(dom0.hypercall(HypercallMar.dom0_op, 0x20000000), -EFAULT);
    assert.equal(dom0.hypercall(HypercallMar.dom0_op, 0xfc000000), -EFAULT);
  });

  it("an unprivileged domain gets -EPERM, before the pointer or the version are looked at", () => {
    const { hv } = machine();
    const d = built(hv);
    assert.equal(hv.hypercallAs(d.vcpus[0], HypercallMar.dom0_op, [0]), -EPERM);
    assert.equal(hv.hypercallAs(d.vcpus[0], HypercallMar.dom0_op, [0xfc000000]), -EPERM);
  });

  it("checks the interface version on every request (-EACCES), unknown commands are -ENOSYS", () => {
    const { dom0 } = machine();
    assert.equal(dom0Op(dom0, Dom0Cmd.SCHED_ID, undefined, 0xaaaa1001).rc, -EACCES);
    assert.equal(dom0Op(dom0, Dom0Cmd.GETDOMAININFO, undefined, 0).rc, -EACCES);
    for (const cmd of [0, 1, 3, 26, 30 + 100, Dom0Cmd.DEBUG, Dom0Cmd.PERFCCONTROL, 99]) {
      assert.equal(dom0Op(dom0, cmd).rc, -ENOSYS, `cmd ${cmd}`);
    }
  });

  it("hears VIRQ_DOM_EXC as a callback when a domain shuts down or crashes", () => {
    const { hv, dom0 } = machine();
    const seen: number[] = [];
    dom0.onVirq(VirqMar.DOM_EXC, (p) => seen.push(p));
    const d = built(hv);
    xcDomainUnpause(dom0, d.id);
    hv.run(1e7);
    hv.shutdownDomain(d, 2, false);
    hv.runDeferred();
    assert.equal(seen.length, 1);
    const info = xcDomainGetInfo(dom0, d.id);
    assert.ok(info?.shutdown);
    assert.equal(info?.shutdownReason, 2);
  });

  it("the callback runs by the end of run() when a guest powers itself off", () => {
    const { hv, dom0 } = machine();
    const seen: number[] = [];
    dom0.onVirq(VirqMar.DOM_EXC, (p) => seen.push(p));
    const { domain } = launchDomain(hv, {
      name: "hello",
      image: readFileSync(guestPath("hello")),
      memoryMiB: 4,
    });
    assert.equal(hv.run(5e9).kind, "shutdown");
    assert.equal(seen.length, 1);
    assert.equal(xcDomainGetInfo(dom0, domain.id)?.shutdown, true);
    xcDomainDestroy(dom0, domain.id);
    clean(hv);
  });
});

describe("a domain's whole life through dom0_op alone", () => {
  it("create, build, unpause, run, pause, inspect, destroy: every frame and reference comes back", () => {
    const { hv, dom0 } = machine();
    const freeBefore = hv.mem.freeFrames;
    const image = readFileSync(guestPath("hello"));
    const { domain } = launchDomain(hv, { name: "hello", image, memoryMiB: 4, paused: true });
    const id = domain.id;
    let info = xcDomainGetInfo(dom0, id);
    assert.ok(info?.paused);
    assert.equal(info?.totPages, 1024);
    // The toolstack's build pinned the L2 and took it as base pointer.
    const ctx = xcDomainGetInfo(dom0, id, { withContext: true })?.context;
    assert.ok(ctx !== undefined);
    assert.equal(xcGetPageFrameInfo(dom0, id, ctx.ptBase >>> 12), PageFrameType.L2TAB);
    xcDomainUnpause(dom0, id);
    hv.run(2e6);
    xcDomainPause(dom0, id);
    info = xcDomainGetInfo(dom0, id);
    assert.ok(info?.paused);
    assert.ok((info?.cpuTimeNs ?? 0) > 0);
    clean(hv);
    xcDomainDestroy(dom0, id);
    assert.equal(hv.domains.has(id), false);
    assert.equal(xcDomainGetInfo(dom0, id), null);
    assert.equal(hv.mem.freeFrames, freeBefore);
    clean(hv);
  });

  it("a running guest (the hello demo) destroyed mid-run leaves nothing behind", () => {
    const { hv, dom0 } = machine();
    const freeBefore = hv.mem.freeFrames;
    for (let i = 0; i < 3; i++) {
      const { domain } = launchDomain(hv, { name: `w${i}`, image: writer, memoryMiB: 4 });
      hv.run(hv.nowNs() + 5e6);
      xcDomainDestroy(dom0, domain.id);
      clean(hv);
    }
    assert.equal(hv.mem.freeFrames, freeBefore);
  });

  it("a page dom0 still maps keeps the destroyed domain as a DYING zombie until it is unmapped", () => {
    const { hv, dom0 } = machine();
    const free = hv.mem.freeFrames;
    const d = built(hv);
    const page = [...d.pages][40];
    // dom0 maps one of the domain's pages read-only into a free slot of its L1 (a foreign map).
    const l1 = hv.read32(dom0.vcpu.baseMfn * 4096 + (DOM0_BUFFER_VA >>> 22) * 4) >>> 12;
    const pteMa = l1 * 4096 + 900 * 4;
    xcMmuUpdate(dom0, [
      [MmuMar.EXTENDED_COMMAND, MmuExtMar.SET_FOREIGNDOM | (d.id << MMUEXT_DOMID_SHIFT)],
      [pteMa, page * 4096 + 1],
    ]);
    xcDomainDestroy(dom0, d.id);
    const info = xcDomainGetInfo(dom0, d.id);
    assert.ok(info?.dying);
    assert.equal(info?.totPages, 1);
    clean(hv);
    xcMmuUpdate(dom0, [[pteMa, 0]]);
    assert.equal(hv.domains.has(d.id), false);
    assert.equal(hv.mem.freeFrames, free);
    clean(hv);
  });

  it("destroy: -ESRCH for no domain, -EINVAL for oneself; no state requirement", () => {
    const { hv, dom0 } = machine();
    assertXcErrno(() => xcDomainDestroy(dom0, 77), ESRCH);
    assertXcErrno(() => xcDomainDestroy(dom0, 0), EINVAL);
    const d = built(hv);
    xcDomainUnpause(dom0, d.id);
    xcDomainDestroy(dom0, d.id);
    clean(hv);
  });
});

describe("DOM0_CREATEDOMAIN / PAUSEDOMAIN / UNPAUSEDOMAIN / SETDOMAININITIALMEM / SETDOMAINMAXMEM", () => {
  it("allocates the memory at once (M2P = 0, 1, 2…), paused and unconstructed", () => {
    const { hv, dom0 } = machine();
    const id = xcDomainCreate(dom0, { memoryKb: 4096 + 1 });
    const d = hv.domains.get(id);
    assert.ok(d);
    assert.equal(d.totPages, 1025);
    assert.equal(d.maxPages, 1025);
    for (const [pfn, mfn] of xcGetMemList(dom0, id, 1025).entries()) assert.equal(hv.getM2p(mfn), pfn);
    assert.ok(xcDomainGetInfo(dom0, id)?.paused);
    assertXcErrno(() => xcDomainUnpause(dom0, id), EINVAL, "not constructed");
    clean(hv);
  });

  it("ids: an explicit free id is used, a taken one is -EINVAL, else the next free from 1", () => {
    const { dom0 } = machine();
    assert.equal(xcDomainCreate(dom0, { memoryKb: 64 }), 1);
    assert.equal(xcDomainCreate(dom0, { memoryKb: 64, domid: 40 }), 40);
    assertXcErrno(() => xcDomainCreate(dom0, { memoryKb: 64, domid: 40 }), EINVAL);
    assert.equal(xcDomainCreate(dom0, { memoryKb: 64 }), 2);
  });

  it("too much memory is -ENOMEM and leaves nothing", () => {
    const { hv, dom0 } = machine();
    const free = hv.mem.freeFrames;
    assertXcErrno(() => xcDomainCreate(dom0, { memoryKb: 64 * 1024 }), ENOMEM);
    assert.equal(hv.mem.freeFrames, free);
  });

  it("cpu -1 places the vcpu on the least-loaded physical CPU, else cpu mod ncpus", () => {
    const { hv, dom0 } = machine({ cpus: 2 });
    const a = xcDomainCreate(dom0, { memoryKb: 64, cpu: -1 });
    assert.equal(hv.domains.get(a)?.vcpus[0].processor, 1, "dom0 is on CPU 0");
    const b = xcDomainCreate(dom0, { memoryKb: 64, cpu: 5 });
    assert.equal(xcDomainGetInfo(dom0, b)?.cpu, 1);
  });

  it("pause and unpause: -ESRCH, -EINVAL on oneself", () => {
    const { hv, dom0 } = machine();
    assertXcErrno(() => xcDomainPause(dom0, 9), ESRCH);
    assertXcErrno(() => xcDomainUnpause(dom0, 9), ESRCH);
    assertXcErrno(() => xcDomainPause(dom0, 0), EINVAL);
    assertXcErrno(() => xcDomainUnpause(dom0, 0), EINVAL);
    const d = built(hv);
    xcDomainUnpause(dom0, d.id);
    assert.equal(xcDomainGetInfo(dom0, d.id)?.paused, false);
    hv.run(1e7);
    xcDomainPause(dom0, d.id);
    const t = d.vcpus[0].cpuTimeNs;
    hv.run(hv.nowNs() + 1e7);
    assert.equal(d.vcpus[0].cpuTimeNs, t, "a paused domain does not run");
  });

  it("SETDOMAININITIALMEM grows an unconstructed domain only; max_pages follows", () => {
    const { hv, dom0 } = machine();
    const id = xcDomainCreate(dom0, { memoryKb: 64 });
    xcSetInitialMem(dom0, id, 128);
    assert.equal(hv.domains.get(id)?.totPages, 32);
    xcSetInitialMem(dom0, id, 32);
    assert.equal(hv.domains.get(id)?.totPages, 32, "memory never shrinks");
    assert.equal(hv.domains.get(id)?.maxPages, 8, "max_pages set even when lower");
    assertXcErrno(() => xcSetInitialMem(dom0, 99, 64), ESRCH);
    const d = built(hv);
    assertXcErrno(() => xcSetInitialMem(dom0, d.id, 8192), EINVAL);
  });

  it("SETDOMAINMAXMEM takes KiB (the April 2005 fix of the MAR bytes-for-KiB bug)", () => {
    const { hv, dom0 } = machine();
    const id = xcDomainCreate(dom0, { memoryKb: 64 });
    xcSetMaxMem(dom0, id, 8192);
    assert.equal(hv.domains.get(id)?.maxPages, 2048);
    assert.equal(xcDomainGetInfo(dom0, id)?.maxPages, 2048);
    assertXcErrno(() => xcSetMaxMem(dom0, 99, 64), ESRCH);
  });
});

describe("DOM0_GETMEMLIST", () => {
  it("writes up to max_pfns MFNs in page-list order; missing domain -EINVAL; a fault -EFAULT", () => {
    const { hv, dom0 } = machine();
    const id = xcDomainCreate(dom0, { memoryKb: 64 });
    assert.deepEqual(xcGetMemList(dom0, id, 100), [...(hv.domains.get(id)?.pages ?? [])]);
    assert.equal(xcGetMemList(dom0, id, 5).length, 5);
    assertXcErrno(() => xcGetMemList(dom0, 55, 5), EINVAL);
    const r = dom0Op(dom0, Dom0Cmd.GETMEMLIST, (u) => {
      u.u16(Dom0GetMemList.domain, id);
      u.u32(Dom0GetMemList.max_pfns, 16);
      u.u32(Dom0GetMemList.buffer, DOM0_BUFFER_VA + dom0.bufferBytes - 8);
    });
    assert.equal(r.rc, -EFAULT);
    assert.equal(r.u32(Dom0GetMemList.num_pfns), 2, "the count written before the fault");
  });
});

describe("DOM0_GETDOMAININFO", () => {
  it("iterates: the first domain with id >= the one asked, -ESRCH past the last", () => {
    const { dom0 } = machine();
    const a = xcDomainCreate(dom0, { memoryKb: 64, domid: 3 });
    const b = xcDomainCreate(dom0, { memoryKb: 64, domid: 7 });
    assert.equal(xcDomainGetInfo(dom0, 4)?.domid, b);
    assert.deepEqual(
      xcDomainList(dom0).map((i) => i.domid),
      [0, a, b],
    );
    assert.equal(xcDomainGetInfo(dom0, 8), null);
    const r = dom0Op(dom0, Dom0Cmd.GETDOMAININFO, (u) => {
      u.u16(Dom0GetDomainInfo.domain, a);
      u.u16(Dom0GetDomainInfo.exec_domain, 32);
    });
    assert.equal(r.rc, -EINVAL);
    const missingVcpu = dom0Op(dom0, Dom0Cmd.GETDOMAININFO, (u) => {
      u.u16(Dom0GetDomainInfo.domain, a);
      u.u16(Dom0GetDomainInfo.exec_domain, 1);
    });
    assert.equal(missingVcpu.rc, -EINVAL);
  });

  it("flags: crashed, shutdown with its code, paused, cpu; dom0 runs while it asks", () => {
    const { hv, dom0 } = machine();
    const self = xcDomainGetInfo(dom0, 0);
    assert.ok(self?.running);
    assert.equal(self?.paused, false);
    const d = built(hv);
    xcDomainUnpause(dom0, d.id);
    hv.run(1e6);
    hv.crashDomain(d, "test");
    const info = xcDomainGetInfo(dom0, d.id);
    assert.ok(info?.crashed);
    const e = built(hv);
    hv.shutdownDomain(e, 1, false);
    const ei = xcDomainGetInfo(dom0, e.id);
    assert.equal(ei?.flags, DomFlags.SHUTDOWN | DomFlags.PAUSED | (1 << DomFlags.SHUTDOWNSHIFT));
    assert.equal(ei?.sharedInfoFrame, e.sharedInfoMfn);
  });

  it("a copy-out fault of the context is -EINVAL", () => {
    const { hv, dom0 } = machine();
    const d = built(hv);
    const r = dom0Op(dom0, Dom0Cmd.GETDOMAININFO, (u) => {
      u.u16(Dom0GetDomainInfo.domain, d.id);
      u.u32(Dom0GetDomainInfo.ctxt, 0x20000000);
    });
    assert.equal(r.rc, -EINVAL);
  });
});

describe("DOM0_SETDOMAININFO (full execution context) and Xen 2.0's BUILDDOMAIN (13)", () => {
  function fresh(hv: Hypervisor, dom0: Dom0) {
    const id = xcDomainCreate(dom0, { memoryKb: 4096 });
    const d = hv.domains.get(id);
    assert.ok(d);
    return { id, d };
  }

  it("refuses CS or SS with RPL 0 and a pt_base that is not an L2 of the domain", () => {
    const { hv, dom0 } = machine();
    const { id, d } = fresh(hv, dom0);
    const mfn = [...d.pages][0];
    const base = {
      eip: 0,
      esp: 0,
      esi: 0,
      eflags: 0x204,
      cs: 0x819,
      ds: 0x821,
      ss: 0x821,
      kernelSs: 0x821,
      kernelEsp: 0,
    };
    assertXcErrno(
      () => xcDomainSetContext(dom0, id, 0, initialContext({ ...base, cs: 0x818, ptBase: mfn * 4096 })),
      EINVAL,
    );
    assertXcErrno(
      () => xcDomainSetContext(dom0, id, 0, initialContext({ ...base, ss: 0x820, ptBase: mfn * 4096 })),
      EINVAL,
    );
    // A page of dom0, and a frame beyond memory.
    assertXcErrno(
      () => xcDomainSetContext(dom0, id, 0, initialContext({ ...base, ptBase: dom0.vcpu.baseMfn * 4096 })),
      EINVAL,
    );
    assertXcErrno(
      () => xcDomainSetContext(dom0, id, 0, initialContext({ ...base, ptBase: 0xfff00000 })),
      EINVAL,
    );
    assertXcErrno(() => xcDomainSetContext(dom0, 99, 0, initialContext({ ...base, ptBase: 0 })), ESRCH);
    assertXcErrno(() => xcDomainSetContext(dom0, id, 1, initialContext({ ...base, ptBase: 0 })), EINVAL);
    assert.equal(d.constructed, false);
    clean(hv);
  });

  it("a bad GDT drops the base-pointer reference again", () => {
    const { hv, dom0 } = machine();
    const { id, d } = fresh(hv, dom0);
    const l2 = [...d.pages][0];
    hv.mem.zeroFrame(l2);
    const ctx = initialContext({
      eip: 0,
      esp: 0,
      esi: 0,
      eflags: 0x204,
      cs: 0x819,
      ds: 0x821,
      ss: 0x821,
      kernelSs: 0x821,
      kernelEsp: 0,
      ptBase: l2 * 4096,
    });
    ctx.gdtEnts = 10; // fewer than the reserved entries
    assertXcErrno(() => xcDomainSetContext(dom0, id, 0, ctx), EINVAL);
    assert.equal(d.vcpus[0].baseMfn, 0);
    clean(hv);
  });

  it("round-trips through GETDOMAININFO: IOPL becomes the virtual IOPL, later calls change registers only", () => {
    const { hv, dom0 } = machine();
    const d = built(hv);
    const before = xcDomainGetInfo(dom0, d.id, { withContext: true })?.context;
    assert.ok(before);
    assert.equal(before.cs, 0x819);
    assert.equal(before.traps[14].cs, 0x819);
    const again = {
      ...before,
      eip: 0xc0000001,
      eflags: 0x3206,
      kernelEsp: 0x1234,
      traps: before.traps.map((t) => ({ ...t, address: 0xdead })),
    };
    xcDomainSetContext(dom0, d.id, 0, again);
    assert.equal(d.vcpus[0].iopl, 3);
    const after = xcDomainGetInfo(dom0, d.id, { withContext: true })?.context;
    assert.equal(after?.eip, 0xc0000001);
    assert.equal((after?.eflags ?? 0) & 0x3000, 0x3000, "IOPL merged back in");
    assert.equal(after?.kernelEsp, before.kernelEsp, "DONEINIT: not changed");
    assert.equal(after?.traps[14].address, 0, "DONEINIT: not changed");
  });

  it("a constructed domain must be paused; an unconstructed one may not be unpaused", () => {
    const { hv, dom0 } = machine();
    const d = built(hv);
    const ctx = xcDomainGetInfo(dom0, d.id, { withContext: true })?.context;
    assert.ok(ctx);
    xcDomainUnpause(dom0, d.id);
    assertXcErrno(() => xcDomainSetContext(dom0, d.id, 0, ctx), EINVAL);
    xcDomainPause(dom0, d.id);
    xcDomainSetContext(dom0, d.id, 0, ctx);
  });

  it("BUILDDOMAIN is command 13 with its pad where exec_domain is (vcpu 0)", () => {
    const { hv, dom0 } = machine();
    assert.equal(Dom0CmdXen20.BUILDDOMAIN, Dom0Cmd.SETDOMAININFO);
    const d = built(hv);
    const bytes = encodeContext(xcDomainGetInfo(dom0, d.id, { withContext: true })?.context ?? assert.fail());
    const r = dom0Op(dom0, Dom0CmdXen20.BUILDDOMAIN, (u, alloc) => {
      u.u16(Dom0SetDomainInfo.domain, d.id);
      u.u32(Dom0SetDomainInfo.ctxt, alloc(FullExecutionContext.SIZE, bytes));
    });
    assert.equal(r.rc, 0);
  });
});

describe("DOM0_GETPAGEFRAMEINFO / GETPAGEFRAMEINFO2", () => {
  it("reports L1/L2 types (n << 28) of the domain's frames; other owners and bad frames -EINVAL", () => {
    const { hv, dom0 } = machine();
    const d = built(hv);
    const base = d.vcpus[0].baseMfn;
    const l1 = hv.read32(base * 4096 + (0xc0000000 >>> 22) * 4) >>> 12;
    assert.equal(xcGetPageFrameInfo(dom0, d.id, base), PageFrameType.L2TAB);
    assert.equal(xcGetPageFrameInfo(dom0, d.id, l1), PageFrameType.L1TAB);
    const data = [...d.pages].at(-1) ?? 0;
    assert.equal(xcGetPageFrameInfo(dom0, d.id, data), PageFrameType.NOTAB);
    assertXcErrno(() => xcGetPageFrameInfo(dom0, d.id, dom0.vcpu.baseMfn), EINVAL);
    assertXcErrno(() => xcGetPageFrameInfo(dom0, d.id, hv.frames.nrFrames), EINVAL);
    assertXcErrno(() => xcGetPageFrameInfo(dom0, 88, base), EINVAL);
  });

  it("GETPAGEFRAMEINFO2 ORs type, LPINTAB when pinned, XTAB when not the domain's; >1024 is -E2BIG", () => {
    const { hv, dom0 } = machine();
    const d = built(hv);
    const base = d.vcpus[0].baseMfn;
    const data = [...d.pages].at(-1) ?? 0;
    const out = xcGetPageFrameInfo2(dom0, d.id, [base, data, dom0.vcpu.baseMfn]);
    assert.deepEqual(out, [
      (base | PageFrameType.L2TAB | PageFrameType.LPINTAB) >>> 0,
      data,
      (dom0.vcpu.baseMfn | PageFrameType.XTAB) >>> 0,
    ]);
    assertXcErrno(() => xcGetPageFrameInfo2(dom0, d.id, new Array(1025).fill(base)), E2BIG);
    assertXcErrno(() => xcGetPageFrameInfo2(dom0, 66, [base]), ESRCH);
  });
});

describe("DOM0_SCHEDCTL / ADJUSTDOM / SCHED_ID / PINCPUDOMAIN", () => {
  it("SCHED_ID is BVT (0), or round-robin's 3 when chosen at boot", () => {
    assert.equal(xcSchedId(machine().dom0), 0);
    assert.equal(xcSchedId(machine({ scheduler: "rrobin" }).dom0), 3);
  });

  it("SCHEDCTL: PUT sets ctx_allow (ns), anything else reads; a wrong scheduler is -EINVAL", () => {
    const { hv, dom0 } = machine();
    assert.equal(xcBvtCtxAllow(dom0), 5_000_000);
    xcBvtCtxAllow(dom0, 7_000_000);
    assert.equal(hv.sched.policy.ctxAllowNs, 7_000_000);
    const r = dom0Op(dom0, Dom0Cmd.SCHEDCTL, (u) => {
      u.u32(SchedCtlCmd.sched_id, 3);
    });
    assert.equal(r.rc, -EINVAL);
  });

  it("ADJUSTDOM: PUT takes warpl/warpu in ms, GET gives ns (quirk kept); rejected PUT still returns 0", () => {
    const { dom0 } = machine();
    const id = xcDomainCreate(dom0, { memoryKb: 64 });
    assert.deepEqual(xcBvtDomainGet(dom0, id), {
      mcuAdvance: 10,
      warpback: false,
      warpValue: 0,
      warplNs: 2e9,
      warpuNs: 1e9,
    });
    xcBvtDomainSet(dom0, id, { mcuAdvance: 20, warpback: true, warpValue: 5, warplMs: 30, warpuMs: 40 });
    assert.deepEqual(xcBvtDomainGet(dom0, id), {
      mcuAdvance: 20,
      warpback: true,
      warpValue: 5,
      warplNs: 30e6,
      warpuNs: 40e6,
    });
    xcBvtDomainSet(dom0, id, { mcuAdvance: 0 });
    assert.equal(xcBvtDomainGet(dom0, id).mcuAdvance, 20, "rejected, yet rc 0");
    assertXcErrno(() => xcBvtDomainGet(dom0, 77), ESRCH);
    const bad = dom0Op(dom0, Dom0Cmd.ADJUSTDOM, (u) => {
      u.u32(SchedAdjdomCmd.direction, 2);
      u.u16(SchedAdjdomCmd.domain, id);
    });
    assert.equal(bad.rc, -EINVAL);
    const wrongSched = dom0Op(dom0, Dom0Cmd.ADJUSTDOM, (u) => {
      u.u32(SchedAdjdomCmd.sched_id, 3);
      u.u16(SchedAdjdomCmd.domain, id);
    });
    assert.equal(wrongSched.rc, -EINVAL);
  });

  it("PINCPUDOMAIN moves a vcpu (cpu mod ncpus), -1 only unpins; -ESRCH, -EINVAL for oneself", () => {
    const { hv, dom0 } = machine({ cpus: 2 });
    const d = built(hv);
    xcDomainUnpause(dom0, d.id);
    hv.run(1e7);
    xcDomainPinCpu(dom0, d.id, 0, 3);
    assert.equal(d.vcpus[0].processor, 1);
    assert.ok(d.vcpus[0].cpuPinned);
    const t = hv.sched.pcpus[1].idleCycles;
    hv.run(hv.nowNs() + 5e7);
    assert.ok(d.vcpus[0].cpuTimeNs > 0);
    assert.ok(hv.sched.pcpus[1].idleCycles - t < hv.clock.cyclesAt(1e7), "it runs on CPU 1 now");
    xcDomainPinCpu(dom0, d.id, 0, -1);
    assert.equal(d.vcpus[0].cpuPinned, false);
    assert.equal(d.vcpus[0].processor, 1);
    assertXcErrno(() => xcDomainPinCpu(dom0, 9, 0, 0), ESRCH);
    assertXcErrno(() => xcDomainPinCpu(dom0, d.id, 3, 0), ESRCH);
    assertXcErrno(() => xcDomainPinCpu(dom0, 0, 0, 1), EINVAL);
  });
});

describe("DOM0_READCONSOLE, GETTBUFS, PHYSINFO, MSR, SETTIME", () => {
  it("READCONSOLE copies Xen's printk output from the start; CLEAR empties it; it stops when full", () => {
    const logged: string[] = [];
    const { hv, dom0 } = machine({ onLog: (m) => logged.push(m) });
    const d = built(hv);
    hv.crashDomain(d, "a test crash");
    const text = xcReadConsole(dom0);
    assert.match(text, /^\(XEN\) domain \d+ \(guest\) crashed: a test crash\n/m);
    assert.equal(logged.length, 1, "onLog still hears it");
    assert.equal(xcReadConsole(dom0, { count: 6 }), "(XEN) ");
    assert.equal(xcReadConsole(dom0, { clear: true }), text);
    assert.equal(xcReadConsole(dom0), "");
    for (let i = 0; i < 2000; i++) hv.consoleRing.printk("0123456789");
    assert.equal(xcReadConsole(dom0).length, CONSOLE_RING_SIZE);
  });

  it("GETTBUFS gives dom0's shared trace buffer; it records dom0_ops, hypercalls and switches", () => {
    const { hv, dom0 } = machine();
    const t = xcGetTbufs(dom0);
    assert.equal(t.size, 10 * 4096);
    assert.equal(hv.frames.owner[t.machAddr >>> 12], 0, "shared with dom0");
    const d = built(hv);
    xcDomainUnpause(dom0, d.id);
    hv.run(3e7);
    // dom0 maps the first trace page read-only into a free slot of its L1 and reads the header.
    const l1 = hv.read32(dom0.vcpu.baseMfn * 4096 + (0x10000000 >>> 22) * 4) >>> 12;
    xcMmuUpdate(dom0, [[l1 * 4096 + 1000 * 4, t.machAddr | 1]]);
    const va = 0x10000000 + 1000 * 4096;
    const header = hv.onVcpu(dom0.vcpu, () => hv.guest.copyFrom(va, TraceBuf.SIZE));
    assert.ok(header);
    const hv32 = new DataView(header.buffer);
    const nrecs = hv32.getUint32(TraceBuf.size, true);
    assert.equal(nrecs, Math.floor((10 * 4096 - TraceBuf.SIZE) / TraceRec.SIZE));
    assert.ok(hv32.getUint32(TraceBuf.head, true) > 2);
    const events = new Set<number>();
    for (let i = 0; i < Math.min(nrecs, hv32.getUint32(TraceBuf.head, true)); i++)
      events.add(hv.read32(t.machAddr + TraceBuf.SIZE + i * TraceRec.SIZE + TraceRec.event));
    assert.ok(events.has(Trc.DOM0OP_ENTER_BASE + Dom0Cmd.CREATEDOMAIN));
    assert.ok(events.has(Trc.DOM0OP_LEAVE_BASE + Dom0Cmd.UNPAUSEDOMAIN));
    assert.ok(events.has(Trc.SCHED_SWITCH));
    assert.ok(events.has(Trc.HYPERCALL_BASE + HypercallMar.mmu_update));
    // A read-only mapping: writing through it is refused to the toolstack's copy.
    assert.equal(
      hv.onVcpu(dom0.vcpu, () => hv.guest.write32(va, 0)),
      false,
    );
    clean(hv);
  });

  it("the trace buffer is written from the first GETTBUFS on: nothing before a reader asks", () => {
    const { hv, dom0 } = machine();
    xcDomainUnpause(dom0, built(hv).id);
    hv.run(3e7);
    const t = hv.tbufs;
    assert.ok(t);
    const head = () => hv.read32(t.bufMa[0] + TraceBuf.head);
    assert.equal(head(), 0, "no record while no one has asked for the buffers");
    assert.equal(xcGetTbufs(dom0).machAddr, t.bufMa[0]);
    xcDomainUnpause(dom0, built(hv).id);
    hv.run(6e7);
    const events = new Set<number>();
    for (let i = 0; i < head(); i++)
      events.add(hv.read32(t.bufMa[0] + TraceBuf.SIZE + i * TraceRec.SIZE + TraceRec.event));
    assert.ok(events.has(Trc.DOM0OP_ENTER_BASE + Dom0Cmd.CREATEDOMAIN));
    assert.ok(events.has(Trc.SCHED_SWITCH));
    clean(hv);
  });

  it("PHYSINFO: CPUs, clock, total and free pages", () => {
    const { hv, dom0 } = machine({ cpus: 2 });
    const p = xcPhysInfo(dom0);
    assert.deepEqual(p, {
      htPerCore: 1,
      cores: 2,
      cpuKhz: 10_000,
      totalPages: 8192,
      freePages: hv.mem.freeFrames,
    });
  });

  it("MSR reads and writes the simulated MSRs on the CPUs in the mask; the TSC reads the clock", () => {
    const { hv, dom0 } = machine();
    hv.cpu.msrs.set(0x174, 0n);
    xcMsr(dom0, 0x174, 1, { lo: 0x10, hi: 0x2 });
    assert.deepEqual(xcMsr(dom0, 0x174, 1), [0x10, 0x2]);
    xcDomainUnpause(dom0, built(hv).id);
    hv.run(1e7);
    assert.ok(xcMsr(dom0, 0x10, 1)[0] > 0);
    assert.deepEqual(xcMsr(dom0, 0x174, 0), [0, 0], "no CPU in the mask: nothing read");
  });

  it("SETTIME: the wall clock reads (secs, usecs) at system_time; the caller sees it at once", () => {
    const { hv, dom0 } = machine();
    xcDomainUnpause(dom0, built(hv).id);
    hv.run(5e7);
    const now = hv.clock.ns(hv.sched.cur.lastTickCycles);
    assert.ok(now > 0);
    xcSetTime(dom0, 1_000_000_000, 250_000, now);
    assert.equal(hv.read32(dom0.domain.sharedInfoMfn * 4096 + SharedInfo.wc_sec), 1_000_000_000);
    assert.equal(hv.read32(dom0.domain.sharedInfoMfn * 4096 + SharedInfo.wc_usec), 250_000);
    // usecs + (stime - system_time)/1000 overflows upward into the seconds.
    xcSetTime(dom0, 2_000_000_000, 999_999, now - 2000);
    assert.equal(hv.read32(dom0.domain.sharedInfoMfn * 4096 + SharedInfo.wc_sec), 2_000_000_001);
    assert.equal(hv.read32(dom0.domain.sharedInfoMfn * 4096 + SharedInfo.wc_usec), 1);
  });
});

describe("DOM0_SHADOW_CONTROL (log-dirty)", () => {
  it("CLEAN reports the frames written since the last CLEAN, by pseudo-physical number", () => {
    const { hv, dom0 } = machine();
    const d = built(hv, writer);
    xcDomainUnpause(dom0, d.id);
    hv.run(1e7);
    assertXcErrno(() => xcShadowControl(dom0, d.id, ShadowOp.CLEAN, 1024), EINVAL, "shadow mode off");
    xcShadowControl(dom0, d.id, ShadowOp.ENABLE_LOGDIRTY);
    hv.run(hv.nowNs() + 1e7);
    const peek = xcShadowControl(dom0, d.id, ShadowOp.PEEK, 1024);
    const c1 = xcShadowControl(dom0, d.id, ShadowOp.CLEAN, 1024);
    assert.deepEqual(c1.bitmap, peek.bitmap, "PEEK does not clear");
    assert.equal(c1.pages, 1024);
    const bits = (b: Uint8Array | null): number[] =>
      [...(b ?? [])].flatMap((byte, i) =>
        [0, 1, 2, 3, 4, 5, 6, 7].filter((k) => (byte >> k) & 1).map((k) => i * 8 + k),
      );
    assert.deepEqual(bits(c1.bitmap), [16]);
    assert.ok(c1.stats.fault >= 1 && c1.stats.dirty === 1);
    const c2 = xcShadowControl(dom0, d.id, ShadowOp.CLEAN, 1024);
    assert.deepEqual(bits(c2.bitmap), [], "cleared");
    assert.deepEqual(c2.stats, { fault: 0, dirty: 0, dirtyNet: 0, dirtyBlock: 0 });
    hv.run(hv.nowNs() + 1e7);
    assert.deepEqual(bits(xcShadowControl(dom0, d.id, ShadowOp.CLEAN, 1024).bitmap), [16], "written again");
    // MACHPHYS_UPDATE marks the frame and counts a block write.
    const mfn = [...d.pages][20];
    xcMmuUpdate(dom0, [
      [MmuMar.EXTENDED_COMMAND, MmuExtMar.SET_FOREIGNDOM | (d.id << MMUEXT_DOMID_SHIFT)],
      [mfn * 4096 + MmuMar.MACHPHYS_UPDATE, 20],
    ]);
    const c3 = xcShadowControl(dom0, d.id, ShadowOp.PEEK, 1024);
    assert.ok(bits(c3.bitmap).includes(20));
    assert.equal(c3.stats.dirtyBlock, 1);
    assertXcErrno(() => xcShadowControl(dom0, d.id, ShadowOp.CLEAN, 100), EINVAL, "buffer too small");
    xcShadowControl(dom0, d.id, ShadowOp.OFF);
    assertXcErrno(() => xcShadowControl(dom0, d.id, ShadowOp.PEEK, 1024), EINVAL);
    assertXcErrno(() => xcShadowControl(dom0, 0, ShadowOp.ENABLE_LOGDIRTY), EINVAL, "not oneself");
    assertXcErrno(() => xcShadowControl(dom0, 50, ShadowOp.ENABLE_LOGDIRTY), ESRCH);
    assertXcErrno(() => xcShadowControl(dom0, d.id, 7), EINVAL);
    clean(hv);
  });

  it("a log-dirty domain can be destroyed cleanly", () => {
    const { hv, dom0 } = machine();
    const free = hv.mem.freeFrames;
    const d = built(hv, writer);
    xcShadowControl(dom0, d.id, ShadowOp.ENABLE_LOGDIRTY);
    xcDomainUnpause(dom0, d.id);
    hv.run(1e7);
    xcDomainDestroy(dom0, d.id);
    assert.equal(hv.mem.freeFrames, free);
    clean(hv);
  });
});

describe("DOM0_PCIDEV_ACCESS, IOPORT_PERMISSION, memtype, microcode, Xen 2.0 IOPL and SETDOMAINVMASSIST", () => {
  it("PCIDEV_ACCESS checks its range and enable, and makes the target privileged even for a missing device", () => {
    const { hv, dom0 } = machine();
    const id = xcDomainCreate(dom0, { memoryKb: 64 });
    const d = hv.domains.get(id);
    assertXcErrno(() => xcPcidevAccess(dom0, id, 256, 0, 0), EINVAL);
    assertXcErrno(() => xcPcidevAccess(dom0, 99, 0, 0, 0), ESRCH);
    assert.equal(d?.privileged, false);
    assertXcErrno(() => xcPcidevAccess(dom0, id, 7, 31, 7), ENODEV);
    assert.equal(d?.privileged, true);
    assert.equal(d?.physdevCapable, true);
  });

  it("IOPORT_PERMISSION creates the mask (all denied) and opens or closes a range", () => {
    const { hv, dom0 } = machine();
    const id = xcDomainCreate(dom0, { memoryKb: 64 });
    xcIoportPermission(dom0, id, 0x3f8, 8, true);
    const mask = hv.domains.get(id)?.iobmpMask;
    assert.ok(mask);
    assert.equal(mask[0x3f8 >>> 3], 0);
    assert.equal(mask[0x400 >>> 3], 0xff);
    xcIoportPermission(dom0, id, 0x3f8, 1, false);
    assert.equal(mask[0x3f8 >>> 3], 1);
    assertXcErrno(() => xcIoportPermission(dom0, id, 0xfff0, 0x10, true), EINVAL);
    assertXcErrno(() => xcIoportPermission(dom0, 99, 0, 1, true), ESRCH);
  });

  it("memtype and microcode: a machine without MTRRs or a microcode loader", () => {
    const { dom0 } = machine();
    assert.equal(dom0Op(dom0, Dom0Cmd.ADD_MEMTYPE).rc, -ENXIO);
    assert.equal(dom0Op(dom0, Dom0Cmd.DEL_MEMTYPE).rc, -ENXIO);
    assert.equal(dom0Op(dom0, Dom0Cmd.READ_MEMTYPE).rc, -EINVAL);
    assert.equal(dom0Op(dom0, Dom0Cmd.MICROCODE).rc, -EINVAL);
  });

  it("IOPL (14) sets the caller's virtual IOPL for DOMID_SELF only; SETDOMAINVMASSIST (30) any domain's", () => {
    const { hv, dom0 } = machine();
    xcIopl(dom0, 7);
    assert.equal(dom0.vcpu.iopl, 3);
    assertXcErrno(() => xcIopl(dom0, 1, 0), EINVAL);
    const id = xcDomainCreate(dom0, { memoryKb: 64 });
    xcSetDomainVmAssist(dom0, id, 0, 2);
    assert.equal(hv.domains.get(id)?.vmAssist, 4);
    xcSetDomainVmAssist(dom0, id, 0, 9); // vm_assist's own -EINVAL is ignored
    assertXcErrno(() => xcSetDomainVmAssist(dom0, 99, 0, 2), ESRCH);
    assert.equal(DomId.SELF, 0x7ff0);
  });
});
