/**
 * Trace buffers (Xen's common/trace.c; DOM0_GETTBUFS): per physical CPU, TBUF_PAGES_PER_CPU
 * contiguous Xen-heap frames shared with dom0 (owned by it, typed writable with the one type
 * reference Xen-heap pages keep, not on its page list) holding a t_buf header and a ring of
 * t_rec records. The hypervisor records dom0_op entry and exit, scheduler events and (a tsxen
 * addition) every hypercall; dom0's tools map the frames and read them (xentrace).
 */
import { TBUF_PAGES_PER_CPU, TraceBuf, TraceRec } from "../public/trace.js";
import { PGT_validated, PGT_writable_page } from "./frame_table.js";
import type { Hypervisor } from "./hypervisor.js";

export class TraceBuffers {
  /** Machine address of each CPU's t_buf. */
  readonly bufMa: number[] = [];
  /** Records per CPU buffer. */
  readonly nrRecs = Math.floor((TBUF_PAGES_PER_CPU * 4096 - TraceBuf.SIZE) / TraceRec.SIZE);
  /** Bytes per CPU buffer (DOM0_GETTBUFS size). */
  readonly bytesPerCpu = TBUF_PAGES_PER_CPU * 4096;
  /** All frames, for release. */
  readonly frames: number[] = [];

  /** init_trace_bufs: allocates and shares the frames with domain `dom0`; null if no memory. */
  static create(hv: Hypervisor, dom0: number): TraceBuffers | null {
    const nrCpus = hv.sched.pcpus.length;
    const first = hv.mem.allocContiguous(nrCpus * TBUF_PAGES_PER_CPU);
    if (first < 0) return null;
    const t = new TraceBuffers();
    for (let i = 0; i < nrCpus * TBUF_PAGES_PER_CPU; i++) {
      const f = first + i;
      hv.scrubFrame(f);
      hv.frames.assign(f, dom0);
      // SHARE_PFN_WITH_DOMAIN: a Xen-heap page typed writable, its type count never put.
      hv.frames.typeInfo[f] = PGT_writable_page | PGT_validated | 1;
      hv.setM2p(f, 0xffffffff);
      t.frames.push(f);
    }
    for (let c = 0; c < nrCpus; c++) {
      const ma = (first + c * TBUF_PAGES_PER_CPU) * 4096;
      t.bufMa.push(ma);
      hv.mem.write32(ma + TraceBuf.data, ma + TraceBuf.SIZE);
      hv.mem.write32(ma + TraceBuf.size, t.nrRecs);
      hv.mem.write32(ma + TraceBuf.head, 0);
      hv.mem.write32(ma + TraceBuf.head_ptr, ma + TraceBuf.SIZE);
      hv.mem.write32(ma + TraceBuf.vdata, ma + TraceBuf.SIZE);
    }
    return t;
  }

  /** trace(event, d1..d5) on physical CPU `cpu`, stamped with that CPU's cycle counter. */
  record(hv: Hypervisor, cpu: number, event: number, d1 = 0, d2 = 0, d3 = 0, d4 = 0, d5 = 0): void {
    const buf = this.bufMa[cpu];
    if (buf === undefined) return;
    const m = hv.mem;
    const head = m.read32(buf + TraceBuf.head);
    const slot = head % this.nrRecs;
    const rec = buf + TraceBuf.SIZE + slot * TraceRec.SIZE;
    const cycles = hv.nowCycles();
    m.write32(rec + TraceRec.cycles, cycles % 2 ** 32);
    m.write32(rec + TraceRec.cycles + 4, Math.floor(cycles / 2 ** 32));
    m.write32(rec + TraceRec.event, event);
    m.write32(rec + TraceRec.d1, d1);
    m.write32(rec + TraceRec.d2, d2);
    m.write32(rec + TraceRec.d3, d3);
    m.write32(rec + TraceRec.d4, d4);
    m.write32(rec + TraceRec.d5, d5);
    // Xen's head counts records ever written; head_ptr wraps within the data area.
    m.write32(buf + TraceBuf.head, (head + 1) >>> 0);
    m.write32(buf + TraceBuf.head_ptr, buf + TraceBuf.SIZE + ((slot + 1) % this.nrRecs) * TraceRec.SIZE);
  }
}
