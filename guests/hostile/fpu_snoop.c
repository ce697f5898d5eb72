/*
 * x87 state across domain switches (test/hostile-fpu.test.ts): two of us run side by side,
 * each with its own seed (cmdline seed=<n>, rounds=<n>). The hypervisor hands the x87 unit
 * from one context to the next without copying it (CpuContext.switchIn), so a slip would
 * show one domain the other's registers.
 *
 * First, before touching the x87: fnsave must show a new context's unit (no register image
 * but zeros). Then the domain loads eight values of its own and a control word of its own,
 * and for each round yields the CPU (the other domain runs and does the same with its values)
 * and checks that fnsave shows exactly its own control word, tags and register images, then
 * reloads them (fnsave reinitialises the unit).
 */
#include "hostile.h"

struct fsave {
	u32 cw, sw, tw, fip, fcs, foo, fos;
	u8 st[80];
} __attribute__((packed));

static struct fsave ref, now, first;

static void fnsave(struct fsave *f) { __asm__ __volatile__("fnsave %0" : "=m"(*f)::"memory"); }
static void frstor(struct fsave *f) { __asm__ __volatile__("frstor %0" ::"m"(*f) : "memory"); }

/* The image's control word, status word (TOP and condition codes), tags and registers. */
static int same_state(const struct fsave *a, const struct fsave *b)
{
	u32 i;
	if ((a->cw & 0xffff) != (b->cw & 0xffff) || (a->sw & 0xffff) != (b->sw & 0xffff) ||
	    (a->tw & 0xffff) != (b->tw & 0xffff))
		return 0;
	for (i = 0; i < sizeof(a->st); i++)
		if (a->st[i] != b->st[i])
			return 0;
	return 1;
}

void start_kernel(start_info_t *si)
{
	u32 seed, rounds, i, zero = 1, bad = 0, n;
	u16 cw;
	hostile_init(si, "fpu_snoop");
	seed = cmdline_u32(si, "seed", 1);
	rounds = cmdline_u32(si, "rounds", 200);

	/* A new context's unit: nothing of anyone else's in its registers. */
	fnsave(&first);
	for (i = 0; i < sizeof(first.st); i++)
		zero &= first.st[i] == 0;
	CHECK(zero, "fresh_unit_registers_zero");
	CHECK_EQ(first.cw & 0xffff, 0x037f, "fresh_unit_control_word");

	/* Our own state: rounding mode and precision from the seed, eight values of our own. */
	cw = (u16)(0x007f | ((seed & 3) << 10) | (((seed >> 2) & 1) ? 0x0200 : 0x0300));
	__asm__ __volatile__("fninit; fldcw %0" ::"m"(cw));
	for (i = 0; i < 8; i++) {
		n = seed * 1000u + i * 7u + 1u;
		__asm__ __volatile__("fildl %0" ::"m"(n));
	}
	fnsave(&ref);
	frstor(&ref);
	CHECK_EQ(ref.cw & 0xffff, cw, "own_control_word");
	CHECK_EQ(ref.tw & 0xffff, 0, "eight_registers_valid");

	for (i = 0; i < rounds; i++) {
		HYPERVISOR_sched_op(SCHEDOP_yield);
		fnsave(&now);
		bad += !same_state(&now, &ref);
		frstor(&now);
	}
	printk("FPU seed=%u rounds=%u bad=%u\n", seed, rounds, bad);
	CHECK_EQ(bad, 0, "own_x87_state_after_every_switch");
	checks_done();
}
