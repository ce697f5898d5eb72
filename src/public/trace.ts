/**
 * Trace buffers (Xen's public trace.h, MAR): the per-CPU buffer header and record layouts dom0
 * reads after DOM0_GETTBUFS, and the event codes Xen records. 32-bit layouts.
 */

/** struct t_buf: data = machine address of the records, size in records, head = next index. */
export const TraceBuf = Object.freeze({
  data: 0,
  size: 4,
  head: 8,
  head_ptr: 12,
  vdata: 16,
  SIZE: 20,
} as const);

/** struct t_rec: 64-bit cycle counter, event id, five data words. */
export const TraceRec = Object.freeze({
  cycles: 0,
  event: 8,
  d1: 12,
  d2: 16,
  d3: 20,
  d4: 24,
  d5: 28,
  SIZE: 32,
} as const);

/** Xen's default buffer size per CPU, in pages (boot option tbuf_size). */
export const TBUF_PAGES_PER_CPU = 10;

/** Event ids: the scheduler's (schedule.c) and dom0_op enter/leave (+ cmd). */
export const Trc = Object.freeze({
  SCHED_DOM_ADD: 0x00010000,
  SCHED_DOM_REM: 0x00010001,
  SCHED_WAKE: 0x00010002,
  SCHED_BLOCK: 0x00010003,
  SCHED_YIELD: 0x00010004,
  SCHED_SET_TIMER: 0x00010005,
  SCHED_CTL: 0x00010006,
  SCHED_ADJDOM: 0x00010007,
  SCHED_RESCHED: 0x00010008,
  SCHED_SWITCH: 0x00010009,
  DOM0OP_ENTER_BASE: 0x00020000,
  DOM0OP_LEAVE_BASE: 0x00030000,
  /** tsxen: every hypercall, event = base + number, d1 = domain, d2 = vcpu (not in MAR Xen). */
  HYPERCALL_BASE: 0x00040000,
} as const);
