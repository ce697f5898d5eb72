/**
 * blkback: the block-device backend driver of dom0 (XenLinux's drivers/xen/blkback of March
 * 2005), serving virtual block devices to other domains over blkif rings.
 *
 * It is driven, as in Xen, by CMSG_BLKIF_BE control messages (create/destroy an interface,
 * connect it to a frontend's ring and event channel, create/grow/shrink/destroy a VBD), which
 * the controller (blkif_ctl.ts, xend's part) sends as the messages' own bytes; each answer
 * carries a BLKIF_BE_STATUS. The "physical devices" behind the VBDs' extents are raw image
 * files bound as loop devices (what xend's block-file script did with losetup): major 7.
 *
 * Guest memory is reached only as dom0 could: the ring page and every request's buffer pages
 * are mapped into dom0's address space by mmu_update with the frontend as the foreign domain
 * (xcMapForeignFrame), so Xen refuses any frame the frontend does not own, and a buffer that
 * dom0 only has to read (a WRITE's data) is mapped read-only. Every field of a request is the
 * guest's to write: a bad one gets BLKIF_RSP_ERROR; ring indices that make no sense disconnect
 * the ring.
 *
 * Durability: requests are served synchronously, a batch at a time (all the requests the ring
 * holds when the frontend notifies), and the images written in a batch are fdatasync'ed before
 * any of the batch's responses is published. So a write the guest has seen completed is on
 * stable storage; there is no flush request in the 2005 protocol, and a guest's sync returns
 * only once its writes have completed.
 */
import { closeSync, fdatasyncSync, fstatSync, openSync, readSync, realpathSync, writeSync } from "node:fs";
import {
  BLKIF_MAX_SEGMENTS_PER_REQUEST,
  BLKIF_RING_SIZE,
  BlkifOp,
  BlkifRequest,
  BlkifResponse,
  BlkifRsp,
  BlkifSring,
  FAS_FIRST_MASK,
  FAS_FIRST_SHIFT,
  FAS_FRAME_SHIFT,
  FAS_LAST_MASK,
  SECTOR_SIZE,
  SECTORS_PER_PAGE,
  VDISK_FLAG_RO,
  VDISK_FLAG_VIRT,
  Vdisk,
  VdiskType,
} from "../../public/blkif.js";
import {
  BlkifBeConnect,
  BlkifBeIf,
  BlkifBeStatus,
  BlkifBeVbd,
  BlkifBeVbdCreate,
  BlkifBeVbdGrow,
  CmsgBlkifBe,
} from "../../public/control_if.js";
import type { Dom0 } from "../dom0.js";
import { xcEvtchnSend, xcMapForeignFrame, xcUnmapForeignFrame } from "../xc.js";
import { openBeMessage, perDom0, readU32, writeU32 } from "./common.js";

/** Loop devices are major 7, as Linux numbered them. */
const LOOP_MAJOR = 7;
const PAGE = 4096;

/** A raw image file bound as a loop device (Blkctl.block('bind', 'file', path)). */
export interface LoopDevice {
  /** Device number (major 7 << 8 | minor). */
  pdev: number;
  path: string;
  /** Identity of the file (st_dev:st_ino), for refusing it to a second writer. */
  identity: string;
  fd: number;
  writable: boolean;
  sectors: number;
  /** Written since the last fdatasync. */
  dirty: boolean;
}

interface Extent {
  start: number;
  length: number;
  dev: LoopDevice;
}

interface Vbd {
  vdevice: number;
  readonly: boolean;
  extents: Extent[];
}

/** Counters of one interface's requests (xm block-list shows them). */
export interface BlkifStats {
  okay: number;
  errors: number;
  sectorsRead: number;
  sectorsWritten: number;
  syncs: number;
}

interface Blkif {
  domid: number;
  handle: number;
  connected: boolean;
  ringVa: number;
  evtchn: number;
  /** Our copies of the ring's indices (the guest may scribble over the shared ones). */
  reqCons: number;
  rspProdPvt: number;
  vbds: Map<number, Vbd>;
  listener: () => void;
  stats: BlkifStats;
}

/** A request that failed a check: the guest gets BLKIF_RSP_ERROR. */
class BadRequest extends Error {}

/** Sector numbers beyond this are refused before any arithmetic (no image is that large). */
const MAX_SECTOR = 2 ** 52;

export class BlkBack {
  private readonly ifs = new Map<string, Blkif>();
  private readonly loops = new Map<number, LoopDevice>();
  /** Called when a frontend's ring made no sense and was disconnected. */
  onRingError: (domid: number, handle: number, why: string) => void = () => {};

