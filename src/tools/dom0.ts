/**
 * Domain 0 as the toolstack sees it (DESIGN.md decision 2): a real, privileged domain whose
 * vcpu never runs guest code. Its request buffers are pages of its own memory mapped at
 * BUFFER_VA by its own page tables; the toolstack marshals each request there and enters the
 * hypervisor through the same hypercall dispatch as any guest, with dom0's vcpu on the CPU.
 * Its event upcalls arrive as TypeScript callbacks (per bound port or VIRQ), run at the next
 * safe point of the hypervisor (never inside another domain's hypercall).
 */
import { ENOSYS } from "../public/errno.js";
import { EvtchnBindVirq, EvtchnOp } from "../public/event_channel.js";
import { SharedInfo, VcpuInfo } from "../public/xen.js";
import { type AbiName, DEFAULT_ABI } from "../xen/abi.js";
import type { Domain, Vcpu } from "../xen/domain.js";
import { buildDom0 } from "../xen/domain_ctl.js";
import type { Hypervisor } from "../xen/hypervisor.js";

/** Where dom0's request buffers live in its address space. */
export const DOM0_BUFFER_VA = 0x10000000;
/** dom0's memory: an L2, an L1 and this many buffer pages (1 MiB). */
export const DOM0_BUFFER_PAGES = 256;
const PAGE = 4096;

/** A hypercall that failed with -errno (libxc's convention: the caller sees errno). */
export class XcError extends Error {
  override name = "XcError";
  constructor(
    readonly op: string,
    readonly errno: number,
  ) {
    super(`${op} failed: errno ${errno}`);
  }
}

/** A bump allocator over dom0's buffer pages for one request. */
export class Scratch {
  private next = 0;
  constructor(private readonly dom0: Dom0) {}

  /** Reserves n bytes (4-byte aligned) and returns their address in dom0's address space. */
  alloc(n: number, init?: Uint8Array): number {
    const off = this.next;
    this.next = (off + n + 3) & ~3;
    if (this.next > this.dom0.bufferBytes)
      throw new RangeError(`dom0's request buffers are too small for ${n} bytes`);
    const va = DOM0_BUFFER_VA + off;
    this.dom0.write(va, init ?? new Uint8Array(n));
    return va;
  }
}

export class Dom0 {
  readonly domain: Domain;
  readonly vcpu: Vcpu;
  readonly bufferBytes: number;
  /** Machine frames of the buffer pages, in VA order. */
  private readonly bufferFrames: number[];
  private readonly portListeners = new Map<number, Array<(port: number) => void>>();
  /** Foreign frames mapped after the buffers (page index in the buffer L1 -> MFN). */
  private readonly windows = new Map<number, number>();
  private readonly windowsTaken = new Set<number>();
  /** Windows whose PTE is read-only: dom0 cannot write through them either. */
  private readonly readOnlyWindows = new Set<number>();
  private dispatchQueued = false;

  constructor(
    readonly hv: Hypervisor,
    bufferPages = DOM0_BUFFER_PAGES,
    abi: AbiName = DEFAULT_ABI,
  ) {
    this.domain = buildDom0(hv, { pages: bufferPages + 2, bufferVa: DOM0_BUFFER_VA, abi }, () =>
      this.upcall(),
    );
    this.vcpu = this.domain.vcpus[0];
    this.bufferFrames = [...this.domain.pages].slice(2);
    this.bufferBytes = bufferPages * PAGE;
  }

  /** A fresh allocator for one request's buffers (requests are never nested). */
  scratch(): Scratch {
    return new Scratch(this);
  }

  /** Writes bytes at a buffer address (dom0 writing its own memory); not through a read-only window. */
  write(va: number, bytes: Uint8Array): void {
    const first = Math.floor((va - DOM0_BUFFER_VA) / PAGE);
    const last = Math.floor((va + bytes.length - 1 - DOM0_BUFFER_VA) / PAGE);
    for (let p = first; p <= last; p++)
      if (this.readOnlyWindows.has(p)) throw new RangeError(`0x${va.toString(16)} is mapped read-only`);
    // A host write: the CPU's decoded code of the frame must go as a guest store's would, or a
    // domain runs what a backend overwrote (a program read from disk into a page that once held
    // another program's decoded text).
    this.copy(va, bytes.length, (ma, off, n) => {
      this.hv.mem.bytes.set(bytes.subarray(off, off + n), ma);
      this.hv.cpu.invalidateCode(ma, n);
    });
  }

  /** Reads n bytes at a buffer address. */
  read(va: number, n: number): Uint8Array {
    const out = new Uint8Array(n);
    this.copy(va, n, (ma, off, len) => out.set(this.hv.mem.bytes.subarray(ma, ma + len), off));
    return out;
  }

  private copy(va: number, n: number, fn: (ma: number, off: number, len: number) => void): void {
    let done = 0;
    while (done < n) {
      const off = va - DOM0_BUFFER_VA + done;
      const page = Math.floor(off / PAGE);
      const frame = this.bufferFrames[page] ?? this.windows.get(page);
      if (off < 0 || frame === undefined)
        throw new RangeError(`0x${va.toString(16)} is not in dom0's buffers`);
      const len = Math.min(n - done, PAGE - (off % PAGE));
      fn(frame * PAGE + (off % PAGE), done, len);
      done += len;
    }
  }

  // ------------------------------------------------------------------ foreign windows

