/**
 * Event channels, VIRQ sources, physical IRQs and physdev (semantics.md §5, §9.1): the
 * notification rule on the shared-info bits, wake-ups, PIRQ sharing and unmask-notify, port
 * cleanup on destroy; and the guests that need more than one domain or privilege.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { IrqController, NmiReason } from "../src/machine/irq.js";
import { EBUSY, EINVAL, ENOSPC, EPERM } from "../src/public/errno.js";
import { BIND_PIRQ__WILL_SHARE, EvtchnStat } from "../src/public/event_channel.js";
import { NR_VIRQS, SharedInfo, VcpuInfo, VirqMar } from "../src/public/xen.js";
import { launchDomain } from "../src/tools/launch.js";
import type { Domain, Vcpu } from "../src/xen/domain.js";
import {
  allocUnbound,
  allocUnboundPort,
  bindInterdomain,
  bindIpi,
  bindPirq,
  bindVirq,
  close,
  closeAllPorts,
  debugKey,
  getFreePort,
  send,
  setPending,
  status,
} from "../src/xen/event_channel.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { pirqGuestUnmask, serviceMachineInterrupts } from "../src/xen/irq.js";
import { assertGuestPassed, consoleMachine } from "./support/console.js";
import { guestPath } from "./support/guests.js";

const SELF = 0x7ff0;

function machine(): Hypervisor {
  return new Hypervisor({ memoryMiB: 16 });
}

/** A domain that is never started: its shared-info page is all the event code touches. */
function domain(hv: Hypervisor, privileged = false): Domain {
  return hv.createDomain("d", 4, privileged);
}

function si(_hv: Hypervisor, d: Domain): number {
  return d.sharedInfoMfn * 4096;
}
function bit(hv: Hypervisor, d: Domain, base: number, port: number): number {
  return (hv.read32(si(hv, d) + base + (port >>> 5) * 4) >>> (port & 31)) & 1;
}
function setBit(hv: Hypervisor, d: Domain, base: number, port: number, on: boolean): void {
  const a = si(hv, d) + base + (port >>> 5) * 4;
  const w = hv.read32(a);
  hv.write32(a, on ? w | (1 << (port & 31)) : w & ~(1 << (port & 31)));
}
const pending = (hv: Hypervisor, d: Domain, p: number) => bit(hv, d, SharedInfo.evtchn_pending, p);
const mask = (hv: Hypervisor, d: Domain, p: number, on: boolean) =>
  setBit(hv, d, SharedInfo.evtchn_mask, p, on);
function vcpuInfo(hv: Hypervisor, v: Vcpu): { upcallPending: number; upcallMask: number; sel: number } {
  const a = si(hv, v.domain) + v.id * VcpuInfo.SIZE;
  return {
    upcallPending: hv.mem.bytes[a + VcpuInfo.evtchn_upcall_pending],
    upcallMask: hv.mem.bytes[a + VcpuInfo.evtchn_upcall_mask],
    sel: hv.read32(a + VcpuInfo.evtchn_pending_sel),
  };
}
function clearAll(hv: Hypervisor, d: Domain): void {
  hv.mem.bytes.fill(0, si(hv, d), si(hv, d) + 588);
}

/** Registers d as domain 0 for the dom0-only VIRQs (until the dom0 issue builds a real one). */
function asDom0(hv: Hypervisor, d: Domain): void {
  hv.domains.set(0, d);
}

