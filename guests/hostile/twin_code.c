/*
 * Code shared between two domains (test/hostile.test.ts 8e). tsxen shares compiled code across
 * domains: JS block factories by generated source, wasm functions by body (src/cpu/blocks.ts,
 * src/cpu/wasm/backend.ts); each block keeps its own decoded operands and handler sites. Two
 * domains run this image, the attacker and its twin (`twin=1`): both call a function at the
 * same virtual address, in frames of their own, with the same bytes, so their blocks share
 * code. The attacker rewrites its copy's operand (bsf eax,ecx becomes bsf eax,edx: the same
 * block body, another operand) between and inside phases, yielding to the twin every few
 * hundred calls. Each phase's sum says which code each domain's calls ran: a block that ran
 * the other domain's operands shows.
 */
#include "hostile.h"

#define N 4000u
#define YIELD_EVERY 250u
#define ECX_VAL 0x100u /* bsf: 8 */
#define EDX_VAL 0x10000u /* bsf: 16 */

static u8 xpage[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

static u32 call_fn(void)
{
	u32 r;
	__asm__ __volatile__("call *%3" : "=a"(r) : "c"(ECX_VAL), "d"(EDX_VAL), "S"(xpage) : "memory");
	return r;
}

/* n calls summed, yielding now and then; the modrm byte is set to `rm` before call `at`. */
static u32 calls(u32 n, u32 at, u8 rm)
{
	volatile u8 *code = xpage;
	u32 i, sum = 0;
	for (i = 0; i < n; i++) {
		if (i == at)
			code[2] = rm;
		if (i % YIELD_EVERY == 0)
			HYPERVISOR_sched_op(SCHEDOP_yield);
		sum += call_fn();
	}
	return sum;
}

void start_kernel(start_info_t *si)
{
	u32 k;
	int twin;
	hostile_init(si, "twin_code");
	twin = cmdline_u32(si, "twin", 0) != 0;
	/* bsf eax, ecx; ret */
	xpage[0] = 0x0f;
	xpage[1] = 0xbc;
	xpage[2] = 0xc1;
	xpage[3] = 0xc3;
	if (twin) {
		/* The same phases as the attacker's, always its own code. */
		for (k = 0; k < 5; k++)
			CHECK_EQ(calls(N, N, 0), N * 8u, "twin_runs_its_own_code");
		printk("TWIN passed=%u failed=%u\n", checks_passed, checks_failed);
		for (;;)
			HYPERVISOR_sched_op(SCHEDOP_block);
	}
	CHECK_EQ(calls(N, N, 0), N * 8u, "own_code");
	CHECK_EQ(calls(N, N / 2, 0xc2), (N / 2) * 8u + (N / 2) * 16u, "rewritten_mid_loop");
	CHECK_EQ(calls(N, N, 0), N * 16u, "rewritten_code");
	CHECK_EQ(calls(N, N / 2, 0xc1), (N / 2) * 16u + (N / 2) * 8u, "rewritten_back_mid_loop");
	CHECK_EQ(calls(N, 0, 0xc2), N * 16u, "rewritten_again");
	checks_done();
}
