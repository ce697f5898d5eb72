/**
 * netback: the network backend driver of dom0 (XenLinux's drivers/xen/netback of March 2005),
 * one vif per frontend interface, each a port of a bridge (bridge.ts).
 *
 * Driven, as in Xen, by CMSG_NETIF_BE control messages from the controller (netif_ctl.ts):
 * create/destroy an interface (with its MAC), connect it to the frontend's transmit and receive
 * pages and event channel, disconnect it, set its credit limit.
 *
 * Transmit (guest -> bridge): each request names a frame in the guest's memory by machine
 * address; dom0 maps that frame read-only through mmu_update with the guest as the foreign
 * domain, copies the packet, unmaps it and answers. A runt (< 14 bytes), an oversized frame
 * (> 1514), one crossing its page, or a frame Xen will not map is answered NETIF_RSP_ERROR and
 * counted; ring indices that make no sense disconnect the interface.
 *
 * Receive (bridge -> guest) is page flipping, as netback did it: the guest posts request ids
 * only; for each packet dom0 takes a fresh page of its own (dom_mem_op increase_reservation),
 * writes the packet into it through a window, and gives the page to the guest
 * (MMUEXT_REASSIGN_PAGE); the response carries the page's machine address and the size. A
 * packet for a guest with no buffer posted is dropped and counted.
 */
import {
  CmsgNetifBe,
  NetifBeConnect,
  NetifBeCreate,
  NetifBeCreditLimit,
  NetifBeIf,
  NetifBeStatus,
} from "../../public/control_if.js";
import {
  ETH_ALEN,
  ETH_FRAME_LEN,
  ETH_HLEN,
  NETIF_RX_RING_SIZE,
  NETIF_TX_RING_SIZE,
  NetifRsp,
  NetifRxRequest,
  NetifRxResponse,
  NetifRxRing,
  NetifTxRequest,
  NetifTxResponse,
  NetifTxRing,
} from "../../public/netif.js";
import type { Dom0 } from "../dom0.js";
import {
  xcAllocOwnPages,
  xcDomainGetInfo,
  xcEvtchnSend,
  xcMapForeignFrame,
  xcReassignPage,
  xcSetMaxMem,
  xcUnmapForeignFrame,
} from "../xc.js";
import { type Bridge, type BridgePort, bridgeOf } from "./bridge.js";
import { openBeMessage, perDom0, readU32, writeU32 } from "./common.js";

const PAGE = 4096;
/** dom0's own domain id: its fresh pages are mapped with itself as the foreign domain. */
const DOM0 = 0;
/** Where a received packet starts in its page (Linux's skb headroom, 16 bytes + 2 to align IP). */
const RX_OFFSET = 18;
/** Pages dom0 may take for receive buffers beyond its own (netback's driver allowance). */
const RX_ALLOWANCE = NETIF_RX_RING_SIZE;

/** Counters of one vif, from the bridge's point of view as Linux's vifN.M showed them. */
export interface VifStats {
  /** Frames the guest sent and the bridge took. */
  txPackets: number;
  txBytes: number;
  /** Guest transmit requests refused (bad size, crossing a page, a frame Xen would not map). */
  txErrors: number;
  /**
   * Frames dropped for their source MAC: not the vif's own (or a broadcast/multicast one). The
   * guest is answered NETIF_RSP_OKAY, as behind later Xen's vif-bridge antispoof filter.
   */
  txSpoofed: number;
  rxPackets: number;
  rxBytes: number;
  /** Frames for the guest dropped: no receive buffer posted, or the flip failed. */
  rxDropped: number;
}

/** A vif's counters before its first frame. */
export function noVifStats(): VifStats {
  return { txPackets: 0, txBytes: 0, txErrors: 0, txSpoofed: 0, rxPackets: 0, rxBytes: 0, rxDropped: 0 };
}

interface Netif {
  domid: number;
  handle: number;
  mac: Uint8Array;
  connected: boolean;
  txVa: number;
  rxVa: number;
  evtchn: number;
  txReqCons: number;
  txRespProd: number;
  rxReqCons: number;
  rxRespProd: number;
  bridge: Bridge | null;
  port: BridgePort;
  listener: () => void;
  stats: VifStats;
}

export class NetBack {
  private readonly ifs = new Map<string, Netif>();
  /** Fresh pages of dom0's waiting to carry a received packet (alloc_mfn's list). */
  private readonly pool: number[] = [];
  private allowanceSet = false;
  /** Called when a frontend's rings made no sense and the interface was disconnected. */
  onRingError: (domid: number, handle: number, why: string) => void = () => {};

