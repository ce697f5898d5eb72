/**
 * The domain controller's end of a MAR domain's control interface (abi.md §4.6), as xcs and
 * xend kept it in 2005: an interdomain event channel bound from dom0 when the domain is created
 * (the guest's end is start_info.domain_controller_evtchn, port 1), and the two rings in the
 * domain's shared_info page at +2048, which dom0 maps into its own address space.
 *
 * The controller writes requests into the rx ring (CMSG_CONSOLE input, CMSG_SHUTDOWN,
 * CMSG_MEM_REQUEST) and notifies; the guest answers each with a response carrying the same
 * type, subtype and id. Requests the guest makes on the tx ring go to whoever serves their
 * message type, as xcs passed them to the xend controller registered for the type: a handler
 * this one interface has (its console), else a service registered for the machine
 * (registerControlService: block and network backends), else they are echoed back unhandled
 * (length 0), as xcs did for types nobody had registered for.
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

/**
 * What a handler gives back for a guest's request: the response payload (at most 60 bytes),
 * nothing (an empty response), or a promise of either when the answer needs time (the
 * response goes on the ring when it settles; Linux's ctrl_if matches responses by id).
 */
export type ControlReply = Uint8Array | undefined | Promise<Uint8Array | undefined>;
export type ControlHandler = (msg: ControlMessage, ctrl: ControlInterface) => ControlReply;

/**
 * A module serving one message type on every MAR domain's control interface of a machine
 * (xend's controllers: console, blkif, netif, usbif).
 */
export interface ControlService {
  /** A request of this type the guest put on its tx ring. */
  message: ControlHandler;
  /** A domain's control interface came up (for domains already up, at registration). */
  connected?(ctrl: ControlInterface): void;
  /** It went away (the domain is being destroyed, saved or moved). */
  disconnected?(ctrl: ControlInterface): void;
}

/** The machine's services by message type and its connected interfaces. */
interface Registry {
  services: Map<number, ControlService>;
  interfaces: Set<ControlInterface>;
}
const registries = new WeakMap<Dom0, Registry>();

/** dom0's registry of services and interfaces, if it has one yet (checkpoint.ts keeps it). */
export function controlRegistry(dom0: Dom0): object | undefined {
  return registries.get(dom0);
}

function registryOf(dom0: Dom0): Registry {
  let r = registries.get(dom0);
  if (r === undefined) registries.set(dom0, (r = { services: new Map(), interfaces: new Set() }));
  return r;
}

/**
 * Serves message type `type` (a Cmsg value) on every control interface of dom0's machine, now
 * and later. One service per type; returns a function that unregisters it.
 */
export function registerControlService(dom0: Dom0, type: number, service: ControlService): () => void {
  if (!Number.isInteger(type) || type < 0 || type > 0xff)
    throw new RangeError(`message type ${type} is not a byte`);
  const r = registryOf(dom0);
  if (r.services.has(type)) throw new Error(`control message type ${type} is already served`);
  r.services.set(type, service);
  for (const ctrl of r.interfaces) service.connected?.(ctrl);
  return () => {
    if (r.services.get(type) === service) r.services.delete(type);
  };
}

