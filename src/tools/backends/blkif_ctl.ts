/**
 * The controller's side of a domain's virtual block devices: what xend's blkif.py did in 2005,
 * between the frontend (the guest's blkfront, over its control interface) and the backend
 * driver (blkback.ts, over CMSG_BLKIF_BE messages).
 *
 * - Attaching a disk binds its image as a loop device, creates the backend interface (handle
 *   0) once, then a VBD on it and grows the VBD by the whole device (VBD_CREATE, VBD_GROW).
 * - The frontend says its driver is UP (CMSG_BLKIF_FE_DRIVER_STATUS); the controller tells it
 *   its interface exists but is DISCONNECTED. The frontend gives its ring frame
 *   (INTERFACE_CONNECT); the controller binds an event channel between dom0 and the domain,
 *   connects the backend to the ring (BE_CONNECT) and tells the frontend CONNECTED with its
 *   end of the channel. A disk attached or detached later is announced as CHANGED, after
 *   which the frontend probes again.
 * - An image one domain has read-write is refused to any other, and one any domain has is
 *   refused read-write (xend's check), unless the mode ends in "!".
 */
import { statSync } from "node:fs";
import {
  BlkifBeConnect,
  BlkifBeIf,
  BlkifBeStatus,
  BlkifBeVbd,
  BlkifBeVbdCreate,
  BlkifBeVbdGrow,
  BlkifFeInterfaceConnect,
  BlkifFeInterfaceQuery,
  BlkifFeInterfaceStatus,
  Cmsg,
  CmsgBlkifBe,
  CmsgBlkifFe,
  DriverStatus,
  FeDriverStatus,
  FeInterfaceDisconnect,
  IfStatus,
} from "../../public/control_if.js";
import type { DiskSpec } from "../config.js";
import type { ControlInterface, ControlMessage } from "../control_if.js";
import type { Dom0 } from "../dom0.js";
import { xcEvtchnClose } from "../xc.js";
import { type BlkBack, blkbackOf, type LoopDevice } from "./blkback.js";
import { bindBackendChannel, ControllerRegistry, sendBeMessage } from "./common.js";
import { blkdevNameToNumber, blkdevNumberToName } from "./vdev.js";

/** The one interface handle xend gave each domain's block devices. */
const HANDLE = 0;
/** The backend runs in dom0. */
const BACKEND_DOMID = 0;
const STATUS_NAMES = [
  "Okay",
  "Non-specific error",
  "Interface already exists",
  "Interface not found",
  "Interface is still connected",
  "VBD already exists",
  "VBD not found",
  "Out of memory",
  "Extent not found for VBD",
  "Could not map domain memory",
];

/** One row of xm block-list. */
export interface BlockDevice {
  dev: string;
  vdev: number;
  path: string;
  mode: "r" | "w";
  sectors: number;
  /** The frontend's ring: connected, disconnected (waiting for it), or closed (refused). */
  state: "connected" | "disconnected" | "closed";
  okay: number;
  errors: number;
}

const controllers = new ControllerRegistry<BlkBack, BlkifController>((c, handle) => {
  if (handle === HANDLE) c.ringFailed();
});

export class BlkifController {
  readonly back: BlkBack;
  private readonly devices = new Map<number, { spec: DiskSpec; loop: LoopDevice }>();
  private beCreated = false;
  private driverUp = false;
  /** dom0's and the guest's ends of the ring's event channel, while connected. */
  private ports: [number, number] | null = null;
  private state: number = IfStatus.CLOSED;

  constructor(
    private readonly dom0: Dom0,
    readonly domid: number,
    private readonly control: ControlInterface | null,
    private readonly log: (m: string) => void = () => {},
  ) {
    this.back = blkbackOf(dom0, log);
    controllers.add(this.back, domid, this);
    control?.register(Cmsg.BLKIF_FE, (m) => this.receive(m));
  }

