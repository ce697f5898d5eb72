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
  /**
   * Records are written once a reader has asked where the buffers are (GETTBUFS, TBUFCONTROL),
   * as later Xen traces only after xentrace's TBUF_enable: until then no one can read them, and
   * an idle domain's tick made five (~1.8 K of its ~43 K host instructions).
   */
  reading = false;

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
    // Small, so that the callers inline the test.
    if (this.reading) this.write(hv, cpu, event, d1, d2, d3, d4, d5);
  }

  private write(
    hv: Hypervisor,
    cpu: number,
    event: number,
    d1: number,
    d2: number,
    d3: number,
    d4: number,
    d5: number,
  ): void {
    const buf = this.bufMa[cpu];
    if (buf === undefined) return;
    // Every hypercall is recorded: word stores into machine memory (the header and the records
    // are 4-byte aligned), as the DataView's read32/write32 would make them.
    const m = hv.cpu.mem32;
    const b = buf >>> 2;
    const head = m[b + (TraceBuf.head >> 2)] >>> 0;
    const slot = head % this.nrRecs;
    const r = b + ((TraceBuf.SIZE + slot * TraceRec.SIZE) >> 2);
    const cycles = hv.nowCycles();
    m[r + (TraceRec.cycles >> 2)] = cycles % 2 ** 32;
    m[r + (TraceRec.cycles >> 2) + 1] = Math.floor(cycles / 2 ** 32);
    m[r + (TraceRec.event >> 2)] = event;
    m[r + (TraceRec.d1 >> 2)] = d1;
    m[r + (TraceRec.d2 >> 2)] = d2;
    m[r + (TraceRec.d3 >> 2)] = d3;
    m[r + (TraceRec.d4 >> 2)] = d4;
    m[r + (TraceRec.d5 >> 2)] = d5;
    // Xen's head counts records ever written; head_ptr wraps within the data area.
    m[b + (TraceBuf.head >> 2)] = head + 1;
    m[b + (TraceBuf.head_ptr >> 2)] = buf + TraceBuf.SIZE + ((slot + 1) % this.nrRecs) * TraceRec.SIZE;
  }
}