  /**
   * A free page slot after the buffers in dom0's one L1 (for xcMapForeignFrame): its address
   * and the machine address of its PTE.
   */
  takeWindow(): { va: number; pteMa: number } {
    for (let page = this.bufferFrames.length; page < 1024; page++) {
      if (this.windowsTaken.has(page)) continue;
      this.windowsTaken.add(page);
      const l1 = [...this.domain.pages][1];
      return { va: DOM0_BUFFER_VA + page * PAGE, pteMa: l1 * PAGE + page * 4 };
    }
    throw new RangeError("dom0 has no free page slot for another foreign mapping");
  }

  windowMapped(va: number, mfn: number, writable = true): void {
    const page = (va - DOM0_BUFFER_VA) / PAGE;
    this.windows.set(page, mfn);
    if (!writable) this.readOnlyWindows.add(page);
  }

  windowPte(va: number): number | undefined {
    const page = (va - DOM0_BUFFER_VA) / PAGE;
    if (!this.windowsTaken.has(page)) return undefined;
    return [...this.domain.pages][1] * PAGE + page * 4;
  }

  releaseWindow(va: number): void {
    const page = (va - DOM0_BUFFER_VA) / PAGE;
    this.windows.delete(page);
    this.windowsTaken.delete(page);
    this.readOnlyWindows.delete(page);
  }

  /** A hypercall issued by dom0's vcpu; returns EAX (negative errno on failure). */
  hypercall(nr: number, ...args: number[]): number {
    return this.hv.hypercallAs(this.vcpu, nr, args);
  }

  /** The number of hypercall `name` in dom0's revision. */
  nr(name: keyof Dom0["domain"]["abi"]["hypercall"]): number {
    const n = this.domain.abi.hypercall[name];
    if (n === undefined) throw new XcError(name, ENOSYS);
    return n;
  }

  // ------------------------------------------------------------------ events

  /** Calls fn whenever an event arrives on dom0's port. */
  onPort(port: number, fn: (port: number) => void): void {
    const list = this.portListeners.get(port) ?? [];
    list.push(fn);
    this.portListeners.set(port, list);
  }

  /** Stops calling fn for events on port. */
  offPort(port: number, fn: (port: number) => void): void {
    const list = (this.portListeners.get(port) ?? []).filter((f) => f !== fn);
    if (list.length > 0) this.portListeners.set(port, list);
    else this.portListeners.delete(port);
  }

  /** Binds a VIRQ to a port of dom0 (event_channel_op, as any guest) and listens on it. */
  onVirq(virq: number, fn: (port: number) => void): number {
    const s = this.scratch();
    const E = this.domain.abi.evtchnOp;
    const op = new Uint8Array(E.SIZE);
    const dv = new DataView(op.buffer);
    dv.setUint32(E.cmd, EvtchnOp.bind_virq, true);
    dv.setUint32(E.u + EvtchnBindVirq.virq, virq, true);
    const va = s.alloc(op.length, op);
    const rc = this.hypercall(this.nr("event_channel_op"), va);
    if (rc < 0) throw new XcError("EVTCHNOP_bind_virq", -rc);
    const port = new DataView(this.read(va, op.length).buffer).getUint32(E.u + EvtchnBindVirq.port, true);
    this.onPort(port, fn);
    return port;
  }

  /** The upcall: dispatch at the next safe point (once per burst of events). */
  private upcall(): void {
    if (this.dispatchQueued) return;
    this.dispatchQueued = true;
    this.hv.defer(() => this.dispatch());
  }

  /**
   * What a guest's event callback does: clear upcall_pending, take the selector word, and for
   * every pending unmasked port clear it and call its listeners.
   */
  dispatch(): void {
    this.dispatchQueued = false;
    const hv = this.hv;
    const si = this.domain.sharedInfoMfn * PAGE;
    const vi = si + SharedInfo.vcpu_data + this.vcpu.id * VcpuInfo.SIZE;
    hv.cpu.physWrite8(vi + VcpuInfo.evtchn_upcall_pending, 0);
    const sel = hv.read32(vi + VcpuInfo.evtchn_pending_sel);
    hv.write32(vi + VcpuInfo.evtchn_pending_sel, 0);
    for (let w = 0; w < 32; w++) {
      if (((sel >>> w) & 1) === 0) continue;
      const pendAddr = si + SharedInfo.evtchn_pending + w * 4;
      const ready = hv.read32(pendAddr) & ~hv.read32(si + SharedInfo.evtchn_mask + w * 4);
      for (let b = 0; b < 32; b++) {
        if (((ready >>> b) & 1) === 0) continue;
        hv.write32(pendAddr, hv.read32(pendAddr) & ~(1 << b));
        const port = w * 32 + b;
        for (const fn of this.portListeners.get(port) ?? []) fn(port);
      }
    }
  }
}

const dom0s = new WeakMap<Hypervisor, Dom0>();

/** Boots dom0 on a machine (once): domain 0, privileged, with its buffers and trace buffers. */
export function bootDom0(
  hv: Hypervisor,
  bufferPages = DOM0_BUFFER_PAGES,
  opts: { abi?: AbiName } = {},
): Dom0 {
  const existing = dom0s.get(hv);
  if (existing) return existing;
  const d = new Dom0(hv, bufferPages, opts.abi);
  dom0s.set(hv, d);
  return d;
}

/** The machine's dom0 if it has been booted (checkpoint.ts keeps it). */
export function bootedDom0(hv: Hypervisor): Dom0 | undefined {
  return dom0s.get(hv);
}

/** The machine's dom0, booting it if needed. */
export function dom0Of(hv: Hypervisor): Dom0 {
  return dom0s.get(hv) ?? bootDom0(hv);
}