  constructor(
    private readonly dom0: Dom0,
    private readonly log: (m: string) => void = () => {},
  ) {}

  // ------------------------------------------------------------------ loop devices

  /**
   * Opens an image file as a loop device; read-only unless writable. Throws an Error that
   * names the file when it cannot be opened or is not a whole number of sectors.
   */
  bindFile(path: string, writable: boolean): LoopDevice {
    let real: string;
    let fd: number;
    try {
      real = realpathSync(path);
      fd = openSync(real, writable ? "r+" : "r");
    } catch (e) {
      throw new Error(
        `cannot open disk image ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    const st = fstatSync(fd);
    if (!st.isFile() || st.size < SECTOR_SIZE) {
      closeSync(fd);
      throw new Error(`disk image ${path} is not a regular file of at least ${SECTOR_SIZE} bytes`);
    }
    let minor = 0;
    while (this.loops.has((LOOP_MAJOR << 8) | minor)) minor++;
    if (minor > 255) {
      closeSync(fd);
      throw new Error("every loop device is in use");
    }
    const dev: LoopDevice = {
      pdev: (LOOP_MAJOR << 8) | minor,
      path: real,
      identity: `${st.dev}:${st.ino}`,
      fd,
      writable,
      sectors: Math.floor(st.size / SECTOR_SIZE),
      dirty: false,
    };
    this.loops.set(dev.pdev, dev);
    return dev;
  }

  /** Closes a loop device (after the VBDs using it are destroyed), syncing it first. */
  unbindFile(pdev: number): void {
    const dev = this.loops.get(pdev);
    if (dev === undefined) return;
    this.loops.delete(pdev);
    try {
      if (dev.dirty) fdatasyncSync(dev.fd);
    } finally {
      closeSync(dev.fd);
    }
  }

  /** Loop devices bound to the file with this identity. */
  boundTo(identity: string): LoopDevice[] {
    return [...this.loops.values()].filter((d) => d.identity === identity);
  }

  // ------------------------------------------------------------------ control messages

  /**
   * One CMSG_BLKIF_BE message from the controller: returns the message with its status set.
   * A message of the wrong length is answered with length 0, as control.c's parse_error.
   */
  control(subtype: number, msg: Uint8Array): Uint8Array {
    const sizes: Record<number, number> = {
      [CmsgBlkifBe.CREATE]: BlkifBeIf.SIZE,
      [CmsgBlkifBe.DESTROY]: BlkifBeIf.SIZE,
      [CmsgBlkifBe.CONNECT]: BlkifBeConnect.SIZE,
      [CmsgBlkifBe.DISCONNECT]: BlkifBeIf.SIZE,
      [CmsgBlkifBe.VBD_CREATE]: BlkifBeVbdCreate.SIZE,
      [CmsgBlkifBe.VBD_DESTROY]: BlkifBeVbd.SIZE,
      [CmsgBlkifBe.VBD_GROW]: BlkifBeVbdGrow.SIZE,
      [CmsgBlkifBe.VBD_SHRINK]: BlkifBeVbd.SIZE,
    };
    const m = openBeMessage(sizes, subtype, msg);
    if (m === null) return new Uint8Array(0);
    const { dv, domid, handle, put } = m;
    const key = `${domid}/${handle}`;
    const b = this.ifs.get(key);
    const S = BlkifBeStatus;
    switch (subtype) {
      case CmsgBlkifBe.CREATE:
        if (b !== undefined) return put(BlkifBeIf.status, S.INTERFACE_EXISTS);
        this.ifs.set(key, {
          domid,
          handle,
          connected: false,
          ringVa: 0,
          evtchn: 0,
          reqCons: 0,
          rspProdPvt: 0,
          vbds: new Map(),
          listener: () => this.serve(key),
          stats: { okay: 0, errors: 0, sectorsRead: 0, sectorsWritten: 0, syncs: 0 },
        });
        return put(BlkifBeIf.status, S.OKAY);
      case CmsgBlkifBe.DESTROY:
        if (b === undefined) return put(BlkifBeIf.status, S.INTERFACE_NOT_FOUND);
        if (b.connected) return put(BlkifBeIf.status, S.INTERFACE_CONNECTED);
        this.ifs.delete(key);
        return put(BlkifBeIf.status, S.OKAY);
      case CmsgBlkifBe.CONNECT:
        if (b === undefined) return put(BlkifBeConnect.status, S.INTERFACE_NOT_FOUND);
        if (b.connected) return put(BlkifBeConnect.status, S.INTERFACE_CONNECTED);
        return put(
          BlkifBeConnect.status,
          this.connect(
            b,
            dv.getUint32(BlkifBeConnect.shmem_frame, true),
            dv.getUint32(BlkifBeConnect.evtchn, true),
          ),
        );
      case CmsgBlkifBe.DISCONNECT:
        if (b === undefined) return put(BlkifBeIf.status, S.INTERFACE_NOT_FOUND);
        this.disconnect(b);
        return put(BlkifBeIf.status, S.OKAY);
    }
    // The VBD messages.
    const vdev = dv.getUint16(
      subtype === CmsgBlkifBe.VBD_GROW ? BlkifBeVbdGrow.vdevice : BlkifBeVbd.vdevice,
      true,
    );
    const statusOff = subtype === CmsgBlkifBe.VBD_GROW ? BlkifBeVbdGrow.status : BlkifBeVbd.status;
    if (b === undefined) return put(statusOff, S.INTERFACE_NOT_FOUND);
    const vbd = b.vbds.get(vdev);
    switch (subtype) {
      case CmsgBlkifBe.VBD_CREATE:
        if (vbd !== undefined) return put(statusOff, S.VBD_EXISTS);
        b.vbds.set(vdev, {
          vdevice: vdev,
          readonly: dv.getUint16(BlkifBeVbdCreate.readonly, true) !== 0,
          extents: [],
        });
        return put(statusOff, S.OKAY);
      case CmsgBlkifBe.VBD_DESTROY:
        if (vbd === undefined) return put(statusOff, S.VBD_NOT_FOUND);
        b.vbds.delete(vdev);
        return put(statusOff, S.OKAY);
      case CmsgBlkifBe.VBD_SHRINK:
        if (vbd === undefined) return put(statusOff, S.VBD_NOT_FOUND);
        if (vbd.extents.length === 0) return put(statusOff, S.EXTENT_NOT_FOUND);
        vbd.extents.pop();
        return put(statusOff, S.OKAY);
      default: {
        // VBD_GROW: only whole devices (start 0), the length clamped to the device's size.
        if (vbd === undefined) return put(statusOff, S.VBD_NOT_FOUND);
        const start = dv.getBigUint64(BlkifBeVbdGrow.sector_start, true);
        const dev = this.loops.get(dv.getUint32(BlkifBeVbdGrow.device, true) & 0xffff);
        if (start > 0n || dev === undefined || (!vbd.readonly && !dev.writable))
          return put(statusOff, S.EXTENT_NOT_FOUND);
        const want = dv.getBigUint64(BlkifBeVbdGrow.sector_length, true);
        const length = want < BigInt(dev.sectors) ? Number(want) : dev.sectors;
        vbd.extents.push({ start: 0, length, dev });
        return put(statusOff, S.OKAY);
      }
    }
  }

  /** The VBDs of an interface, for xm block-list: [vdevice, capacity in sectors, read-only, loop]. */
  vbds(
    domid: number,
    handle: number,
  ): Array<{ vdevice: number; sectors: number; readonly: boolean; pdevs: number[] }> {
    const b = this.ifs.get(`${domid}/${handle}`);
    if (b === undefined) return [];
    return [...b.vbds.values()].map((v) => ({
      vdevice: v.vdevice,
      sectors: capacity(v),
      readonly: v.readonly,
      pdevs: v.extents.map((x) => x.dev.pdev),
    }));
  }

  /** The interface's state and counters, or undefined when it does not exist. */
  status(domid: number, handle: number): { connected: boolean; stats: BlkifStats } | undefined {
    const b = this.ifs.get(`${domid}/${handle}`);
    return b === undefined ? undefined : { connected: b.connected, stats: { ...b.stats } };
  }

  private connect(b: Blkif, frame: number, evtchn: number): number {
    let va: number;
    try {
      va = xcMapForeignFrame(this.dom0, b.domid, frame);
    } catch (e) {
      this.log(
        `blkback: domain ${b.domid}'s ring frame 0x${frame.toString(16)} cannot be mapped: ${(e as Error).message}`,
      );
      return BlkifBeStatus.MAPPING_ERROR;
    }
    // SHARED_RING_INIT and BACK_RING_INIT.
    this.dom0.write(va + BlkifSring.req_prod, new Uint8Array(8));
    b.ringVa = va;
    b.evtchn = evtchn;
    b.reqCons = 0;
    b.rspProdPvt = 0;
    b.connected = true;
    this.dom0.onPort(evtchn, b.listener);
    return BlkifBeStatus.OKAY;
  }

