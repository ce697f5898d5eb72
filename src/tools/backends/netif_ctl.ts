/**
 * The controller's side of a domain's virtual network interfaces: what xend's netif.py did in
 * 2005, between the guest's netfront (CMSG_NETIF_FE over its control interface) and dom0's
 * netback (CMSG_NETIF_BE messages, netback.ts).
 *
 * Each vif (handle 0, 1, ... in the order configured) is created in the backend with its MAC
 * and put on its bridge. The frontend says its driver is UP; every vif is announced
 * DISCONNECTED (with its MAC); the frontend gives its transmit and receive pages
 * (INTERFACE_CONNECT); the controller binds an event channel between dom0 and the domain,
 * connects the backend (BE_CONNECT) and tells the frontend CONNECTED with its end of the
 * channel, or CLOSED when the backend could not map the pages.
 */
import {
  Cmsg,
  CmsgNetifBe,
  CmsgNetifFe,
  DriverStatus,
  FeDriverStatus,
  FeInterfaceDisconnect,
  IfStatus,
  NetifBeConnect,
  NetifBeCreate,
  NetifBeIf,
  NetifBeStatus,
  NetifFeInterfaceConnect,
  NetifFeInterfaceQuery,
  NetifFeInterfaceStatus,
} from "../../public/control_if.js";
import type { VifSpec } from "../config.js";
import type { ControlInterface, ControlMessage } from "../control_if.js";
import type { Dom0 } from "../dom0.js";
import { xcEvtchnClose } from "../xc.js";
import { bindBackendChannel, ControllerRegistry, sendBeMessage } from "./common.js";
import { type NetBack, netbackOf, noVifStats, type VifStats } from "./netback.js";

const BACKEND_DOMID = 0;
const STATUS_NAMES = [
  "Okay",
  "Non-specific error",
  "Interface already exists",
  "Interface not found",
  "Interface is still connected",
  "Out of memory",
  "Could not map domain memory",
];

/** One row of xm network-list. */
export interface NetworkDevice extends VifStats {
  handle: number;
  vif: string;
  mac: string;
  bridge: string;
  state: "connected" | "disconnected" | "closed";
}

interface Vif {
  spec: VifSpec;
  ports: [number, number] | null;
  state: number;
}

const controllers = new ControllerRegistry<NetBack, NetifController>((c, handle) => c.ringFailed(handle));

export class NetifController {
  readonly back: NetBack;
  private readonly vifs = new Map<number, Vif>();
  private driverUp = false;

  constructor(
    private readonly dom0: Dom0,
    readonly domid: number,
    private readonly control: ControlInterface | null,
    private readonly log: (m: string) => void = () => {},
  ) {
    this.back = netbackOf(dom0, log);
    controllers.add(this.back, domid, this);
    control?.register(Cmsg.NETIF_FE, (m) => this.receive(m));
  }

  /** xm network-attach (and vif = [...] at creation): returns the new vif's handle. */
  attach(spec: VifSpec): number {
    let handle = 0;
    while (this.vifs.has(handle)) handle++;
    for (const v of this.vifs.values())
      if (v.spec.mac === spec.mac)
        throw new Error(`domain ${this.domid} already has a vif with MAC ${spec.mac}`);
    const st = this.be(CmsgNetifBe.CREATE, NetifBeCreate.SIZE, NetifBeCreate.status, handle, (dv) => {
      for (const [i, b] of macBytes(spec.mac).entries()) dv.setUint8(NetifBeCreate.mac + i, b);
    });
    if (st !== NetifBeStatus.OKAY)
      throw new Error(
        `the network backend could not create vif${this.domid}.${handle}: ${STATUS_NAMES[st] ?? st}`,
      );
    this.back.setBridge(this.domid, handle, spec.bridge);
    this.vifs.set(handle, { spec, ports: null, state: IfStatus.DISCONNECTED });
    if (this.driverUp) this.tell(handle, IfStatus.DISCONNECTED);
    return handle;
  }