  constructor(
    private readonly dom0: Dom0,
    private readonly log: (m: string) => void = () => {},
  ) {}

  /** One CMSG_NETIF_BE message: returns it with its status set (length 0 for a bad length). */
  control(subtype: number, msg: Uint8Array): Uint8Array {
    const sizes: Record<number, number> = {
      [CmsgNetifBe.CREATE]: NetifBeCreate.SIZE,
      [CmsgNetifBe.DESTROY]: NetifBeIf.SIZE,
      [CmsgNetifBe.CONNECT]: NetifBeConnect.SIZE,
      [CmsgNetifBe.DISCONNECT]: NetifBeIf.SIZE,
      [CmsgNetifBe.CREDITLIMIT]: NetifBeCreditLimit.SIZE,
    };
    const m = openBeMessage(sizes, subtype, msg);
    if (m === null) return new Uint8Array(0);
    const { out, dv, domid, handle, put } = m;
    const key = `${domid}/${handle}`;
    const n = this.ifs.get(key);
    const S = NetifBeStatus;
    switch (subtype) {
      case CmsgNetifBe.CREATE: {
        if (n !== undefined) return put(NetifBeCreate.status, S.INTERFACE_EXISTS);
        const netif: Netif = {
          domid,
          handle,
          mac: out.slice(NetifBeCreate.mac, NetifBeCreate.mac + 6),
          connected: false,
          txVa: 0,
          rxVa: 0,
          evtchn: 0,
          txReqCons: 0,
          txRespProd: 0,
          rxReqCons: 0,
          rxRespProd: 0,
          bridge: null,
          port: { name: `vif${domid}.${handle}`, deliver: (f) => this.receive(key, f) },
          listener: () => this.transmit(key),
          stats: noVifStats(),
        };
        this.ifs.set(key, netif);
        return put(NetifBeCreate.status, S.OKAY);
      }
      case CmsgNetifBe.DESTROY:
        if (n === undefined) return put(NetifBeIf.status, S.INTERFACE_NOT_FOUND);
        if (n.connected) return put(NetifBeIf.status, S.INTERFACE_CONNECTED);
        n.bridge?.detach(n.port);
        this.ifs.delete(key);
        return put(NetifBeIf.status, S.OKAY);
      case CmsgNetifBe.CONNECT:
        if (n === undefined) return put(NetifBeConnect.status, S.INTERFACE_NOT_FOUND);
        if (n.connected) return put(NetifBeConnect.status, S.INTERFACE_CONNECTED);
        return put(
          NetifBeConnect.status,
          this.connect(
            n,
            dv.getUint32(NetifBeConnect.tx_shmem_frame, true),
            dv.getUint32(NetifBeConnect.rx_shmem_frame, true),
            dv.getUint16(NetifBeConnect.evtchn, true),
          ),
        );
      case CmsgNetifBe.DISCONNECT:
        if (n === undefined) return put(NetifBeIf.status, S.INTERFACE_NOT_FOUND);
        this.disconnect(n);
        return put(NetifBeIf.status, S.OKAY);
      default:
        // CREDITLIMIT: accepted; tsxen does not shape transmit bandwidth.
        return put(NetifBeCreditLimit.status, n === undefined ? S.INTERFACE_NOT_FOUND : S.OKAY);
    }
  }

  /** Puts the interface on a bridge (xend's vif-bridge script: brctl addif). */
  setBridge(domid: number, handle: number, bridge: string | null): void {
    const n = this.ifs.get(`${domid}/${handle}`);
    if (n === undefined) throw new Error(`no vif${domid}.${handle}`);
    n.bridge?.detach(n.port);
    n.bridge = bridge === null ? null : bridgeOf(this.dom0, bridge);
    n.bridge?.attach(n.port);
  }

  status(domid: number, handle: number): { connected: boolean; stats: VifStats } | undefined {
    const n = this.ifs.get(`${domid}/${handle}`);
    return n === undefined ? undefined : { connected: n.connected, stats: { ...n.stats } };
  }

  private connect(n: Netif, txFrame: number, rxFrame: number, evtchn: number): number {
    let tx: number | undefined;
    try {
      tx = xcMapForeignFrame(this.dom0, n.domid, txFrame);
      const rx = xcMapForeignFrame(this.dom0, n.domid, rxFrame);
      n.txVa = tx;
      n.rxVa = rx;
    } catch (e) {
      if (tx !== undefined) xcUnmapForeignFrame(this.dom0, tx);
      this.log(`netback: domain ${n.domid}'s ring frames cannot be mapped: ${(e as Error).message}`);
      return NetifBeStatus.MAPPING_ERROR;
    }
    // As netif_connect: the response producers start at 0; the request side is the guest's.
    this.setU32(n.txVa + NetifTxRing.resp_prod, 0);
    this.setU32(n.rxVa + NetifRxRing.resp_prod, 0);
    n.txReqCons = n.txRespProd = n.rxReqCons = n.rxRespProd = 0;
    n.evtchn = evtchn;
    n.connected = true;
    this.dom0.onPort(evtchn, n.listener);
    return NetifBeStatus.OKAY;
  }