  private disconnect(b: Blkif): void {
    if (!b.connected) return;
    b.connected = false;
    this.dom0.offPort(b.evtchn, b.listener);
    xcUnmapForeignFrame(this.dom0, b.ringVa);
  }

  // ------------------------------------------------------------------ the ring

  /** The frontend notified: serve every request on the ring, then publish the responses. */
  private serve(key: string): void {
    const b = this.ifs.get(key);
    if (b === undefined || !b.connected) return;
    try {
      const rp = this.u32(b.ringVa + BlkifSring.req_prod);
      const pending = (rp - b.reqCons) >>> 0;
      if (pending > BLKIF_RING_SIZE) {
        this.ringError(b, `claims ${pending} requests on a ${BLKIF_RING_SIZE}-slot ring`);
        return;
      }
      const responses: Array<[id: number, op: number, status: number]> = [];
      const written = new Set<LoopDevice>();
      for (; b.reqCons !== rp; b.reqCons = (b.reqCons + 1) >>> 0) {
        const slot = b.ringVa + BlkifSring.ring + (b.reqCons % BLKIF_RING_SIZE) * BlkifSring.ENTRY;
        const req = new DataView(this.dom0.read(slot, BlkifRequest.SIZE).buffer);
        const op = req.getUint8(BlkifRequest.operation);
        let status: number;
        try {
          status = this.dispatch(b, op, req, written);
          b.stats.okay++;
        } catch (e) {
          if (!(e instanceof BadRequest)) throw e;
          status = BlkifRsp.ERROR;
          b.stats.errors++;
        }
        responses.push([req.getUint32(BlkifRequest.id, true), op, status]);
      }
      if (responses.length === 0) return;
      // Durable before any completion is visible.
      for (const dev of written) this.sync(dev, b);
      for (const [id, op, status] of responses) {
        const r = new Uint8Array(BlkifResponse.SIZE);
        const dv = new DataView(r.buffer);
        dv.setUint32(BlkifResponse.id, id, true);
        dv.setUint8(BlkifResponse.operation, op);
        dv.setInt16(BlkifResponse.status, status, true);
        this.dom0.write(b.ringVa + BlkifSring.ring + (b.rspProdPvt % BLKIF_RING_SIZE) * BlkifSring.ENTRY, r);
        b.rspProdPvt = (b.rspProdPvt + 1) >>> 0;
      }
      this.setU32(b.ringVa + BlkifSring.rsp_prod, b.rspProdPvt);
      xcEvtchnSend(this.dom0, b.evtchn);
    } catch (e) {
      // Whatever went wrong, only this ring pays for it.
      this.ringError(b, `could not be served: ${(e as Error).message}`);
    }
  }