  /** xm network-detach: by handle (the vif's index) or MAC. */
  detach(which: string): void {
    const handle = this.find(which);
    this.disconnectRing(handle);
    this.back.setBridge(this.domid, handle, null);
    this.be(CmsgNetifBe.DESTROY, NetifBeIf.SIZE, NetifBeIf.status, handle, () => {});
    this.vifs.delete(handle);
    if (this.driverUp) this.tell(handle, IfStatus.CLOSED);
  }

  list(): NetworkDevice[] {
    return [...this.vifs.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([handle, v]) => ({
        handle,
        vif: `vif${this.domid}.${handle}`,
        mac: v.spec.mac,
        bridge: v.spec.bridge,
        state:
          v.state === IfStatus.CONNECTED
            ? "connected"
            : v.state === IfStatus.CLOSED
              ? "closed"
              : "disconnected",
        ...(this.back.status(this.domid, handle)?.stats ?? noVifStats()),
      }));
  }

  specs(): VifSpec[] {
    return [...this.vifs.values()].map((v) => v.spec);
  }

  destroy(): void {
    for (const handle of [...this.vifs.keys()]) {
      this.disconnectRing(handle);
      this.back.setBridge(this.domid, handle, null);
      this.be(CmsgNetifBe.DESTROY, NetifBeIf.SIZE, NetifBeIf.status, handle, () => {});
    }
    this.vifs.clear();
    controllers.remove(this.back, this.domid);
  }

  private find(which: string): number {
    const t = which.trim().toLowerCase();
    for (const [h, v] of this.vifs) if (String(h) === t || v.spec.mac === t) return h;
    const have = [...this.vifs.entries()].map(([h, v]) => `${h} (${v.spec.mac})`);
    throw new Error(
      `domain ${this.domid} has no vif ${which}${have.length > 0 ? `; it has ${have.join(", ")}` : ""}`,
    );
  }

  // ------------------------------------------------------------------ the frontend's messages

