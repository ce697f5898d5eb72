/*
 * The gdb stub's x87 test guest (test/gdb.test.ts): puts known values on the x87 stack (fld1,
 * fldpi, then 2.5 from memory) and calls fpu_loaded(), where gdb stops to read them (`info
 * float`, `p $st0`) and may write one (`set $st0 = ...`); then it stores ST(0) as an integer
 * (rounded to nearest) and prints it, so the guest itself shows what gdb wrote.
 */
#include "lib.h"

static const double two_and_a_half = 2.5;
volatile int stored;

void fpu_loaded(void)
{
	barrier();
}

void start_kernel(start_info_t *si)
{
	(void)si;
	__asm__ __volatile__("fninit; fld1; fldpi; fldl %0" : : "m"(two_and_a_half));
	fpu_loaded();
	__asm__ __volatile__("fistpl %0" : "=m"(stored));
	printk("dbg: st0=%d\n", stored);
	guest_halt(SHUTDOWN_poweroff);
}