  private ringError(b: Blkif, why: string): void {
    this.log(`blkback: domain ${b.domid}'s blkif ${b.handle} ${why}; disconnected`);
    this.disconnect(b);
    this.onRingError(b.domid, b.handle, why);
  }

  private sync(dev: LoopDevice, b: Blkif): void {
    if (!dev.dirty) return;
    try {
      fdatasyncSync(dev.fd);
      dev.dirty = false;
      b.stats.syncs++;
    } catch (e) {
      throw new Error(`fdatasync of ${dev.path} failed: ${(e as Error).message}`);
    }
  }

  private dispatch(b: Blkif, op: number, req: DataView, written: Set<LoopDevice>): number {
    const nr = req.getUint8(BlkifRequest.nr_segments);
    const fas = (i: number): number => req.getUint32(BlkifRequest.frame_and_sects + i * 4, true);
    switch (op) {
      case BlkifOp.PROBE: {
        // One page-sized buffer, filled with a vdisk_t per VBD; the status is their number.
        if (
          nr !== 1 ||
          ((fas(0) >>> FAS_FIRST_SHIFT) & FAS_FIRST_MASK) !== 0 ||
          (fas(0) & FAS_LAST_MASK) !== SECTORS_PER_PAGE - 1
        )
          throw new BadRequest();
        const vbds = [...b.vbds.values()].sort((x, y) => x.vdevice - y.vdevice).slice(0, PAGE / Vdisk.SIZE);
        const out = new Uint8Array(vbds.length * Vdisk.SIZE);
        const dv = new DataView(out.buffer);
        vbds.forEach((v, i) => {
          dv.setBigUint64(i * Vdisk.SIZE + Vdisk.capacity, BigInt(capacity(v)), true);
          dv.setUint16(i * Vdisk.SIZE + Vdisk.device, v.vdevice, true);
          dv.setUint16(
            i * Vdisk.SIZE + Vdisk.info,
            VdiskType.DISK | VDISK_FLAG_VIRT | (v.readonly ? VDISK_FLAG_RO : 0),
            true,
          );
        });
        this.withFrames(b, [fas(0) >>> FAS_FRAME_SHIFT], true, ([va]) => this.dom0.write(va, out));
        return vbds.length;
      }
      case BlkifOp.READ:
      case BlkifOp.WRITE:
        return this.readWrite(b, op === BlkifOp.WRITE, req, nr, fas, written);
      default:
        throw new BadRequest();
    }
  }