  /** xm block-attach (and disk = [...] at creation). Throws an Error meant for a person. */
  attach(spec: DiskSpec): void {
    if (this.devices.has(spec.vdev)) throw new Error(`domain ${this.domid} already has a disk ${spec.dev}`);
    let identity: string;
    try {
      const st = statSync(spec.path);
      identity = `${st.dev}:${st.ino}`;
    } catch (e) {
      throw new Error(
        `cannot open disk image ${spec.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    if (!spec.force) this.checkSharing(spec, identity);
    const loop = this.back.bindFile(spec.path, spec.writable);
    let created = false;
    try {
      if (!this.beCreated) {
        const st = this.be(CmsgBlkifBe.CREATE, BlkifBeIf.SIZE, BlkifBeIf.status, () => {});
        if (st !== BlkifBeStatus.OKAY && st !== BlkifBeStatus.INTERFACE_EXISTS)
          throw beError("create the interface", st);
        this.beCreated = created = true;
        this.state = IfStatus.DISCONNECTED;
      }
      let st = this.be(CmsgBlkifBe.VBD_CREATE, BlkifBeVbdCreate.SIZE, BlkifBeVbdCreate.status, (dv) => {
        dv.setUint16(BlkifBeVbdCreate.vdevice, spec.vdev, true);
        dv.setUint16(BlkifBeVbdCreate.readonly, spec.writable ? 0 : 1, true);
      });
      if (st !== BlkifBeStatus.OKAY) throw beError(`create ${spec.dev}`, st);
      st = this.be(CmsgBlkifBe.VBD_GROW, BlkifBeVbdGrow.SIZE, BlkifBeVbdGrow.status, (dv) => {
        dv.setBigUint64(BlkifBeVbdGrow.sector_start, 0n, true);
        // The whole device: the backend clamps the length to its size, as xend relied on.
        dv.setBigUint64(BlkifBeVbdGrow.sector_length, 1n << 63n, true);
        dv.setUint32(BlkifBeVbdGrow.device, loop.pdev, true);
        dv.setUint16(BlkifBeVbdGrow.vdevice, spec.vdev, true);
      });
      if (st !== BlkifBeStatus.OKAY) {
        this.destroyVbd(spec.vdev);
        throw beError(`add ${spec.path} to ${spec.dev}`, st);
      }
    } catch (e) {
      this.back.unbindFile(loop.pdev);
      throw e;
    }
    this.devices.set(spec.vdev, { spec, loop });
    // A frontend already up learns of it: a new interface to connect, or a changed one to probe.
    if (this.state === IfStatus.CONNECTED) this.tell(IfStatus.CHANGED);
    else if (created && this.driverUp) this.tell(IfStatus.DISCONNECTED);
  }

  /** xm block-detach: the VBD goes, its image is closed, a connected frontend probes again. */
  detach(dev: string): void {
    const vdev = blkdevNameToNumber(dev);
    const d = vdev === null ? undefined : this.devices.get(vdev);
    if (vdev === null || d === undefined) {
      const have = [...this.devices.values()]
        .sort((a, b) => a.spec.vdev - b.spec.vdev)
        .map((x) => x.spec.dev);
      throw new Error(
        `domain ${this.domid} has no disk ${dev}${have.length > 0 ? `; it has ${have.join(", ")}` : ""}`,
      );
    }
    this.destroyVbd(vdev);
    this.devices.delete(vdev);
    this.back.unbindFile(d.loop.pdev);
    if (this.state === IfStatus.CONNECTED) this.tell(IfStatus.CHANGED);
  }

  /** xm block-list. */
  list(): BlockDevice[] {
    const vbds = new Map(this.back.vbds(this.domid, HANDLE).map((v) => [v.vdevice, v]));
    const st = this.back.status(this.domid, HANDLE);
    return [...this.devices.values()]
      .sort((a, b) => a.spec.vdev - b.spec.vdev)
      .map(({ spec, loop }) => ({
        dev: blkdevNumberToName(spec.vdev),
        vdev: spec.vdev,
        path: loop.path,
        mode: spec.writable ? "w" : "r",
        sectors: vbds.get(spec.vdev)?.sectors ?? 0,
        state:
          this.state === IfStatus.CONNECTED
            ? "connected"
            : this.state === IfStatus.CLOSED
              ? "closed"
              : "disconnected",
        okay: st?.stats.okay ?? 0,
        errors: st?.stats.errors ?? 0,
      }));
  }

  /** The disks this domain has, as configured. */
  specs(): DiskSpec[] {
    return [...this.devices.values()].map((d) => d.spec);
  }

  /** Before the domain is destroyed: the ring, the VBDs, the interface and the images go. */
  destroy(): void {
    this.disconnectRing();
    for (const [vdev, d] of this.devices) {
      this.destroyVbd(vdev);
      this.back.unbindFile(d.loop.pdev);
    }
    this.devices.clear();
    if (this.beCreated) this.be(CmsgBlkifBe.DESTROY, BlkifBeIf.SIZE, BlkifBeIf.status, () => {});
    this.beCreated = false;
    controllers.remove(this.back, this.domid);
  }

  // ------------------------------------------------------------------ the frontend's messages

  /** A CMSG_BLKIF_FE request from the guest; returns the response's payload. */
  private receive(m: ControlMessage): Uint8Array | undefined {
    const dv = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.length);
    const len = m.payload.length;
    switch (m.subtype) {
      case CmsgBlkifFe.DRIVER_STATUS: {
        if (len !== FeDriverStatus.SIZE) return undefined;
        const up = dv.getUint32(FeDriverStatus.status, true) === DriverStatus.UP;
        this.driverUp = up;
        this.disconnectRing();
        // As xend: every interface the domain has is announced DISCONNECTED, to be connected.
        if (up && this.beCreated) this.tell(IfStatus.DISCONNECTED);
        const out = m.payload.slice();
        new DataView(out.buffer).setUint32(FeDriverStatus.max_handle, HANDLE, true);
        return out;
      }
      case CmsgBlkifFe.INTERFACE_CONNECT:
        if (len !== BlkifFeInterfaceConnect.SIZE) return undefined;
        this.connect(
          dv.getUint32(BlkifFeInterfaceConnect.handle, true),
          dv.getUint32(BlkifFeInterfaceConnect.shmem_frame, true),
        );
        return m.payload;
      case CmsgBlkifFe.INTERFACE_DISCONNECT:
        if (len !== FeInterfaceDisconnect.SIZE) return undefined;
        if (dv.getUint32(FeInterfaceDisconnect.handle, true) !== HANDLE || !this.beCreated) return m.payload;
        this.disconnectRing();
        this.tell(IfStatus.DISCONNECTED);
        return m.payload;
      case CmsgBlkifFe.INTERFACE_QUERY: {
        if (len !== BlkifFeInterfaceQuery.SIZE) return undefined;
        const out = m.payload.slice();
        const q = new DataView(out.buffer);
        const known = q.getUint32(BlkifFeInterfaceQuery.handle, true) === HANDLE && this.beCreated;
        q.setUint32(BlkifFeInterfaceQuery.status, known ? this.state : IfStatus.CLOSED, true);
        q.setUint16(BlkifFeInterfaceQuery.evtchn, known && this.ports !== null ? this.ports[1] : 0, true);
        q.setUint16(BlkifFeInterfaceQuery.domid, BACKEND_DOMID, true);
        return out;
      }
      default:
        return undefined;
    }
  }

  private connect(handle: number, frame: number): void {
    if (handle !== HANDLE || !this.beCreated) {
      this.log(`blkif: domain ${this.domid} asked to connect interface ${handle}, which it does not have`);
      return;
    }
    this.disconnectRing();
    const ports = bindBackendChannel(this.dom0, this.domid);
    const st = this.be(CmsgBlkifBe.CONNECT, BlkifBeConnect.SIZE, BlkifBeConnect.status, (dv) => {
      dv.setUint32(BlkifBeConnect.shmem_frame, frame, true);
      dv.setUint32(BlkifBeConnect.evtchn, ports[0], true);
    });
    if (st !== BlkifBeStatus.OKAY) {
      xcEvtchnClose(this.dom0, ports[0]);
      this.log(
        `blkif: domain ${this.domid}'s ring 0x${frame.toString(16)} refused: ${STATUS_NAMES[st] ?? st}`,
      );
      this.tell(IfStatus.CLOSED);
      return;
    }
    this.ports = ports;
    this.tell(IfStatus.CONNECTED);
  }

