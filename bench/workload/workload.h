/*
 * tsxen CPU benchmark workload — shared interface.
 *
 * The same workload.c is compiled twice: freestanding for i686 (run on the
 * tsxen CPU emulator, entered from start32.S) and natively for the host
 * (driven by native.c). Both builds must return the same checksum.
 */
#ifndef TSXEN_BENCH_WORKLOAD_H
#define TSXEN_BENCH_WORKLOAD_H

/* Default number of iterations of the kernel mix (about 2-4 s emulated at 50 MIPS). */
#ifndef WORKLOAD_ITERATIONS
#define WORKLOAD_ITERATIONS 1000
#endif

/* Default seed of the pseudo-random generator. */
#ifndef WORKLOAD_SEED
#define WORKLOAD_SEED 0x2545F491
#endif

/* The I/O port whose writes mark the start and end of a run (start32.S); unused on a PC. */
#define BENCH_PORT 0x5f0

#ifndef __ASSEMBLER__
/* Run the whole mix `iterations` times starting from `seed`; returns the checksum. */
unsigned int workload_run(unsigned int iterations, unsigned int seed);
#endif

#endif