  private disconnect(n: Netif): void {
    if (!n.connected) return;
    n.connected = false;
    this.dom0.offPort(n.evtchn, n.listener);
    xcUnmapForeignFrame(this.dom0, n.txVa);
    xcUnmapForeignFrame(this.dom0, n.rxVa);
  }

  private ringError(n: Netif, why: string): void {
    this.log(`netback: vif${n.domid}.${n.handle} ${why}; disconnected`);
    this.disconnect(n);
    this.onRingError(n.domid, n.handle, why);
  }

  // ------------------------------------------------------------------ transmit

  /** The frontend notified: take every transmit request, answer each, pass good frames on. */
  private transmit(key: string): void {
    const n = this.ifs.get(key);
    if (n === undefined || !n.connected) return;
    const frames: Uint8Array[] = [];
    let notify = false;
    try {
      const rp = this.u32(n.txVa + NetifTxRing.req_prod);
      if ((rp - n.txReqCons) >>> 0 > NETIF_TX_RING_SIZE) {
        this.ringError(
          n,
          `claims ${(rp - n.txReqCons) >>> 0} transmit requests on a ${NETIF_TX_RING_SIZE}-slot ring`,
        );
        return;
      }
      for (; n.txReqCons !== rp; ) {
        const slot = n.txVa + NetifTxRing.ring + (n.txReqCons % NETIF_TX_RING_SIZE) * NetifTxRing.ENTRY;
        const req = new DataView(this.dom0.read(slot, NetifTxRequest.SIZE).buffer);
        n.txReqCons = (n.txReqCons + 1) >>> 0;
        this.setU32(n.txVa + NetifTxRing.req_cons, n.txReqCons);
        const addr = req.getUint32(NetifTxRequest.addr, true);
        const size = req.getUint16(NetifTxRequest.size, true);
        const frame = this.copyTx(n, addr, size);
        if (frame === null) n.stats.txErrors++;
        else frames.push(frame);
        notify =
          this.txResponse(
            n,
            req.getUint16(NetifTxRequest.id, true),
            frame === null ? NetifRsp.ERROR : NetifRsp.OKAY,
          ) || notify;
      }
    } catch (e) {
      this.ringError(n, `could not be served: ${(e as Error).message}`);
      return;
    }
    if (notify) xcEvtchnSend(this.dom0, n.evtchn);
    for (const f of frames) {
      // The one place a guest's frame enters a bridge: a vif sends from its own MAC only, or it
      // would draw another vif's frames (the bridge learns source MACs) and the uplink's replies
      // (passt.ts follows the MAC it last heard from). DEVIATIONS.md.
      if (!sameMac(f, n.mac)) {
        n.stats.txSpoofed++;
        continue;
      }
      n.stats.txPackets++;
      n.stats.txBytes += f.length;
      n.bridge?.send(n.port, f);
    }
  }

  /** The packet of one transmit request, or null when it is bad (net_tx_action's checks). */
  private copyTx(n: Netif, addr: number, size: number): Uint8Array | null {
    if (size < ETH_HLEN || size > ETH_FRAME_LEN) return null;
    // No crossing a page boundary: the payload must not fragment.
    if ((addr % PAGE) + size >= PAGE) return null;
    let va: number;
    try {
      va = xcMapForeignFrame(this.dom0, n.domid, addr >>> 12, false);
    } catch {
      return null;
    }
    try {
      return this.dom0.read(va + (addr % PAGE), size);
    } finally {
      xcUnmapForeignFrame(this.dom0, va);
    }
  }

  /** make_tx_response: true when the frontend asked to be told at this index. */
  private txResponse(n: Netif, id: number, status: number): boolean {
    const r = new Uint8Array(NetifTxResponse.SIZE);
    const dv = new DataView(r.buffer);
    dv.setUint16(NetifTxResponse.id, id, true);
    dv.setInt8(NetifTxResponse.status, status);
    this.dom0.write(n.txVa + NetifTxRing.ring + (n.txRespProd % NETIF_TX_RING_SIZE) * NetifTxRing.ENTRY, r);
    n.txRespProd = (n.txRespProd + 1) >>> 0;
    this.setU32(n.txVa + NetifTxRing.resp_prod, n.txRespProd);
    return n.txRespProd === this.u32(n.txVa + NetifTxRing.event);
  }