describe("the notification rule (semantics.md §5.3)", () => {
  it("sets pending, selector and upcall_pending, even with upcall_mask set", () => {
    const hv = machine();
    const d = domain(hv);
    clearAll(hv, d);
    hv.mem.bytes[si(hv, d) + VcpuInfo.evtchn_upcall_mask] = 1;
    setPending(hv, d.vcpus[0], 37);
    assert.equal(pending(hv, d, 37), 1);
    assert.deepEqual(vcpuInfo(hv, d.vcpus[0]), { upcallPending: 1, upcallMask: 1, sel: 1 << 1 });
  });

  it("a port already pending stops at step 1: nothing else changes", () => {
    const hv = machine();
    const d = domain(hv);
    clearAll(hv, d);
    setBit(hv, d, SharedInfo.evtchn_pending, 5, true);
    setPending(hv, d.vcpus[0], 5);
    assert.deepEqual(vcpuInfo(hv, d.vcpus[0]), { upcallPending: 0, upcallMask: 0, sel: 0 });
  });

  it("a masked port stays pending without selector or upcall, and unmasking re-notifies nothing", () => {
    const hv = machine();
    const d = domain(hv);
    clearAll(hv, d);
    mask(hv, d, 9, true);
    setPending(hv, d.vcpus[0], 9);
    assert.equal(pending(hv, d, 9), 1);
    assert.deepEqual(vcpuInfo(hv, d.vcpus[0]), { upcallPending: 0, upcallMask: 0, sel: 0 });
    mask(hv, d, 9, false);
    setPending(hv, d.vcpus[0], 9);
    assert.equal(vcpuInfo(hv, d.vcpus[0]).upcallPending, 0);
  });

  it("a selector bit already set stops at step 3: upcall_pending is not raised", () => {
    const hv = machine();
    const d = domain(hv);
    clearAll(hv, d);
    hv.write32(si(hv, d) + VcpuInfo.evtchn_pending_sel, 1);
    setPending(hv, d.vcpus[0], 3);
    assert.equal(pending(hv, d, 3), 1);
    assert.equal(vcpuInfo(hv, d.vcpus[0]).upcallPending, 0);
  });

  it("a blocked vcpu wakes on exactly the events that reach step 5, and no other", () => {
    const hv = machine();
    const d = domain(hv);
    const other = domain(hv);
    const v = d.vcpus[0];
    clearAll(hv, d);
    clearAll(hv, other);
    const timer = bindVirq(v, VirqMar.TIMER);
    hv.block(v);
    // Unbound VIRQ: dropped.
    hv.domains.set(0, d);
    hv.consoleInput(new Uint8Array([0x61]));
    assert.equal(v.blocked, true, "unbound VIRQ_CONSOLE must not wake");
    // Masked port, already pending port, selector already set: no wake.
    mask(hv, d, 20, true);
    setPending(hv, v, 20);
    assert.equal(v.blocked, true, "masked port must not wake");
    setBit(hv, d, SharedInfo.evtchn_pending, 21, true);
    setPending(hv, v, 21);
    assert.equal(v.blocked, true, "already pending port must not wake");
    hv.write32(si(hv, d) + VcpuInfo.evtchn_pending_sel, 1 << 2);
    setPending(hv, v, 70);
    assert.equal(v.blocked, true, "selector already set must not wake");
    // An event for another domain: no wake here.
    setPending(hv, other.vcpus[0], timer);
    assert.equal(v.blocked, true, "another domain's event must not wake");
    // A fresh unmasked event: wakes.
    setPending(hv, v, timer);
    assert.equal(v.blocked, false);
  });
});

describe("port table (semantics.md §5.1)", () => {
  it("grows 16 -> port+32 and refuses with -ENOSPC once ports 1..1023 are used ([QUIRK] fixed choice)", () => {
    const hv = machine();
    const d = domain(hv);
    assert.equal(d.evtchn.size, 16);
    let last = 0;
    for (;;) {
      const p = allocUnbound(d.vcpus[0], 7);
      if (p < 0) {
        assert.equal(p, -ENOSPC);
        break;
      }
      last = p;
      if (p === 16) assert.equal(d.evtchn.size, 48);
    }
    assert.equal(last, 1023);
    assert.equal(d.evtchn.size, 1024);
    assert.equal(getFreePort(d, 0), -ENOSPC);
  });

  it("July 2005: alloc_unbound's port is in/out and bind_ipi's ipi_vcpu must exist (abi.md §2.8.1)", () => {
    const hv = machine();
    const j = hv.createDomain("j", 4, false, "2005-07");
    const v = j.vcpus[0];
    assert.equal(allocUnboundPort(v, 7, 0), 1, "0 allocates the lowest free port");
    assert.equal(allocUnboundPort(v, 7, 5), 5, "a named FREE port becomes UNBOUND");
    assert.equal(allocUnboundPort(v, 7, 5), 5, "again for the same domain: accepted");
    assert.equal(allocUnboundPort(v, 8, 5), -EINVAL, "UNBOUND for another domain");
    assert.equal(allocUnboundPort(v, 7, 16), -EINVAL, "beyond the table");
    assert.equal(allocUnboundPort(v, 7, -1), -EINVAL);
    assert.equal(status(hv, v, 0x7ff0, 5).status, EvtchnStat.unbound);
    assert.equal(bindIpi(v, 1), -EINVAL, "no VCPU 1");
    const ipi = bindIpi(v, 0);
    assert.ok(ipi > 0);
    assert.equal(allocUnboundPort(v, 7, ipi), -EINVAL, "an IPI port");
    // A March domain may still name any id below 32.
    assert.ok(bindIpi(domain(hv).vcpus[0], 31) > 0);
  });

  it("a vcpu's free-port search starts at vcpu_id*32", () => {
    const hv = machine();
    const d = domain(hv);
    assert.equal(getFreePort(d, 2), 64);
    assert.equal(d.evtchn.size, 96);
  });
});

