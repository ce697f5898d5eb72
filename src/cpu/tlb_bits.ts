/**
 * TLB entry bits (low 12 bits of an entry; the high 20 hold the physical frame address, so an
 * entry for a frame above 2 GiB is negative: addresses made from one are indexed with >>>).
 * A module of their own: V8 folds another module's constants into the code that imports them,
 * where cpu.ts's own exported ones were loaded and hole-checked at each use (the page walk).
 */
export const TLB_SUP_READ = 1;
export const TLB_USER_READ = 2;
export const TLB_SUP_WRITE = 4;
export const TLB_USER_WRITE = 8;
