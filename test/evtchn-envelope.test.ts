/**
 * event_channel_op's envelope read through the guest's page tables: one walk when the 32-byte
 * block lies in one page (GuestMemory.within), word by word otherwise. Either way the whole
 * block must be readable below HYPERVISOR_VIRT_START, or the op is -EFAULT and nothing is sent.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { EFAULT, EINVAL } from "../src/public/errno.js";
import { EvtchnOp, EvtchnOpMar, EvtchnSend, EvtchnStat, EvtchnStatus } from "../src/public/event_channel.js";
import { HypercallMar, SharedInfo } from "../src/public/xen.js";
import { launchDomain } from "../src/tools/launch.js";
import type { Domain, Vcpu } from "../src/xen/domain.js";
import { bindIpi } from "../src/xen/event_channel.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { guestPath } from "./support/guests.js";

const E = EvtchnOpMar;

function setup(): { hv: Hypervisor; d: Domain; v: Vcpu; mapped: number; unmapped: number } {
  const hv = new Hypervisor({ memoryMiB: 32 });
  const { domain: d, image } = launchDomain(hv, {
    name: "env",
    image: readFileSync(guestPath("bench_exits")),
    memoryMiB: 4,
  });
  const v = d.vcpus[0];
  // The last page of the bootstrap mapping, and the unmapped page after it.
  let va = image.vStart;
  hv.onVcpu(v, () => {
    while (hv.guest.translate(va + 4096, false) >= 0) va += 4096;
  });
  return { hv, d, v, mapped: va, unmapped: va + 4096 };
}

/** Machine address of va in v's page tables, or -1. */
function maOf(hv: Hypervisor, v: Vcpu, va: number): number {
  return hv.onVcpu(v, () => hv.guest.translate(va >>> 0, false));
}

/** Writes the envelope's words wherever they are mapped (a page may be read-only to the guest). */
function putEnvelope(hv: Hypervisor, v: Vcpu, va: number, words: number[]): void {
  for (let i = 0; i < E.SIZE / 4; i++) {
    for (let b = 0; b < 4; b++) {
      const ma = maOf(hv, v, va + i * 4 + b);
      if (ma >= 0) hv.mem.bytes[ma] = ((words[i] ?? 0) >>> (b * 8)) & 0xff;
    }
  }
}

function pendingBit(hv: Hypervisor, d: Domain, port: number): number {
  return (
    (hv.read32(d.sharedInfoMfn * 4096 + SharedInfo.evtchn_pending + (port >>> 5) * 4) >>> (port & 31)) & 1
  );
}

function clearPending(hv: Hypervisor, d: Domain, port: number): void {
  const a = d.sharedInfoMfn * 4096 + SharedInfo.evtchn_pending + (port >>> 5) * 4;
  hv.write32(a, hv.read32(a) & ~(1 << (port & 31)));
}

const op = (hv: Hypervisor, v: Vcpu, va: number) => hv.hypercallAs(v, HypercallMar.event_channel_op, [va]);

describe("event_channel_op: the envelope read through the page tables", () => {
  it("send: in one page, across two mapped pages, into an unmapped page, unmapped, above the hypervisor's start", () => {
    const { hv, d, v, mapped, unmapped } = setup();
    const port = bindIpi(v, 0);
    assert.ok(port > 0);
    const sendTo = (p: number) => [EvtchnOp.send, 0, p];
    const cases: { what: string; va: number; words: number[]; rc: number }[] = [
      { what: "mid-page", va: mapped + 0x100, words: sendTo(port), rc: 0 },
      { what: "at the page's end", va: mapped + 4096 - E.SIZE, words: sendTo(port), rc: 0 },
      { what: "across two mapped pages", va: mapped - 12, words: sendTo(port), rc: 0 },
      { what: "the port across two mapped pages", va: mapped - 8 - 2, words: sendTo(port), rc: 0 },
      { what: "its tail in an unmapped page", va: unmapped - 16, words: sendTo(port), rc: -EFAULT },
      {
        what: "its last byte in an unmapped page",
        va: unmapped - E.SIZE + 1,
        words: sendTo(port),
        rc: -EFAULT,
      },
      { what: "in an unmapped page", va: unmapped + 0x40, words: sendTo(port), rc: -EFAULT },
      { what: "above HYPERVISOR_VIRT_START", va: 0xfc000000 - 16, words: sendTo(port), rc: -EFAULT },
      { what: "a port not bound", va: mapped + 0x200, words: sendTo(port + 7), rc: -EINVAL },
    ];
    for (const c of cases) {
      clearPending(hv, d, port);
      putEnvelope(hv, v, c.va, c.words);
      assert.equal(op(hv, v, c.va), c.rc, c.what);
      assert.equal(pendingBit(hv, d, port), c.rc === 0 ? 1 : 0, `${c.what}: pending`);
    }
    // The send path reads the port at its union offset.
    assert.equal(E.u + EvtchnSend.local_port, 8);

    // Xen's own read-only tables are mapped at HYPERVISOR_VIRT_START in every L2 (the M2P):
    // the walk reaches them, access_ok refuses them. A send envelope put there for the op
    // (and taken away after it) is -EFAULT all the same.
    const hi = 0xfc000000 + 0x100;
    assert.ok(maOf(hv, v, hi) >= 0, "the M2P is mapped");
    const saved = Array.from({ length: E.SIZE }, (_, i) => hv.mem.bytes[maOf(hv, v, hi + i)]);
    clearPending(hv, d, port);
    putEnvelope(hv, v, hi, sendTo(port));
    const rc = op(hv, v, hi);
    saved.forEach((x, i) => {
      hv.mem.bytes[maOf(hv, v, hi + i)] = x;
    });
    assert.equal(rc, -EFAULT, "above HYPERVISOR_VIRT_START");
    assert.equal(pendingBit(hv, d, port), 0);
  });

  it("another command in one page takes the general copy, and its output is written back", () => {
    const { hv, v, mapped } = setup();
    const port = bindIpi(v, 0);
    hv.onVcpu(v, () => {
      // A writable page of the guest's: the one the op's output is copied back to.
      let va = mapped;
      while (hv.guest.translate(va, true) < 0) va -= 4096;
      const at = va + 0x300;
      putEnvelope(hv, v, at, [EvtchnOp.status, 0, 0x7ff0, port]);
      assert.equal(op(hv, v, at), 0);
      const ma = hv.guest.translate(at, false);
      assert.equal(hv.read32(ma + E.u + EvtchnStatus.status), EvtchnStat.ipi);
    });
  });
});
