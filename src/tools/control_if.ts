/**
 * The domain controller's end of a MAR domain's control interface (abi.md §4.6), as xcs and
 * xend kept it in 2005: an interdomain event channel bound from dom0 when the domain is created
 * (the guest's end is start_info.domain_controller_evtchn, port 1), and the two rings in the
 * domain's shared_info page at +2048, which dom0 maps into its own address space.
 *
 * The controller writes requests into the rx ring (CMSG_SHUTDOWN, CMSG_MEM_REQUEST) and
 * notifies; the guest answers each with a response carrying the same type, subtype and id.
 * Requests the guest makes on the tx ring are answered too: CMSG_CONSOLE data goes to the
 * domain's console, anything else is echoed back unhandled (length 0), as xcs did for types
 * nobody had registered for.
 *
 * Everything read from the rings is the guest's to write, so every index and length is checked
 * and a ring that makes no sense is disconnected (the guest only loses its control interface).
 */
import {
  CMSG_CONSOLE_DATA,
  Cmsg,
  CONTROL_IF_OFFSET,
  CONTROL_REMOTE_PORT,
  CONTROL_RING_SIZE,
  ControlIf,
  ControlMsg,
  CtrlSring,
} from "../public/control_if.js";
import { DomId } from "../public/xen.js";
import type { Dom0 } from "./dom0.js";
import {
  xcDomainGetInfo,
  xcEvtchnBindInterdomain,
  xcEvtchnClose,
  xcEvtchnSend,
  xcMapForeignFrame,
  xcUnmapForeignFrame,
} from "./xc.js";

export interface ControlMessage {
  type: number;
  subtype: number;
  id: number;
  payload: Uint8Array;
}

/** Binds a new domain's control channel (xcs): returns [dom0's port, the domain's port]. */
export function bindControlChannel(dom0: Dom0, domid: number): [number, number] {
  return xcEvtchnBindInterdomain(dom0, DomId.SELF, domid, 0, CONTROL_REMOTE_PORT);
}

export class ControlInterface {
  /** dom0's address of the domain's control_if_t. */
  private readonly base: number;
  private readonly sharedVa: number;
  private nextId = 0;
  /** Requests sent and not yet answered, by id. */
  private readonly waiting = new Map<number, (rsp: ControlMessage | null) => void>();
  /** Our copy of the tx ring's response producer (the guest must not move it). */
  private txRspProd = 0;
  /** Our copy of the rx ring's request producer. */
  private rxReqProd = 0;
  /** Responses consumed on the rx ring. */
  private rxRspCons = 0;
  private txReqCons = 0;
  private closed = false;
  private readonly listener = (): void => this.poll();

  /**
   * Connects to domain domid whose control channel is dom0's port `port` (already bound):
   * maps its shared_info page and listens on the port. onConsole receives CMSG_CONSOLE text.
   */
  constructor(
    private readonly dom0: Dom0,
    readonly domid: number,
    readonly port: number,
    private readonly onConsole: (bytes: Uint8Array) => void = () => {},
    private readonly onError: (why: string) => void = () => {},
  ) {
    const info = xcDomainGetInfo(dom0, domid);
    if (info === null || info.domid !== domid) throw new Error(`domain ${domid} does not exist`);
    this.sharedVa = xcMapForeignFrame(dom0, domid, info.sharedInfoFrame);
    this.base = this.sharedVa + CONTROL_IF_OFFSET;
    // A fresh domain's rings are zero; a restored one's carry on from where they were.
    this.rxReqProd = this.u32(ControlIf.rx_ring + CtrlSring.req_prod);
    this.rxRspCons = this.u32(ControlIf.rx_ring + CtrlSring.rsp_prod);
    this.txReqCons = this.u32(ControlIf.tx_ring + CtrlSring.req_prod);
    this.txRspProd = this.txReqCons;
    this.setU32(ControlIf.tx_ring + CtrlSring.rsp_prod, this.txRspProd);
    dom0.onPort(port, this.listener);
  }

  get connected(): boolean {
    return !this.closed;
  }