  private readWrite(
    b: Blkif,
    write: boolean,
    req: DataView,
    nr: number,
    fas: (i: number) => number,
    written: Set<LoopDevice>,
  ): number {
    if (nr === 0 || nr > BLKIF_MAX_SEGMENTS_PER_REQUEST) throw new BadRequest();
    const vbd = b.vbds.get(req.getUint16(BlkifRequest.device, true));
    if (vbd === undefined || (write && vbd.readonly)) throw new BadRequest();
    const sector = req.getBigUint64(BlkifRequest.sector_number, true);
    if (sector >= BigInt(MAX_SECTOR)) throw new BadRequest();
    // Check every segment and translate it to (device, byte offset) runs before any I/O.
    const runs: Array<{ seg: number; pageOff: number; dev: LoopDevice; pos: number; bytes: number }> = [];
    let at = Number(sector);
    for (let i = 0; i < nr; i++) {
      const first = (fas(i) >>> FAS_FIRST_SHIFT) & FAS_FIRST_MASK;
      const last = fas(i) & FAS_LAST_MASK;
      if (last < first) throw new BadRequest();
      let pageOff = first * SECTOR_SIZE;
      for (let left = last - first + 1; left > 0; ) {
        const [x, off] = translate(vbd, at);
        const n = Math.min(left, x.length - off);
        runs.push({
          seg: i,
          pageOff,
          dev: x.dev,
          pos: (x.start + off) * SECTOR_SIZE,
          bytes: n * SECTOR_SIZE,
        });
        at += n;
        left -= n;
        pageOff += n * SECTOR_SIZE;
      }
    }
    const frames = Array.from({ length: nr }, (_, i) => fas(i) >>> FAS_FRAME_SHIFT);
    // A READ fills the guest's pages (mapped writable); a WRITE only reads them.
    this.withFrames(b, frames, !write, (vas) => {
      for (const r of runs) {
        const va = vas[r.seg] + r.pageOff;
        if (write) {
          const data = this.dom0.read(va, r.bytes);
          if (writeSync(r.dev.fd, data, 0, r.bytes, r.pos) !== r.bytes) throw new BadRequest();
          r.dev.dirty = true;
          written.add(r.dev);
        } else {
          const data = new Uint8Array(r.bytes);
          if (readSync(r.dev.fd, data, 0, r.bytes, r.pos) !== r.bytes) throw new BadRequest();
          this.dom0.write(va, data);
        }
      }
    });
    const sectors = (at - Number(sector)) | 0;
    if (write) b.stats.sectorsWritten += sectors;
    else b.stats.sectorsRead += sectors;
    return BlkifRsp.OKAY;
  }

  /** Maps the frontend's frames into dom0 for fn; a frame Xen refuses fails the request. */
  private withFrames(b: Blkif, frames: number[], writable: boolean, fn: (vas: number[]) => void): void {
    const vas: number[] = [];
    try {
      for (const f of frames) {
        try {
          vas.push(xcMapForeignFrame(this.dom0, b.domid, f, writable));
        } catch {
          throw new BadRequest();
        }
      }
      try {
        fn(vas);
      } catch (e) {
        // An I/O error on the image is the request's failure, not the backend's.
        if (e instanceof BadRequest || (e as NodeJS.ErrnoException).code !== undefined)
          throw new BadRequest();
        throw e;
      }
    } finally {
      for (const va of vas) xcUnmapForeignFrame(this.dom0, va);
    }
  }

  private u32(va: number): number {
    return readU32(this.dom0, va);
  }

  private setU32(va: number, v: number): void {
    writeU32(this.dom0, va, v);
  }
}

/** A VBD's size in sectors: the sum of its extents. */
function capacity(v: Vbd): number {
  return v.extents.reduce((n, x) => n + x.length, 0);
}

/** vbd_translate: the extent holding a VBD sector and the offset in it; out of range is bad. */
function translate(v: Vbd, sector: number): [Extent, number] {
  let off = sector;
  for (const x of v.extents) {
    if (off < x.length) return [x, off];
    off -= x.length;
  }
  throw new BadRequest();
}

/** dom0's one blkback driver (made on first use). */
export const blkbackOf = perDom0((dom0, log) => new BlkBack(dom0, log));
