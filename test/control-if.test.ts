/**
 * The controller's end of the control interface (src/tools/control_if.ts), driven from the
 * guest's side of the rings directly (the test writes the domain's shared_info page as a guest
 * would): requests reach the handler registered for their type (the interface's own first, then
 * the machine's service), replies are written with type, subtype and id echoed, late replies go
 * out when their promise settles, a handler that throws answers empty without escaping, types
 * nobody serves are answered empty, and a ring that claims too much is disconnected.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CONTROL_IF_OFFSET, ControlIf, ControlMsg, CtrlSring } from "../src/public/control_if.js";
import { type ControlInterface, controlInterfaces, registerControlService } from "../src/tools/control_if.js";
import { dom0Of } from "../src/tools/dom0.js";
import { startDomain } from "../src/tools/launch.js";
import type { Domain } from "../src/xen/domain.js";
import { Hypervisor } from "../src/xen/hypervisor.js";
import { guestPath } from "./support/guests.js";

/** A paused MAR domain with its control interface, and the guest's view of its rings. */
function setUp(): { hv: Hypervisor; d: Domain; ctrl: ControlInterface; errors: string[] } {
  const errors: string[] = [];
  const hv = new Hypervisor({ onLog: () => {} });
  const image = readFileSync(guestPath("ev_ctrl_shell"));
  const { domain, control } = startDomain(
    hv,
    { name: "c", image, memoryMiB: 8, paused: true },
    () => {},
    (why) => errors.push(why),
  );
  assert.ok(control);
  return { hv, d: domain, ctrl: control, errors };
}

/** The guest's side: puts requests on the tx ring, reads responses. */
function guestSide(hv: Hypervisor, d: Domain) {
  const base = d.sharedInfoMfn * 4096 + CONTROL_IF_OFFSET;
  const tx = base + ControlIf.tx_ring;
  const slot = (i: number): number => tx + CtrlSring.ring + (i % 8) * ControlMsg.SIZE;
  let prod = 0;
  return {
    send(type: number, subtype: number, id: number, payload: number[] = []): void {
      hv.mem.bytes.set([type, subtype, id, payload.length, ...payload], slot(prod));
      prod++;
      hv.write32(tx + CtrlSring.req_prod, prod);
    },
    /** Claims requests it never wrote. */
    setReqProd(v: number): void {
      hv.write32(tx + CtrlSring.req_prod, v);
    },
    rspProd: (): number => hv.read32(tx + CtrlSring.rsp_prod),
    response(i: number): { type: number; subtype: number; id: number; payload: number[] } {
      const b = hv.mem.bytes.subarray(slot(i), slot(i) + ControlMsg.SIZE);
      return { type: b[0], subtype: b[1], id: b[2], payload: [...b.subarray(4, 4 + b[3])] };
    },
  };
}

describe("the control interface's message registry", () => {
  it("dispatches by type: the interface's handler, then the machine's service, else an empty answer", async () => {
    const { hv, d, ctrl, errors } = setUp();
    const g = guestSide(hv, d);
    const seen: string[] = [];
    ctrl.register(1, (m) => {
      seen.push(`iface ${m.subtype} ${m.payload.join(",")}`);
      return Uint8Array.from([9, 8, 7]);
    });
    const connected: number[] = [];
    const stop = registerControlService(dom0Of(hv), 3, {
      message: (m, c) => {
        seen.push(`service ${m.subtype} dom ${c.domid}`);
        return Promise.resolve(Uint8Array.from([42]));
      },
      connected: (c) => connected.push(c.domid),
    });
    assert.deepEqual(connected, [d.id], "a service hears of interfaces already up");
    assert.throws(
      () => registerControlService(dom0Of(hv), 3, { message: () => undefined }),
      /already served/,
    );
    g.send(1, 33, 5, [1, 2]);
    g.send(3, 32, 6);
    g.send(4, 0, 7, [1]);
    ctrl.poll();
    assert.deepEqual(seen, ["iface 33 1,2", `service 32 dom ${d.id}`]);
    // The synchronous answers are on the ring at once, in order; the promised one follows.
    assert.equal(g.rspProd(), 2);
    assert.deepEqual(g.response(0), { type: 1, subtype: 33, id: 5, payload: [9, 8, 7] });
    assert.deepEqual(g.response(1), { type: 4, subtype: 0, id: 7, payload: [] });
    await new Promise((r) => setImmediate(r));
    assert.equal(g.rspProd(), 3);
    assert.deepEqual(g.response(2), { type: 3, subtype: 32, id: 6, payload: [42] });
    assert.deepEqual(errors, []);
    stop();
    assert.equal(controlInterfaces(dom0Of(hv)).length, 1);
    ctrl.disconnect();
    assert.equal(controlInterfaces(dom0Of(hv)).length, 0);
  });

  it("a handler that throws answers empty and is logged; the run loop never sees it", () => {
    const { hv, d, ctrl, errors } = setUp();
    const g = guestSide(hv, d);
    ctrl.register(2, () => {
      throw new Error("backend exploded");
    });
    g.send(2, 1, 3, [5]);
    ctrl.poll();
    assert.equal(g.rspProd(), 1);
    assert.deepEqual(g.response(0), { type: 2, subtype: 1, id: 3, payload: [] });
    assert.match(errors.join("\n"), /control message type 2: backend exploded/);
    assert.ok(ctrl.connected);
  });

  it("a guest claiming more requests than the ring has room for is disconnected", () => {
    const { hv, d, ctrl, errors } = setUp();
    const g = guestSide(hv, d);
    const unanswered = new Promise<void>(() => {});
    ctrl.register(1, () => unanswered.then(() => undefined));
    // Eight requests still waiting for answers fill the ring: a ninth is not the guest's to make.
    for (let i = 0; i < 8; i++) g.send(1, 0, i);
    ctrl.poll();
    assert.ok(ctrl.connected);
    g.setReqProd(9);
    ctrl.poll();
    assert.equal(ctrl.connected, false);
    assert.match(errors.join("\n"), /claims 1 new requests with room for 0/);
  });

  it("console input goes out as requests only while the ring has room", () => {
    const { ctrl } = setUp();
    assert.equal(ctrl.freeRequestSlots, 8);
    for (let i = 0; i < 8; i++) void ctrl.request(0, 0, Uint8Array.from([65 + i]));
    assert.equal(ctrl.freeRequestSlots, 0);
    assert.throws(() => ctrl.request(0, 0), /ring is full/);
    assert.equal(ctrl.active, false, "the guest has not used its interface yet");
  });
});
