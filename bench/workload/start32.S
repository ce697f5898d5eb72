/*
 * Entry point of the emulated benchmark run (32-bit protected mode, flat
 * segments, paging off, CPL 0). Sets up a private stack, runs the workload
 * with the parameters in bench_params, stores the checksum in bench_result
 * (and leaves it in EAX) and halts.
 *
 * The same image boots on the bare tsxen CPU and, through its multiboot
 * header, as a multiboot kernel on other emulators (v86): both enter here in
 * the same state. A warm-up run comes first when bench_params + 8 is not
 * zero, so one boot gives a cold and a steady-state figure. Each run is
 * bracketed by writes to BENCH_PORT, which the host timestamps:
 *   BENCH_PORT <- 1 (warm-up starts), 2 (it ended), 3 (measured run starts),
 *   4 (it ended); BENCH_PORT + 4 <- the run's checksum just before 2 and 4.
 *
 * bench_params is in .data so the host can patch it in the loaded image
 * (found through the ELF symbol table) without rebuilding:
 *   bench_params + 0: iterations
 *   bench_params + 4: seed
 *   bench_params + 8: warm-up iterations (0: none)
 * bench_result + 0: checksum, bench_result + 4: BENCH_DONE once written.
 */
#include "workload.h"

#define BENCH_DONE 0x600DD0DE
#define MULTIBOOT_MAGIC 0x1BADB002

  .section .text.start, "ax"
  /* Multiboot header (flags 0: the loader takes the layout from the ELF headers). */
  .balign 4
  .long MULTIBOOT_MAGIC
  .long 0
  .long -MULTIBOOT_MAGIC

  .globl _start
  .type _start, @function
_start:
  movl $__stack_top, %esp
  xorl %ebp, %ebp
  movw $BENCH_PORT, %dx
  movl bench_params + 8, %ecx
  testl %ecx, %ecx
  jz 2f
  movl $1, %eax
  outl %eax, %dx
  pushl bench_params + 4
  pushl %ecx
  call workload_run
  addl $8, %esp
  movw $BENCH_PORT + 4, %dx
  outl %eax, %dx
  movw $BENCH_PORT, %dx
  movl $2, %eax
  outl %eax, %dx
2:
  movl $3, %eax
  outl %eax, %dx
  pushl bench_params + 4
  pushl bench_params
  call workload_run
  addl $8, %esp
  movw $BENCH_PORT + 4, %dx
  outl %eax, %dx
  movw $BENCH_PORT, %dx
  movl %eax, %ecx
  movl $4, %eax
  outl %eax, %dx
  movl %ecx, %eax
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
  .long 0
  .size bench_params, 12
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
