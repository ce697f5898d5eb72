/*
 * tsxen guest library: tiny asm probe functions for trap tests.
 * PROBE(name, setup, insn) defines void name(void *) which runs `setup`,
 * records ESP in probe_esp, executes `insn` at label name_insn (name_after
 * follows it) and returns.  Run it under trap_catch().
 */
#ifndef TSXEN_PROBE_H
#define TSXEN_PROBE_H

#include "lib.h"

extern volatile u32 probe_esp;  /* ESP at the probed instruction */
extern volatile u32 probe_addr; /* operand for memory probes */

#define PROBE(name, setup, insn)                                                          \
	__asm__(".pushsection .text\n"                                                    \
		".globl " #name ", " #name "_insn, " #name "_after\n" #name ":\n" setup "\n" \
		"	movl %esp, probe_esp\n" #name "_insn:\n	" insn "\n" #name "_after:\n" \
		"	ret\n"                                                            \
		".popsection\n");                                                         \
	extern char name##_insn[], name##_after[];                                        \
	void name(void *)

#endif
