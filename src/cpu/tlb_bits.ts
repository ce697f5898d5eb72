/**
 * TLB entry bits (low 12 bits of an entry; the high 20 hold the physical frame address, so an
 * entry for a frame above 2 GiB is negative: addresses made from one are indexed with >>>).
 * A module of their own, so that cpu.ts can take them as plain consts (destructured from the
 * namespace, as it does regs.ts's): an exported or imported binding is a module cell that V8's
 * optimized code loads and hole-checks at each use (the page walk's TLB bits).
 */
export const TLB_SUP_READ = 1;
export const TLB_USER_READ = 2;
export const TLB_SUP_WRITE = 4;
export const TLB_USER_WRITE = 8;