  private receive(m: ControlMessage): Uint8Array | undefined {
    const dv = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.length);
    const len = m.payload.length;
    switch (m.subtype) {
      case CmsgNetifFe.DRIVER_STATUS: {
        if (len !== FeDriverStatus.SIZE) return undefined;
        this.driverUp = dv.getUint32(FeDriverStatus.status, true) === DriverStatus.UP;
        for (const h of this.vifs.keys()) {
          this.disconnectRing(h);
          if (this.driverUp) this.tell(h, IfStatus.DISCONNECTED);
        }
        // As xend: after the interfaces, the driver status UP with their number, which netfront
        // waits for before it counts its interfaces connected.
        if (this.driverUp) this.tellDriverUp();
        const out = m.payload.slice();
        new DataView(out.buffer).setUint32(FeDriverStatus.max_handle, Math.max(0, ...this.vifs.keys()), true);
        return out;
      }
      case CmsgNetifFe.INTERFACE_CONNECT:
        if (len !== NetifFeInterfaceConnect.SIZE) return undefined;
        this.connect(
          dv.getUint32(NetifFeInterfaceConnect.handle, true),
          dv.getUint32(NetifFeInterfaceConnect.tx_shmem_frame, true),
          dv.getUint32(NetifFeInterfaceConnect.rx_shmem_frame, true),
        );
        return m.payload;
      case CmsgNetifFe.INTERFACE_DISCONNECT: {
        if (len !== FeInterfaceDisconnect.SIZE) return undefined;
        const h = dv.getUint32(FeInterfaceDisconnect.handle, true);
        if (this.vifs.has(h)) {
          this.disconnectRing(h);
          this.tell(h, IfStatus.DISCONNECTED);
        }
        return m.payload;
      }
      case CmsgNetifFe.INTERFACE_QUERY: {
        if (len !== NetifFeInterfaceQuery.SIZE) return undefined;
        return this.statusBytes(dv.getUint32(NetifFeInterfaceQuery.handle, true), undefined);
      }
      default:
        return undefined;
    }
  }

  private connect(handle: number, txFrame: number, rxFrame: number): void {
    const v = this.vifs.get(handle);
    if (v === undefined) {
      this.log(`netif: domain ${this.domid} asked to connect vif ${handle}, which it does not have`);
      return;
    }
    this.disconnectRing(handle);
    const ports = bindBackendChannel(this.dom0, this.domid);
    const st = this.be(CmsgNetifBe.CONNECT, NetifBeConnect.SIZE, NetifBeConnect.status, handle, (dv) => {
      dv.setUint32(NetifBeConnect.tx_shmem_frame, txFrame, true);
      dv.setUint32(NetifBeConnect.rx_shmem_frame, rxFrame, true);
      dv.setUint16(NetifBeConnect.evtchn, ports[0], true);
    });
    if (st !== NetifBeStatus.OKAY) {
      xcEvtchnClose(this.dom0, ports[0]);
      this.log(`netif: vif${this.domid}.${handle}'s rings refused: ${STATUS_NAMES[st] ?? st}`);
      this.tell(handle, IfStatus.CLOSED);
      return;
    }
    v.ports = ports;
    this.tell(handle, IfStatus.CONNECTED);
  }

  /** The backend dropped the vif's rings: the frontend must connect again. */
  ringFailed(handle: number): void {
    if (!this.vifs.has(handle)) return;
    this.disconnectRing(handle);
    this.tell(handle, IfStatus.DISCONNECTED);
  }

  private disconnectRing(handle: number): void {
    const v = this.vifs.get(handle);
    if (v === undefined || v.ports === null) return;
    this.be(CmsgNetifBe.DISCONNECT, NetifBeIf.SIZE, NetifBeIf.status, handle, () => {});
    xcEvtchnClose(this.dom0, v.ports[0]);
    v.ports = null;
    v.state = IfStatus.DISCONNECTED;
  }

  /** netif_fe_interface_status_t for a vif (status given, or its current one). */
  private statusBytes(handle: number, status: number | undefined): Uint8Array {
    const v = this.vifs.get(handle);
    const msg = new Uint8Array(NetifFeInterfaceStatus.SIZE);
    const dv = new DataView(msg.buffer);
    const st = status ?? v?.state ?? IfStatus.CLOSED;
    dv.setUint32(NetifFeInterfaceStatus.handle, handle, true);
    dv.setUint32(NetifFeInterfaceStatus.status, st, true);
    dv.setUint16(NetifFeInterfaceStatus.evtchn, st === IfStatus.CONNECTED && v?.ports ? v.ports[1] : 0, true);
    if (v !== undefined) msg.set(macBytes(v.spec.mac), NetifFeInterfaceStatus.mac);
    dv.setUint16(NetifFeInterfaceStatus.domid, BACKEND_DOMID, true);
    return msg;
  }

  private tell(handle: number, status: number): void {
    const v = this.vifs.get(handle);
    if (v !== undefined) v.state = status;
    if (this.control === null || !this.control.connected) return;
    try {
      void this.control.request(
        Cmsg.NETIF_FE,
        CmsgNetifFe.INTERFACE_STATUS,
        this.statusBytes(handle, status),
      );
    } catch (e) {
      this.log(`netif: domain ${this.domid} not told vif ${handle}'s status: ${(e as Error).message}`);
    }
  }

  private tellDriverUp(): void {
    if (this.control === null || !this.control.connected) return;
    const msg = new Uint8Array(FeDriverStatus.SIZE);
    const dv = new DataView(msg.buffer);
    dv.setUint32(FeDriverStatus.status, DriverStatus.UP, true);
    dv.setUint32(FeDriverStatus.max_handle, this.vifs.size, true);
    try {
      void this.control.request(Cmsg.NETIF_FE, CmsgNetifFe.DRIVER_STATUS, msg);
    } catch (e) {
      this.log(`netif: domain ${this.domid} not told the driver status: ${(e as Error).message}`);
    }
  }

  private be(
    subtype: number,
    size: number,
    statusOff: number,
    handle: number,
    fill: (dv: DataView) => void,
  ): number {
    return sendBeMessage(
      (st, msg) => this.back.control(st, msg),
      subtype,
      size,
      statusOff,
      this.domid,
      handle,
      fill,
      NetifBeStatus.ERROR,
    );
  }
}

/** "00:16:3e:01:02:03" as six bytes. */
export function macBytes(mac: string): number[] {
  return mac.split(":").map((x) => Number.parseInt(x, 16));
}