/** The control interfaces connected on dom0's machine (for a service looking up a domain). */
export function controlInterfaces(dom0: Dom0): ControlInterface[] {
  return [...registryOf(dom0).interfaces];
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
  /** This interface's own handlers by type (its console), before the machine's services. */
  private readonly handlers = new Map<number, ControlHandler>();
  /** Our copy of the tx ring's response producer (the guest must not move it). */
  private txRspProd = 0;
  /** Our copy of the rx ring's request producer. */
  private rxReqProd = 0;
  /** Responses consumed on the rx ring. */
  private rxRspCons = 0;
  private txReqCons = 0;
  private closed = false;
  private everUsed = false;
  private readonly listener = (): void => this.poll();

  /**
   * Connects to domain domid whose control channel is dom0's port `port` (already bound):
   * maps its shared_info page and listens on the port. onConsole receives CMSG_CONSOLE text.
   */
  constructor(
    private readonly dom0: Dom0,
    readonly domid: number,
    readonly port: number,
    onConsole?: (bytes: Uint8Array) => void,
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
    if (onConsole !== undefined)
      this.register(Cmsg.CONSOLE, (m) => {
        if (m.subtype === CMSG_CONSOLE_DATA) onConsole(m.payload);
        return undefined;
      });
    dom0.onPort(port, this.listener);
    const r = registryOf(dom0);
    r.interfaces.add(this);
    for (const s of r.services.values()) this.guard("connect", () => s.connected?.(this));
  }

  get connected(): boolean {
    return !this.closed;
  }

  /**
   * The guest has used its interface: it put a request on the tx ring or answered one of
   * ours. Until then nobody may be listening (console input then goes elsewhere).
   */
  get active(): boolean {
    return this.everUsed && !this.closed;
  }

  /** Requests that can be put on the rx ring now without waiting for answers. */
  get freeRequestSlots(): number {
    return this.closed ? 0 : CONTROL_RING_SIZE - ((this.rxReqProd - this.rxRspCons) >>> 0);
  }

  /** Handles message type `type` on this interface only (before the machine's services). */
  register(type: number, handler: ControlHandler): void {
    this.handlers.set(type, handler);
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
    if (this.freeRequestSlots === 0)
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
      this.everUsed = true;
      const m = this.readMsg(ControlIf.rx_ring, this.rxRspCons);
      const done = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      done?.(m);
    }
    // The guest may fill the slots up to one ring ahead of the responses we have written
    // (answers still on their way free none).
    const reqProd = this.u32(ControlIf.tx_ring + CtrlSring.req_prod);
    const fresh = (reqProd - this.txReqCons) >>> 0;
    const room = (this.txRspProd + CONTROL_RING_SIZE - this.txReqCons) >>> 0;
    if (fresh > room) {
      this.fail(`claims ${fresh} new requests with room for ${room} on an 8-slot ring`);
      return;
    }
    const requests: ControlMessage[] = [];
    for (; this.txReqCons !== reqProd; this.txReqCons = (this.txReqCons + 1) >>> 0)
      requests.push(this.readMsg(ControlIf.tx_ring, this.txReqCons));
    if (requests.length > 0) this.everUsed = true;
    let answered = false;
    for (const m of requests) {
      const reply = this.dispatch(m);
      if (reply instanceof Promise)
        reply.then(
          (payload) => this.respond(m, payload, true),
          (e: unknown) => {
            this.onError(`domain ${this.domid}: control message type ${m.type} failed: ${String(e)}`);
            this.respond(m, undefined, true);
          },
        );
      else answered = this.respond(m, reply, false) || answered;
    }
    // One notification for the burst, as xcs sent.
    if (answered) xcEvtchnSend(this.dom0, this.port);
  }

  /** The handler's answer for one request; a handler that throws answers empty. */
  private dispatch(m: ControlMessage): ControlReply {
    const handler =
      this.handlers.get(m.type) ?? registryOf(this.dom0).services.get(m.type)?.message ?? (() => undefined);
    let reply: ControlReply;
    this.guard(`control message type ${m.type}`, () => {
      reply = handler(m, this);
    });
    return reply;
  }

  /**
   * Writes the response to a tx-ring request: type, subtype and id echoed, then the payload.
   * Returns whether it was written.
   */
  private respond(m: ControlMessage, payload: Uint8Array | undefined, notify: boolean): boolean {
    if (this.closed) return false;
    const body = payload ?? new Uint8Array(0);
    if (body.length > ControlMsg.MSG_MAX) {
      this.onError(
        `domain ${this.domid}: a response of ${body.length} bytes to type ${m.type} was cut to 60`,
      );
    }
    const n = Math.min(body.length, ControlMsg.MSG_MAX);
    const rsp = new Uint8Array(ControlMsg.msg + n);
    rsp.set([m.type, m.subtype, m.id, n]);
    rsp.set(body.subarray(0, n), ControlMsg.msg);
    const slot = ControlIf.tx_ring + CtrlSring.ring + (this.txRspProd % CONTROL_RING_SIZE) * ControlMsg.SIZE;
    this.dom0.write(this.base + slot, rsp);
    this.txRspProd = (this.txRspProd + 1) >>> 0;
    this.setU32(ControlIf.tx_ring + CtrlSring.rsp_prod, this.txRspProd);
    if (notify) xcEvtchnSend(this.dom0, this.port);
    return true;
  }

  /** Unmaps the rings and closes dom0's port (before the domain is destroyed). */
  disconnect(): void {
    if (this.closed) return;
    this.closed = true;
    const r = registryOf(this.dom0);
    r.interfaces.delete(this);
    for (const s of r.services.values()) this.guard("disconnect", () => s.disconnected?.(this));
    xcUnmapForeignFrame(this.dom0, this.sharedVa);
    xcEvtchnClose(this.dom0, this.port);
    this.dom0.offPort(this.port, this.listener);
    for (const done of this.waiting.values()) done(null);
    this.waiting.clear();
  }

  /** Runs a handler's code: what it throws is logged, never carried into the run loop. */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.onError(`domain ${this.domid}: ${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
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
