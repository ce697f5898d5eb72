/**
 * event_channel_op (hypercall 16): commands, status values and layouts (Xen's public
 * event_channel.h). The sub-structs have the same offsets at MAR and JUL; only the envelope
 * differs (union at 8 vs 4). abi.md §2.8.
 */

/** EVTCHNOP_* commands. abi.md §2.8.1 */
export const EvtchnOp = Object.freeze({
  bind_interdomain: 0,
  bind_virq: 1,
  bind_pirq: 2,
  close: 3,
  send: 4,
  status: 5,
  alloc_unbound: 6,
  bind_ipi: 7,
} as const);

/** EVTCHNSTAT_* values returned by EVTCHNOP_status. abi.md §2.8.1 */
export const EvtchnStat = Object.freeze({
  closed: 0,
  unbound: 1,
  interdomain: 2,
  pirq: 3,
  virq: 4,
  ipi: 5,
} as const);

/** evtchn_bind_pirq_t.flags bit. abi.md §2.8.1 */
export const BIND_PIRQ__WILL_SHARE = 1;
/** bind_pirq with pirq >= NR_PIRQS is -EINVAL. abi.md §2.8.2 */
export const NR_PIRQS = 128;

/** evtchn_op_t, MAR (packed). Xen copies all 32 bytes in and out. abi.md §2.8.1 */
export const EvtchnOpMar = Object.freeze({ cmd: 0, __reserved: 4, u: 8, SIZE: 32 } as const);
/** evtchn_op_t, JUL. abi.md §2.8.1 */
export const EvtchnOpJul = Object.freeze({ cmd: 0, u: 4, SIZE: 24 } as const);

/** Union members, offsets relative to evtchn_op_t.u (both revisions). abi.md §2.8.1 */
export const EvtchnBindInterdomain = Object.freeze({
  dom1: 0,
  dom2: 2,
  port1: 4,
  port2: 8,
  SIZE: 12,
} as const);
export const EvtchnBindVirq = Object.freeze({ virq: 0, port: 4, SIZE: 8 } as const);
export const EvtchnBindPirq = Object.freeze({ pirq: 0, flags: 4, port: 8, SIZE: 12 } as const);
export const EvtchnClose = Object.freeze({ dom: 0, port: 4, SIZE: 8 } as const);
export const EvtchnSend = Object.freeze({ local_port: 0, SIZE: 4 } as const);
/**
 * EVTCHNOP_status. The result union at 12: unbound_dom / interdomain_dom (u16), interdomain_port
 * at 16, or pirq / virq / ipi_edom (JUL: ipi_vcpu) as u32 at 12. abi.md §2.8.1
 */
export const EvtchnStatus = Object.freeze({
  dom: 0,
  port: 4,
  status: 8,
  u: 12,
  unbound_dom: 12,
  interdomain_dom: 12,
  pirq: 12,
  virq: 12,
  ipi_edom: 12,
  interdomain_port: 16,
  SIZE: 20,
} as const);
/** MAR: port is output only. JUL: in/out, 0 = allocate. */
export const EvtchnAllocUnbound = Object.freeze({ dom: 0, port: 4, SIZE: 8 } as const);
/** ipi_edom (JUL: ipi_vcpu). */
export const EvtchnBindIpi = Object.freeze({ ipi_edom: 0, port: 4, SIZE: 8 } as const);
