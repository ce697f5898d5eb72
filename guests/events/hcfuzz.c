/*
 * Hypercall fuzzer: thousands of hypercalls with random numbers and arguments, pointers
 * aimed at its own memory (filled with random bytes), at the hypervisor boundary and at
 * nowhere. The hypervisor must answer each with an errno, a bounced fault or a clean crash of
 * this domain; never an internal error. cmdline: seed=N count=N.
 */
#include "evtchn_ops.h"
#include "lib.h"

static u32 state;
static u32 rnd(void)
{
	state ^= state << 13;
	state ^= state >> 17;
	state ^= state << 5;
	return state;
}

static u8 scratch[3 * 4096] __attribute__((aligned(4096)));

static u32 arg(void)
{
	switch (rnd() % 8) {
	case 0: return rnd();
	case 1: return rnd() % 64;
	case 2: return (u32)scratch + (rnd() % sizeof(scratch));
	case 3: return (u32)scratch + (rnd() % 64) * 8;
	case 4: return 0xfc000000u - (rnd() % 64);
	case 5: return 0;
	case 6: return 0x7ff0u + (rnd() % 4); /* DOMID_SELF.. */
	default: return rnd() & 0xfffff003u;
	}
}

void start_kernel(start_info_t *si)
{
	state = (cmdline_u32(si, "seed", 1) * 0x9e3779b1u) | 1;
	u32 count = cmdline_u32(si, "count", 2000);
	printk("hcfuzz: seed=%u count=%u\n", state, count);
	for (u32 i = 0; i < count; i++) {
		for (u32 k = 0; k < 64; k++) scratch[rnd() % sizeof(scratch)] = (u8)rnd();
		u32 nr = rnd() % 34;
		u32 a1 = arg(), a2 = arg(), a3 = arg(), a4 = arg(), a5 = arg();
		if ((nr & 31) == __HYPERVISOR_sched_op) a1 = SCHEDOP_yield; /* no shutdown or block */
		if ((nr & 31) == __HYPERVISOR_console_io) a2 &= 63;       /* keep the console readable */
		if ((nr & 31) == __HYPERVISOR_set_timer_op) a1 = 0;       /* no far-future timers */
		hypercall5(nr, a1, a2, a3, a4, a5);
	}
	printk("hcfuzz: done\n");
	HYPERVISOR_sched_op(SCHEDOP_shutdown | (SHUTDOWN_poweroff << SCHEDOP_reasonshift));
	for (;;)
		;
}
