/*
 * Entry point of the emulated benchmark run (32-bit protected mode, flat
 * segments, paging off, CPL 0). Sets up a private stack, runs the workload
 * with the parameters in bench_params, stores the checksum in bench_result
 * (and leaves it in EAX) and halts.
 *
 * bench_params is in .data so the host can patch it in the loaded image
 * (found through the ELF symbol table) without rebuilding:
 *   bench_params + 0: iterations
 *   bench_params + 4: seed
 * bench_result + 0: checksum, bench_result + 4: BENCH_DONE once written.
 */
#include "workload.h"

#define BENCH_DONE 0x600DD0DE

  .section .text.start, "ax"
  .globl _start
  .type _start, @function
_start:
  movl $__stack_top, %esp
  xorl %ebp, %ebp
  pushl bench_params + 4
  pushl bench_params
  call workload_run
  addl $8, %esp
  movl %eax, bench_result
  movl $BENCH_DONE, bench_result + 4
1:
  hlt
  jmp 1b
  .size _start, . - _start

  .data
  .balign 4
  .globl bench_params
  .type bench_params, @object
bench_params:
  .long WORKLOAD_ITERATIONS
  .long WORKLOAD_SEED
  .size bench_params, 8
  .globl bench_result
  .type bench_result, @object
bench_result:
  .long 0
  .long 0
  .size bench_result, 8

  .section .bss.stack, "aw", @nobits
  .balign 16
__stack_bottom:
  .space 65536
  .globl __stack_top
__stack_top:

  .section .note.GNU-stack, "", @progbits
