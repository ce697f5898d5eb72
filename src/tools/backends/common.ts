/**
 * What the backends (blkback, netback) and their controllers (blkif_ctl, netif_ctl) share: one
 * driver per dom0, the CMSG_*_BE message envelope (domid at 0, handle at 4, a status word the
 * backend fills), the event channel between dom0 and a frontend, and little-endian words in
 * mapped ring pages.
 */
import { DomId } from "../../public/xen.js";
import type { Dom0 } from "../dom0.js";
import { xcEvtchnBindInterdomain } from "../xc.js";

/** One T per dom0, made on first use (dom0's one driver of a kind). */
export function perDom0<T>(
  make: (dom0: Dom0, log?: (m: string) => void) => T,
): (dom0: Dom0, log?: (m: string) => void) => T {
  const all = new WeakMap<Dom0, T>();
  return (dom0, log) => {
    let x = all.get(dom0);
    if (x === undefined) all.set(dom0, (x = make(dom0, log)));
    return x;
  };
}

/** A backend message being answered: its copy, a view, who it is for, and the status setter. */
export interface BeMessage {
  out: Uint8Array;
  dv: DataView;
  domid: number;
  handle: number;
  /** Writes status at off and returns the answer. */
  put(off: number, status: number): Uint8Array;
}

/**
 * Opens a CMSG_*_BE message of a known subtype and exact size (domid u16 at 0, handle u32 at
 * 4), or returns null: the caller then answers with length 0 (control.c's parse_error).
 */
export function openBeMessage(
  sizes: Record<number, number>,
  subtype: number,
  msg: Uint8Array,
): BeMessage | null {
  if (sizes[subtype] === undefined || msg.length !== sizes[subtype]) return null;
  const out = msg.slice();
  const dv = new DataView(out.buffer);
  return {
    out,
    dv,
    domid: dv.getUint16(0, true),
    handle: dv.getUint32(4, true),
    put: (off, status) => {
      dv.setUint32(off, status, true);
      return out;
    },
  };
}

/**
 * Sends a backend one CMSG_*_BE message (the controller's side): domid and handle filled in,
 * then fill; returns the status the backend wrote (ERROR when it answered with a bad length).
 */
export function sendBeMessage(
  control: (subtype: number, msg: Uint8Array) => Uint8Array,
  subtype: number,
  size: number,
  statusOff: number,
  domid: number,
  handle: number,
  fill: (dv: DataView) => void,
  errorStatus: number,
): number {
  const msg = new Uint8Array(size);
  const dv = new DataView(msg.buffer);
  dv.setUint16(0, domid, true);
  dv.setUint32(4, handle, true);
  fill(dv);
  const out = control(subtype, msg);
  return out.length === size ? new DataView(out.buffer).getUint32(statusOff, true) : errorStatus;
}

/** xend's channel.eventChannel(0, domid): [dom0's port, the frontend's port]. */
export function bindBackendChannel(dom0: Dom0, domid: number): [number, number] {
  return xcEvtchnBindInterdomain(dom0, DomId.SELF, domid, 0, 0);
}

/** A u32 in a page dom0 has mapped. */
export function readU32(dom0: Dom0, va: number): number {
  return new DataView(dom0.read(va, 4).buffer).getUint32(0, true);
}

export function writeU32(dom0: Dom0, va: number, v: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  dom0.write(va, b);
}

/**
 * Controllers of one kind by backend and domain, so that a ring the backend drops reaches the
 * controller of its domain (the backend's onRingError is set once, to this registry).
 */
export class ControllerRegistry<
  B extends { onRingError: (domid: number, handle: number, why: string) => void },
  C,
> {
  private readonly byBack = new WeakMap<B, Map<number, C>>();

  constructor(private readonly ringFailed: (c: C, handle: number) => void) {}

  add(back: B, domid: number, c: C): void {
    let mine = this.byBack.get(back);
    if (mine === undefined) {
      const all = new Map<number, C>();
      this.byBack.set(back, all);
      back.onRingError = (d, handle) => {
        const ctl = all.get(d);
        if (ctl !== undefined) this.ringFailed(ctl, handle);
      };
      mine = all;
    }
    mine.set(domid, c);
  }

  remove(back: B, domid: number): void {
    this.byBack.get(back)?.delete(domid);
  }

  all(back: B): C[] {
    return [...(this.byBack.get(back)?.values() ?? [])];
  }
}
