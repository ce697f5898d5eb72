/**
 * A virtual Ethernet bridge inside tsxend (what xend's network script made with brctl as
 * xenbr0): a learning switch joining the vifs attached to it. A frame goes to the port that
 * last sent from its destination MAC, or to every other port when that is unknown or it is a
 * broadcast or multicast. Ports deliver synchronously; a port that cannot take a frame drops it
 * (and counts it), as a full queue of a real NIC would.
 */
import type { Dom0 } from "../dom0.js";

export interface BridgePort {
  readonly name: string;
  /** Takes a frame from the bridge (the port's owner copies it if it keeps it). */
  deliver(frame: Uint8Array): void;
}

/** Learned addresses are forgotten after this many frames from elsewhere (a bounded table). */
const MAX_LEARNED = 1024;

export class Bridge {
  private readonly ports = new Set<BridgePort>();
  private readonly fdb = new Map<string, BridgePort>();
  forwarded = 0;
  flooded = 0;

  constructor(readonly name: string) {}

  attach(port: BridgePort): void {
    this.ports.add(port);
  }

  detach(port: BridgePort): void {
    this.ports.delete(port);
    for (const [mac, p] of this.fdb) if (p === port) this.fdb.delete(mac);
  }

  /** Whether a port other than `except` last sent from this MAC (it is on the bridge). */
  knows(mac: string, except?: BridgePort): boolean {
    const p = this.fdb.get(mac);
    return p !== undefined && p !== except && this.ports.has(p);
  }

  portNames(): string[] {
    return [...this.ports].map((p) => p.name);
  }

  /** A frame sent by `from` (at least an Ethernet header; the sender checked its size). */
  send(from: BridgePort, frame: Uint8Array): void {
    if (frame.length < 14) return;
    const src = macKey(frame, 6);
    // A multicast source is bogus: never learn it.
    if ((frame[6] & 1) === 0) {
      if (!this.fdb.has(src) && this.fdb.size >= MAX_LEARNED) this.fdb.clear();
      this.fdb.set(src, from);
    }
    const to = (frame[0] & 1) === 0 ? this.fdb.get(macKey(frame, 0)) : undefined;
    if (to !== undefined) {
      if (to !== from && this.ports.has(to)) {
        this.forwarded++;
        to.deliver(frame);
      }
      return;
    }
    this.flooded++;
    for (const p of [...this.ports]) if (p !== from) p.deliver(frame);
  }
}

/** The MAC at off as "00:16:3e:01:02:03". */
export function macKey(b: Uint8Array, off: number): string {
  return Array.from(b.subarray(off, off + 6), (x) => x.toString(16).padStart(2, "0")).join(":");
}

const bridges = new WeakMap<Dom0, Map<string, Bridge>>();

/** dom0's bridge of that name, made on first use. */
export function bridgeOf(dom0: Dom0, name: string): Bridge {
  let all = bridges.get(dom0);
  if (all === undefined) bridges.set(dom0, (all = new Map()));
  let b = all.get(name);
  if (b === undefined) all.set(name, (b = new Bridge(name)));
  return b;
}