describe("interdomain channels and destroy", () => {
  it("unprivileged: dom1 must be SELF; a FREE remote port is -EPERM ([QUIRK] kept); an offered port binds", () => {
    const hv = machine();
    const a = domain(hv);
    const b = domain(hv);
    assert.equal(bindInterdomain(hv, a.vcpus[0], a.id, b.id, 0, 0).rc, -EPERM);
    assert.equal(bindInterdomain(hv, a.vcpus[0], SELF, b.id, 0, 0).rc, -EPERM);
    assert.equal(bindInterdomain(hv, a.vcpus[0], SELF, SELF, 0, 0).rc, -EPERM);
    const pb = allocUnbound(b.vcpus[0], a.id);
    const r = bindInterdomain(hv, a.vcpus[0], SELF, b.id, 0, pb);
    assert.deepEqual(r, { rc: 0, port1: 1, port2: pb });
    assert.equal(status(hv, b.vcpus[0], SELF, pb).status, EvtchnStat.interdomain);
  });

  it("privileged: both ends may be FREE, and wildcard ports are allocated in each domain", () => {
    const hv = machine();
    const dom0 = domain(hv, true);
    const a = domain(hv);
    const b = domain(hv);
    allocUnbound(a.vcpus[0], 99); // a's port 1 busy
    const r = bindInterdomain(hv, dom0.vcpus[0], a.id, b.id, 0, 0);
    assert.deepEqual(r, { rc: 0, port1: 2, port2: 1 });
    clearAll(hv, b);
    assert.equal(send(hv, a.vcpus[0], 2), 0);
    assert.equal(pending(hv, b, 1), 1);
  });

  it("a domain's ports all close on destroy: peers go UNBOUND awaiting it, PIRQs are unbound", () => {
    const hv = machine();
    const a = domain(hv, true);
    const b = domain(hv);
    const pb = allocUnbound(b.vcpus[0], a.id);
    const r = bindInterdomain(hv, a.vcpus[0], SELF, b.id, 0, pb);
    assert.equal(r.rc, 0);
    const pp = bindPirq(hv, a.vcpus[0], 11, 0);
    assert.ok(pp > 0);
    assert.equal(hv.irq.isEnabled(11), true);
    bindVirq(a.vcpus[0], VirqMar.DEBUG);
    closeAllPorts(hv, a);
    for (let p = 1; p < a.evtchn.size; p++)
      assert.equal(status(hv, a.vcpus[0], SELF, p).status, EvtchnStat.closed);
    const s = status(hv, b.vcpus[0], SELF, pb);
    assert.equal(s.status, EvtchnStat.unbound);
    assert.equal(s.u, a.id);
    assert.equal(hv.guestIrqs.guestsOf(11).length, 0);
    assert.equal(hv.irq.isEnabled(11), false);
    assert.equal(a.vcpus[0].virqPort[VirqMar.DEBUG], 0);
  });

  it("IPI: the event goes to the target vcpu on the same port; a missing vcpu is -EINVAL at send", () => {
    const hv = machine();
    const d = domain(hv);
    clearAll(hv, d);
    const p = bindIpi(d.vcpus[0], 0);
    assert.equal(send(hv, d.vcpus[0], p), 0);
    assert.equal(pending(hv, d, p), 1);
    const q = bindIpi(d.vcpus[0], 5);
    assert.equal(send(hv, d.vcpus[0], q), -EINVAL);
  });

  it("closing a free, reserved or out-of-range port is -EINVAL; a closed port is free again", () => {
    const hv = machine();
    const a = domain(hv);
    const v = a.vcpus[0];
    const free = getFreePort(a, 0);
    assert.equal(close(hv, v, SELF, free), -EINVAL, "a free port");
    assert.equal(close(hv, v, SELF, 0), -EINVAL, "port 0 is reserved");
    assert.equal(close(hv, v, SELF, a.evtchn.size), -EINVAL, "past the table");
    assert.equal(close(hv, v, SELF, -1), -EINVAL, "a negative port");
    const p = allocUnbound(v, 0);
    assert.equal(close(hv, v, SELF, p), 0);
    assert.equal(close(hv, v, SELF, p), -EINVAL, "closing it twice");
  });

  it("bind_virq: each VIRQ below NR_VIRQS binds once per vcpu; NR_VIRQS and above are -EINVAL", () => {
    const hv = machine();
    const v = domain(hv).vcpus[0];
    const last = bindVirq(v, NR_VIRQS - 1);
    assert.ok(last > 0, "the last VIRQ binds");
    assert.equal(bindVirq(v, NR_VIRQS - 1), last, "binding again gives the same port");
    assert.equal(bindVirq(v, NR_VIRQS), -EINVAL);
    assert.equal(bindVirq(v, 0xffffffff), -EINVAL);
  });

  it("close and status on another domain need privilege", () => {
    const hv = machine();
    const a = domain(hv);
    const b = domain(hv);
    const p = allocUnbound(b.vcpus[0], 0);
    assert.equal(close(hv, a.vcpus[0], b.id, p), -EPERM);
    assert.equal(status(hv, a.vcpus[0], b.id, p).rc, -EPERM);
    const priv = domain(hv, true);
    assert.equal(status(hv, priv.vcpus[0], b.id, p).status, EvtchnStat.unbound);
    assert.equal(close(hv, priv.vcpus[0], b.id, p), 0);
    assert.equal(close(hv, priv.vcpus[0], 0x7000, p), -3 /* ESRCH */);
  });
});