  /**
   * Puts a request on the rx ring and notifies the guest. The promise gets the guest's response,
   * or null when the interface goes away first. Throws when the ring is full.
   */
  request(
    type: number,
    subtype: number,
    payload: Uint8Array = new Uint8Array(0),
  ): Promise<ControlMessage | null> {
    if (this.closed) throw new Error("the control interface is disconnected");
    if (payload.length > ControlMsg.MSG_MAX) throw new RangeError("control message payload too long");
    if (this.rxReqProd - this.rxRspCons >= CONTROL_RING_SIZE)
      throw new Error("the guest's control ring is full: it is not answering requests");
    const id = this.nextId;
    this.nextId = (this.nextId + 1) & 0xff;
    const slot = ControlIf.rx_ring + CtrlSring.ring + (this.rxReqProd % CONTROL_RING_SIZE) * ControlMsg.SIZE;
    const msg = new Uint8Array(ControlMsg.SIZE);
    msg[ControlMsg.type] = type;
    msg[ControlMsg.subtype] = subtype;
    msg[ControlMsg.id] = id;
    msg[ControlMsg.length] = payload.length;
    msg.set(payload, ControlMsg.msg);
    this.dom0.write(this.base + slot, msg);
    this.rxReqProd = (this.rxReqProd + 1) >>> 0;
    this.setU32(ControlIf.rx_ring + CtrlSring.req_prod, this.rxReqProd);
    const answer = new Promise<ControlMessage | null>((resolve) => this.waiting.set(id, resolve));
    xcEvtchnSend(this.dom0, this.port);
    return answer;
  }

  /** Takes the guest's responses (rx ring) and requests (tx ring): on every event. */
  poll(): void {
    if (this.closed) return;
    const rspProd = this.u32(ControlIf.rx_ring + CtrlSring.rsp_prod);
    const ready = (rspProd - this.rxRspCons) >>> 0;
    if (ready > (this.rxReqProd - this.rxRspCons) >>> 0) {
      this.fail(`answered ${ready} requests but only ${(this.rxReqProd - this.rxRspCons) >>> 0} were sent`);
      return;
    }
    for (; this.rxRspCons !== rspProd; this.rxRspCons = (this.rxRspCons + 1) >>> 0) {
      const m = this.readMsg(ControlIf.rx_ring, this.rxRspCons);
      const done = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      done?.(m);
    }
    const reqProd = this.u32(ControlIf.tx_ring + CtrlSring.req_prod);
    if ((reqProd - this.txReqCons) >>> 0 > CONTROL_RING_SIZE) {
      this.fail(`claims ${(reqProd - this.txReqCons) >>> 0} requests on an 8-slot ring`);
      return;
    }
    let answered = false;
    for (; this.txReqCons !== reqProd; this.txReqCons = (this.txReqCons + 1) >>> 0) {
      const m = this.readMsg(ControlIf.tx_ring, this.txReqCons);
      if (m.type === Cmsg.CONSOLE && m.subtype === CMSG_CONSOLE_DATA) this.onConsole(m.payload);
      // The response echoes type, subtype and id (length 0: nothing to report back).
      const slot =
        ControlIf.tx_ring + CtrlSring.ring + (this.txRspProd % CONTROL_RING_SIZE) * ControlMsg.SIZE;
      this.dom0.write(this.base + slot, new Uint8Array([m.type, m.subtype, m.id, 0]));
      this.txRspProd = (this.txRspProd + 1) >>> 0;
      answered = true;
    }
    if (answered) {
      this.setU32(ControlIf.tx_ring + CtrlSring.rsp_prod, this.txRspProd);
      xcEvtchnSend(this.dom0, this.port);
    }
  }

  /** Unmaps the rings and closes dom0's port (before the domain is destroyed). */
  disconnect(): void {
    if (this.closed) return;
    this.closed = true;
    xcUnmapForeignFrame(this.dom0, this.sharedVa);
    xcEvtchnClose(this.dom0, this.port);
    this.dom0.offPort(this.port, this.listener);
    for (const done of this.waiting.values()) done(null);
    this.waiting.clear();
  }

  private fail(why: string): void {
    this.onError(`domain ${this.domid}'s control ring ${why}; disconnected`);
    this.disconnect();
  }

  private readMsg(ring: number, idx: number): ControlMessage {
    const slot = ring + CtrlSring.ring + (idx % CONTROL_RING_SIZE) * ControlMsg.SIZE;
    const b = this.dom0.read(this.base + slot, ControlMsg.SIZE);
    const len = Math.min(b[ControlMsg.length], ControlMsg.MSG_MAX);
    return {
      type: b[ControlMsg.type],
      subtype: b[ControlMsg.subtype],
      id: b[ControlMsg.id],
      payload: b.slice(ControlMsg.msg, ControlMsg.msg + len),
    };
  }

  private u32(off: number): number {
    return new DataView(this.dom0.read(this.base + off, 4).buffer).getUint32(0, true);
  }

  private setU32(off: number, v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v >>> 0, true);
    this.dom0.write(this.base + off, b);
  }
}