  /** The backend dropped the ring (it made no sense): the frontend must connect again. */
  ringFailed(): void {
    this.disconnectRing();
    this.tell(IfStatus.DISCONNECTED);
  }

  private disconnectRing(): void {
    if (this.ports === null) return;
    this.be(CmsgBlkifBe.DISCONNECT, BlkifBeIf.SIZE, BlkifBeIf.status, () => {});
    xcEvtchnClose(this.dom0, this.ports[0]);
    this.ports = null;
    this.state = IfStatus.DISCONNECTED;
  }

  /** CMSG_BLKIF_FE_INTERFACE_STATUS to the guest (a request on its control ring). */
  private tell(status: number): void {
    this.state = status === IfStatus.CHANGED ? this.state : status;
    if (this.control === null || !this.control.connected) return;
    const msg = new Uint8Array(BlkifFeInterfaceStatus.SIZE);
    const dv = new DataView(msg.buffer);
    dv.setUint32(BlkifFeInterfaceStatus.handle, HANDLE, true);
    dv.setUint32(BlkifFeInterfaceStatus.status, status, true);
    dv.setUint16(
      BlkifFeInterfaceStatus.evtchn,
      status === IfStatus.CONNECTED && this.ports ? this.ports[1] : 0,
      true,
    );
    dv.setUint16(BlkifFeInterfaceStatus.domid, BACKEND_DOMID, true);
    try {
      void this.control.request(Cmsg.BLKIF_FE, CmsgBlkifFe.INTERFACE_STATUS, msg);
    } catch (e) {
      this.log(`blkif: domain ${this.domid} not told its interface status: ${(e as Error).message}`);
    }
  }

