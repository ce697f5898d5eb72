/**
 * Scheduler control (Xen's public sched_ctl.h, MAR): scheduler ids, directions and the two
 * structs DOM0_SCHEDCTL and DOM0_ADJUSTDOM carry in the dom0_op union. abi.md §2.12.
 */

/** Scheduler ids. Only BVT is built at MAR (quirk Q11). */
export const SchedId = Object.freeze({ BVT: 0, ATROPOS: 2, RROBIN: 3 } as const);

/** Direction of a scheduler control request. */
export const SchedInfo = Object.freeze({ PUT: 0, GET: 1 } as const);

/** sched_ctl_cmd, MAR (16 bytes): bvt.ctx_allow (ns) or rrobin.slice (u64) in the union at 8. */
export const SchedCtlCmd = Object.freeze({
  sched_id: 0,
  direction: 4,
  ctx_allow: 8,
  rrobin_slice: 8,
  SIZE: 16,
} as const);

/**
 * sched_adjdom_cmd, MAR (44 bytes, packed; the header's comments say 40 and give wrong offsets).
 * BVT: warpl/warpu are PUT in ms and read back in ns (quirk Q8).
 */
export const SchedAdjdomCmd = Object.freeze({
  sched_id: 0,
  direction: 4,
  domain: 8,
  mcu_adv: 16,
  warpback: 20,
  warpvalue: 24,
  warpl: 28,
  warpu: 36,
  atropos_nat_period: 16,
  atropos_nat_slice: 24,
  atropos_latency: 32,
  atropos_xtratime: 40,
  SIZE: 44,
} as const);

/** sched_ctl_cmd, JUL (12 bytes): only bvt.ctx_allow in the union. abi.md §2.12 */
export const SchedCtlCmdJul = Object.freeze({ sched_id: 0, direction: 4, ctx_allow: 8, SIZE: 12 } as const);

/** sched_adjdom_cmd, JUL (40 bytes, natural alignment: the union at 12). abi.md §2.12 */
export const SchedAdjdomCmdJul = Object.freeze({
  sched_id: 0,
  direction: 4,
  domain: 8,
  mcu_adv: 12,
  warpback: 16,
  warpvalue: 20,
  warpl: 24,
  warpu: 32,
  SIZE: 40,
} as const);