  // ------------------------------------------------------------------ receive

  /** A frame from the bridge for this vif: flip a page holding it to the guest. */
  private receive(key: string, frame: Uint8Array): void {
    const n = this.ifs.get(key);
    if (n === undefined || !n.connected) return;
    try {
      const rp = this.u32(n.rxVa + NetifRxRing.req_prod);
      if ((rp - n.rxReqCons) >>> 0 > NETIF_RX_RING_SIZE) {
        this.ringError(
          n,
          `claims ${(rp - n.rxReqCons) >>> 0} receive buffers on a ${NETIF_RX_RING_SIZE}-slot ring`,
        );
        return;
      }
      // No buffer posted (or every posted one is answered already): the packet is dropped.
      if (rp === n.rxReqCons || frame.length + RX_OFFSET > PAGE) {
        n.stats.rxDropped++;
        return;
      }
      const slot = (i: number): number =>
        n.rxVa + NetifRxRing.ring + (i % NETIF_RX_RING_SIZE) * NetifRxRing.ENTRY;
      const id = new DataView(this.dom0.read(slot(n.rxReqCons) + NetifRxRequest.id, 2).buffer).getUint16(
        0,
        true,
      );
      n.rxReqCons = (n.rxReqCons + 1) >>> 0;
      const mfn = this.flip(n, frame);
      const r = new Uint8Array(NetifRxResponse.SIZE);
      const dv = new DataView(r.buffer);
      dv.setUint32(NetifRxResponse.addr, mfn === null ? 0 : mfn * PAGE + RX_OFFSET, true);
      dv.setUint16(NetifRxResponse.id, id, true);
      dv.setInt16(NetifRxResponse.status, mfn === null ? NetifRsp.ERROR : frame.length, true);
      this.dom0.write(slot(n.rxRespProd), r);
      n.rxRespProd = (n.rxRespProd + 1) >>> 0;
      this.setU32(n.rxVa + NetifRxRing.resp_prod, n.rxRespProd);
      if (mfn === null) n.stats.rxDropped++;
      else {
        n.stats.rxPackets++;
        n.stats.rxBytes += frame.length;
      }
      if (n.rxRespProd === this.u32(n.rxVa + NetifRxRing.event)) xcEvtchnSend(this.dom0, n.evtchn);
    } catch (e) {
      this.ringError(n, `could not be served: ${(e as Error).message}`);
    }
  }

  /** Writes the frame into a fresh page of dom0's and gives the page to the guest; its MFN. */
  private flip(n: Netif, frame: Uint8Array): number | null {
    const mfn = this.freshPage();
    if (mfn === null) return null;
    const va = xcMapForeignFrame(this.dom0, DOM0, mfn);
    try {
      const page = new Uint8Array(PAGE);
      page.set(frame, RX_OFFSET);
      this.dom0.write(va, page);
    } finally {
      xcUnmapForeignFrame(this.dom0, va);
    }
    try {
      xcReassignPage(this.dom0, mfn, n.domid);
      return mfn;
    } catch {
      // The guest is going away: the page stays dom0's for the next packet.
      this.pool.push(mfn);
      return null;
    }
  }

  private freshPage(): number | null {
    if (this.pool.length === 0) {
      if (!this.allowanceSet) {
        // balloon_update_driver_allowance: dom0 may hold a ring's worth of extra pages.
        const info = xcDomainGetInfo(this.dom0, DOM0);
        if (info !== null) xcSetMaxMem(this.dom0, DOM0, (info.maxPages + RX_ALLOWANCE) * 4);
        this.allowanceSet = true;
      }
      this.pool.push(...xcAllocOwnPages(this.dom0, 16));
    }
    return this.pool.pop() ?? null;
  }

  private u32(va: number): number {
    return readU32(this.dom0, va);
  }

  private setU32(va: number, v: number): void {
    writeU32(this.dom0, va, v);
  }
}

/**
 * Whether the frame's source MAC is `mac`, the vif's own: a unicast MAC (the configuration
 * refuses others), so broadcast and multicast sources are refused too.
 */
function sameMac(frame: Uint8Array, mac: Uint8Array): boolean {
  for (let i = 0; i < ETH_ALEN; i++) if (frame[ETH_ALEN + i] !== mac[i]) return false;
  return true;
}

/** dom0's one netback driver (made on first use). */
export const netbackOf = perDom0((dom0, log) => new NetBack(dom0, log));