describe("VIRQ sources (semantics.md §5.4)", () => {
  it("the q key sends VIRQ_DEBUG to every vcpu of every domain that bound it", () => {
    const hv = machine();
    const a = domain(hv);
    const b = domain(hv);
    const c = domain(hv);
    clearAll(hv, a);
    clearAll(hv, b);
    clearAll(hv, c);
    const pa = bindVirq(a.vcpus[0], VirqMar.DEBUG);
    const pb = bindVirq(b.vcpus[0], VirqMar.DEBUG);
    debugKey(hv);
    assert.equal(pending(hv, a, pa), 1);
    assert.equal(pending(hv, b, pb), 1);
    assert.equal(hv.read32(si(hv, c) + SharedInfo.evtchn_pending), 0);
  });

  it("serial input into an empty ring raises VIRQ_CONSOLE on dom0 vcpu0, not into a non-empty one", () => {
    const hv = machine();
    const d0 = domain(hv, true);
    asDom0(hv, d0);
    clearAll(hv, d0);
    const p = bindVirq(d0.vcpus[0], VirqMar.CONSOLE);
    hv.consoleInput(new Uint8Array([0x41]));
    assert.equal(pending(hv, d0, p), 1);
    setBit(hv, d0, SharedInfo.evtchn_pending, p, false);
    hv.consoleInput(new Uint8Array([0x42]));
    assert.equal(pending(hv, d0, p), 0, "ring was not empty");
    hv.consoleRead(10);
    hv.consoleInput(new Uint8Array([0x43]));
    assert.equal(pending(hv, d0, p), 1);
  });

  it("NMIs reach dom0 as VIRQ_PARITY_ERR and VIRQ_IO_ERR (the December 2005 fix)", () => {
    const hv = machine();
    const d0 = domain(hv, true);
    asDom0(hv, d0);
    clearAll(hv, d0);
    const pp = bindVirq(d0.vcpus[0], VirqMar.PARITY_ERR);
    const pi = bindVirq(d0.vcpus[0], VirqMar.IO_ERR);
    hv.irq.raiseNmi(NmiReason.IoCheck);
    serviceMachineInterrupts(hv);
    assert.equal(pending(hv, d0, pi), 1);
    assert.equal(pending(hv, d0, pp), 0);
    hv.irq.raiseNmi(NmiReason.Parity);
    serviceMachineInterrupts(hv);
    assert.equal(pending(hv, d0, pp), 1);
  });
});

