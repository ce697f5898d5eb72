/*
 * Code that dom0 rewrites under a hot loop (test/hostile.test.ts 8g). dom0's backends write
 * into a domain's frames from the host (blkback's disk reads into a granted page, netback's
 * received packets, the console ring), not through the CPU, so the CPU's decoded and compiled
 * code of the frame must be dropped by those writes too: Linux reads a program's text from
 * disk into a page that may hold another program's old, already-decoded text.
 * This guest runs two functions thousands of times: FA inside page A, FB an instruction that
 * starts at the end of A and ends in page B (mov eax, imm32 with two immediate bytes in B).
 * Then it spins calling both while the test, as dom0, maps A and B and rewrites FA's immediate
 * and B's first two bytes, and sets `go`. The next calls must run the new bytes.
 */
#include "hostile.h"

#define N 6000u

static u8 xpage[2 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
volatile u32 go;

typedef u32 (*fn_t)(void);
#define FA_AT (xpage + 16)
#define FB_AT (xpage + PAGE_SIZE - 3) /* b8 at A+4093, immediate A+4094..B+1, ret at B+2 */

static u32 calls(fn_t f, u32 n)
{
	u32 i, sum = 0;
	for (i = 0; i < n; i++)
		sum += f();
	return sum;
}

void start_kernel(start_info_t *si)
{
	fn_t fa = (fn_t)FA_AT, fb = (fn_t)FB_AT;
	u32 spins = 0;
	hostile_init(si, "dom0_code");
	put_fn(FA_AT, 0x1111);
	put_fn(FB_AT, 0x0b0b0a0a);
	CHECK_EQ(calls(fa, N), N * 0x1111u, "fa_runs");
	CHECK_EQ(calls(fb, N), N * 0x0b0b0a0au, "fb_runs_across_the_page_boundary");
	printk("READY a=%u b=%u go=%u\n", virt_to_mach(xpage), virt_to_mach(xpage + PAGE_SIZE),
	       virt_to_mach((void *)&go));
	/* dom0 writes somewhere in here, between two of these instructions. */
	while (go == 0) {
		fa();
		fb();
		spins++;
	}
	CHECK(spins > 1000, "the_loop_ran_hot_while_dom0_wrote");
	CHECK_EQ(fa(), 0x2222u, "fa_runs_dom0s_immediate");
	CHECK_EQ(fb(), 0x0c0c0a0au, "fb_runs_dom0s_second_page");
	CHECK_EQ(calls(fa, N), N * 0x2222u, "fa_stays_rewritten");
	CHECK_EQ(calls(fb, N), N * 0x0c0c0a0au, "fb_stays_rewritten");
	checks_done();
}
