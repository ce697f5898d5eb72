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
 * The second function is a loop of two blocks in the same page, A jumping to B and B back to
 * A, with B's operand rewritten instead: blocks of one page compiled together may pass control
 * to each other without a lookup, and the attacker's A (the same bytes as the twin's A, so the
 * same code) must still reach the attacker's B as it is now, the twin's A the twin's B.
 */
#include "hostile.h"

#define N 4000u
#define YIELD_EVERY 250u
#define ECX_VAL 0x100u /* bsf: 8 */
#define EDX_VAL 0x10000u /* bsf: 16 */

#define LOOP_FN 0x100u /* the two-block loop's entry in xpage */
#define LOOP_B 0x110u /* its block B: bsf ebx,ecx (modrm at B + 2); add eax,ebx; dec edi; jnz A */
#define LOOP_ITERS 16u

static u8 xpage[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

static u32 call_fn(u32 at)
{
	u32 r, iters = LOOP_ITERS;
	__asm__ __volatile__("call *%2"
			     : "=a"(r), "+D"(iters)
			     : "r"(xpage + at), "c"(ECX_VAL), "d"(EDX_VAL), "S"(xpage)
			     : "ebx", "memory");
	return r;
}

/* n calls of the function at `fn` summed, yielding now and then; byte `modrm` of xpage is set
 * to `rm` before call `at`. */
static u32 calls_of(u32 fn, u32 modrm, u32 n, u32 at, u8 rm)
{
	volatile u8 *code = xpage;
	u32 i, sum = 0;
	for (i = 0; i < n; i++) {
		if (i == at)
			code[modrm] = rm;
		if (i % YIELD_EVERY == 0)
			HYPERVISOR_sched_op(SCHEDOP_yield);
		sum += call_fn(fn);
	}
	return sum;
}

static u32 calls(u32 n, u32 at, u8 rm)
{
	return calls_of(0, 2, n, at, rm);
}

static u32 loops(u32 n, u32 at, u8 rm)
{
	return calls_of(LOOP_FN, LOOP_B + 2, n, at, rm);
}

/* A call of the loop: LOOP_ITERS passes of 1 + bsf(operand). */
#define LOOP_SUM(bsf) (LOOP_ITERS * (1u + (bsf)))

static void write_loop(void)
{
	static const u8 a[] = { 0x31, 0xc0, /* xor eax,eax */
				0x83, 0xc0, 0x01, /* A (0x102): add eax,1 */
				0xeb, LOOP_B - 0x107 /* jmp B */ };
	static const u8 b[] = { 0x0f, 0xbc, 0xd9, /* B: bsf ebx,ecx */
				0x01, 0xd8, /* add eax,ebx */
				0x4f, /* dec edi */
				0x75, (u8)(0x102 - (LOOP_B + 8)), /* jnz A */
				0xc3 /* ret */ };
	u32 i;
	for (i = 0; i < sizeof(a); i++)
		xpage[LOOP_FN + i] = a[i];
	for (i = 0; i < sizeof(b); i++)
		xpage[LOOP_B + i] = b[i];
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
	write_loop();
	if (twin) {
		/* The same phases as the attacker's, always its own code. */
		for (k = 0; k < 5; k++)
			CHECK_EQ(calls(N, N, 0), N * 8u, "twin_runs_its_own_code");
		for (k = 0; k < 5; k++)
			CHECK_EQ(loops(N, N, 0), N * LOOP_SUM(8u), "twin_runs_its_own_loop");
		printk("TWIN passed=%u failed=%u\n", checks_passed, checks_failed);
		for (;;)
			HYPERVISOR_sched_op(SCHEDOP_block);
	}
	CHECK_EQ(calls(N, N, 0), N * 8u, "own_code");
	CHECK_EQ(calls(N, N / 2, 0xc2), (N / 2) * 8u + (N / 2) * 16u, "rewritten_mid_loop");
	CHECK_EQ(calls(N, N, 0), N * 16u, "rewritten_code");
	CHECK_EQ(calls(N, N / 2, 0xc1), (N / 2) * 16u + (N / 2) * 8u, "rewritten_back_mid_loop");
	CHECK_EQ(calls(N, 0, 0xc2), N * 16u, "rewritten_again");
	CHECK_EQ(loops(N, N, 0), N * LOOP_SUM(8u), "own_loop");
	CHECK_EQ(loops(N, N / 2, 0xda), (N / 2) * (LOOP_SUM(8u) + LOOP_SUM(16u)), "loop_rewritten_mid_run");
	CHECK_EQ(loops(N, N, 0), N * LOOP_SUM(16u), "loop_rewritten");
	CHECK_EQ(loops(N, N / 2, 0xd9), (N / 2) * (LOOP_SUM(16u) + LOOP_SUM(8u)), "loop_rewritten_back_mid_run");
	CHECK_EQ(loops(N, 0, 0xda), N * LOOP_SUM(16u), "loop_rewritten_again");
	checks_done();
}