describe("physical IRQs (semantics.md §5.5)", () => {
  it("only physdev-capable domains bind; IRQs Xen uses are -EBUSY; pirq >= 128 is -EINVAL", () => {
    const hv = machine();
    const u = domain(hv);
    const p = domain(hv, true);
    assert.equal(bindPirq(hv, u.vcpus[0], 5, 0), -EPERM);
    u.physdevCapable = true;
    assert.ok(bindPirq(hv, u.vcpus[0], 5, BIND_PIRQ__WILL_SHARE) > 0);
    assert.equal(bindPirq(hv, p.vcpus[0], 0, 0), -EBUSY);
    assert.equal(bindPirq(hv, p.vcpus[0], 128, 0), -EINVAL);
  });

  it("sharing needs both sides shareable; at most 7 guests", () => {
    const hv = machine();
    const doms = Array.from({ length: 8 }, () => domain(hv, true));
    assert.ok(bindPirq(hv, doms[0].vcpus[0], 9, 0) > 0);
    assert.equal(bindPirq(hv, doms[1].vcpus[0], 9, BIND_PIRQ__WILL_SHARE), -EBUSY);
    assert.ok(bindPirq(hv, doms[0].vcpus[0], 10, BIND_PIRQ__WILL_SHARE) > 0);
    assert.equal(bindPirq(hv, doms[1].vcpus[0], 10, 0), -EBUSY);
    for (let i = 1; i < 7; i++) assert.ok(bindPirq(hv, doms[i].vcpus[0], 10, BIND_PIRQ__WILL_SHARE) > 0);
    assert.equal(bindPirq(hv, doms[7].vcpus[0], 10, BIND_PIRQ__WILL_SHARE), -EBUSY);
    // The refused binds left no port behind.
    assert.equal(status(hv, doms[7].vcpus[0], SELF, 1).status, EvtchnStat.closed);
    assert.equal(doms[7].pirqToEvtchn[10], 0);
  });

  it("a shared level IRQ is ended only when every guest has unmask-notified with its port unmasked", () => {
    const hv = machine();
    const a = domain(hv, true);
    const b = domain(hv, true);
    clearAll(hv, a);
    clearAll(hv, b);
    const dev = hv.irq.attachDevice(11, "level");
    const pa = bindPirq(hv, a.vcpus[0], 11, BIND_PIRQ__WILL_SHARE);
    const pb = bindPirq(hv, b.vcpus[0], 11, BIND_PIRQ__WILL_SHARE);
    dev.raise();
    serviceMachineInterrupts(hv);
    assert.equal(pending(hv, a, pa), 1);
    assert.equal(pending(hv, b, pb), 1);
    assert.equal(hv.guestIrqs.inFlight(11), 2);
    assert.equal(hv.irq.isInService(11), true);
    setBit(hv, a, SharedInfo.evtchn_pending, pa, false);
    serviceMachineInterrupts(hv);
    assert.equal(pending(hv, a, pa), 0, "masked in service: no redelivery");
    mask(hv, a, pa, true);
    pirqGuestUnmask(hv, a);
    assert.equal(hv.guestIrqs.inFlight(11), 2, "a masked port keeps the IRQ in flight");
    mask(hv, a, pa, false);
    pirqGuestUnmask(hv, a);
    assert.equal(hv.guestIrqs.inFlight(11), 1);
    assert.equal(hv.irq.isInService(11), true);
    dev.lower();
    pirqGuestUnmask(hv, b);
    assert.equal(hv.guestIrqs.inFlight(11), 0);
    assert.equal(hv.irq.isInService(11), false);
    serviceMachineInterrupts(hv);
    assert.equal(pending(hv, a, pa), 0, "lowered line does not fire again");
  });

  it("closing a PIRQ port drops its in-flight share and the last guest shuts the line down", () => {
    const hv = machine();
    const a = domain(hv, true);
    const b = domain(hv, true);
    const dev = hv.irq.attachDevice(12, "level");
    const pa = bindPirq(hv, a.vcpus[0], 12, BIND_PIRQ__WILL_SHARE);
    const pb = bindPirq(hv, b.vcpus[0], 12, BIND_PIRQ__WILL_SHARE);
    dev.raise();
    serviceMachineInterrupts(hv);
    assert.equal(close(hv, a.vcpus[0], SELF, pa), 0);
    assert.equal(hv.guestIrqs.inFlight(12), 1);
    assert.equal(close(hv, b.vcpus[0], SELF, pb), 0);
    assert.equal(hv.irq.isEnabled(12), false);
    assert.equal(a.pirqToEvtchn[12], 0);
  });
});