  // ------------------------------------------------------------------ the backend's messages

  /** Sends one CMSG_BLKIF_BE message (domid and handle filled in) and returns its status. */
  private be(subtype: number, size: number, statusOff: number, fill: (dv: DataView) => void): number {
    return sendBeMessage(
      (st, msg) => this.back.control(st, msg),
      subtype,
      size,
      statusOff,
      this.domid,
      HANDLE,
      fill,
      BlkifBeStatus.ERROR,
    );
  }

  private destroyVbd(vdev: number): void {
    this.be(CmsgBlkifBe.VBD_DESTROY, BlkifBeVbd.SIZE, BlkifBeVbd.status, (dv) =>
      dv.setUint16(BlkifBeVbd.vdevice, vdev, true),
    );
  }

  private checkSharing(spec: DiskSpec, identity: string): void {
    for (const other of this.back.boundTo(identity)) {
      if (!other.writable && !spec.writable) continue;
      const owner = controllers
        .all(this.back)
        .find((c) => [...c.devices.values()].some((d) => d.loop === other));
      const who = owner === undefined ? "another domain" : `domain ${owner.domid}`;
      throw new Error(
        other.writable
          ? `disk image ${spec.path} is in use read-write by ${who}`
          : `disk image ${spec.path} is in use read-only by ${who}; it cannot be attached read-write`,
      );
    }
  }
}

function beError(what: string, status: number): Error {
  return new Error(`the block backend could not ${what}: ${STATUS_NAMES[status] ?? `status ${status}`}`);
}