describe("IRQ controller (machine)", () => {
  it("a periodic edge line raises once per period when enabled; missed periods coalesce", () => {
    const c = new IrqController(16);
    c.attachPeriodic(8, 1_000_000);
    c.tick(5_000_000);
    assert.equal(c.nextPending(), -1, "disabled line latches nothing");
    c.startup(8);
    c.tick(5_500_000);
    assert.equal(c.nextPending(), -1);
    c.tick(6_000_000);
    assert.equal(c.nextPending(), 8);
    c.ack(8);
    assert.equal(c.nextPending(), -1);
    c.tick(9_000_000);
    assert.equal(c.nextPending(), 8, "edge lines deliver while in service");
    assert.equal(c.nextDueNs(), 10_000_000);
  });

  it("rejects lines that do not exist", () => {
    assert.throws(() => new IrqController(4).raise(4), RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Guests

function runGuests(
  hv: Hypervisor,
  doms: Domain[],
  out: Map<Domain, string>,
  limitNs: number,
  at?: { ns: number; fn: () => void },
): void {
  let fired = false;
  for (let guard = 0; guard < 100; guard++) {
    if (doms.every((d) => d.state !== 0)) return;
    const until = at && !fired ? at.ns : limitNs;
    const r = hv.run(until);
    if (r.kind === "time-limit") {
      if (at && !fired) {
        at.fn();
        fired = true;
        continue;
      }
      return;
    }
    if (r.kind === "idle") return;
    if (r.kind === "crashed") assert.fail(`${r.domain.name} crashed: ${r.why}\n${out.get(r.domain)}`);
  }
}

describe("guests", () => {
  it("two domains ping-pong events over an interdomain channel (pingpong_a / pingpong_b)", () => {
    const { hv, out } = consoleMachine();
    // Domain ids are handed out in order: A is 1, B is 2.
    const a = launchDomain(hv, {
      name: "a",
      image: readFileSync(guestPath("ev_pingpong_a")),
      memoryMiB: 8,
      cmdline: "peer=2 port=1 rounds=50",
    }).domain;
    const b = launchDomain(hv, {
      name: "b",
      image: readFileSync(guestPath("ev_pingpong_b")),
      memoryMiB: 8,
      cmdline: `peer=${a.id} rounds=50`,
    }).domain;
    assert.equal(b.id, 2);
    runGuests(hv, [a, b], out, 20e9);
    // Every check ran (pinned): A 12, B 13.
    for (const [d, checks] of [
      [a, 12],
      [b, 13],
    ] as const) {
      const text = out.get(d) ?? "";
      assertGuestPassed(text);
      assert.match(text, new RegExp(`DONE passed=${checks} failed=0`), text);
    }
  });

  it("a privileged guest binds physical IRQs: periodic edge line, level line with unmask-notify (pirq)", () => {
    const { hv, out } = consoleMachine();
    hv.irq.attachPeriodic(8, 5e6);
    const nic = hv.irq.attachDevice(11, "level");
    const d = launchDomain(hv, {
      name: "pirq",
      image: readFileSync(guestPath("ev_pirq")),
      memoryMiB: 8,
      privileged: true,
    }).domain;
    runGuests(hv, [d], out, 20e9, { ns: 50e6, fn: () => nic.raise() });
    const text = out.get(d) ?? "";
    assertGuestPassed(text);
  });
});
