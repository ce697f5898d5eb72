/*
 * sched_op block and yield inside a multicall (test/hostile.test.ts, with a spinning domain
 * beside so that a yield switches away). Xen of 2005 switched inside the sub-call and never came
 * back to the batch: the rest was dropped and the CPU's multicall flag stayed set, so every
 * later multicall there failed with -EINVAL. tsxen does what Xen does since November 2006: the
 * sub-call gives 0 and the rest of the batch runs, as a continuation, when the vcpu runs again.
 * A block with an event pending gives 0 at once and the batch goes on; a shutdown inside a batch
 * stops the domain there, the rest of the batch never run.
 */
#include "hostile.h"

static u8 scratch[4096] BSS_PAGE;
static u8 alt[4096] BSS_PAGE;
static multicall_entry_t mc[4];
static volatile u32 ticks;

static void on_timer(u32 port, struct upcall_frame *f) { ticks++; }

static void entry(multicall_entry_t *e, u32 op, u32 a0, u32 a1, u32 a2)
{
	memset(e, 0, sizeof(*e));
	e->op = op;
	e->args[0] = a0;
	e->args[1] = a1;
	e->args[2] = a2;
	MC_RES(e) = 0x5555;
}

static u32 scratch_word(void) { return *(volatile u32 *)scratch; }

void start_kernel(start_info_t *si)
{
	u32 port = 0, version = HYPERVISOR_xen_version(0);
	u64 t0, deadline;
	hostile_init(si, "mc_sched");
	*(volatile u32 *)scratch = 0x5C5C5C5C;
	*(volatile u32 *)alt = 0xA17A17A1;
	CHECK_EQ(evtchn_bind_virq(VIRQ_TIMER, &port), 0, "timer_bound");
	evtchn_handlers[port] = on_timer;
	events_enable();

	/* [set_timer_op(+2 ms), block, update_va_mapping(scratch -> alt), xen_version] */
	t0 = time_now_ns();
	deadline = t0 + 2000000;
	entry(&mc[0], __HYPERVISOR_set_timer_op, (u32)(deadline >> 32), (u32)deadline, 0); /* MAR: high first */
	entry(&mc[1], __HYPERVISOR_sched_op, SCHEDOP_block, 0, 0);
	set_uvm(&mc[2], scratch, virt_to_mach(alt) | 3);
	entry(&mc[3], __HYPERVISOR_xen_version, 0, 0, 0);
	CHECK_EQ(HYPERVISOR_multicall(mc, 4), 0, "block_batch_returns_0");
	CHECK(time_now_ns() >= deadline, "block_batch_slept_until_the_timer");
	CHECK_EQ(MC_RES(&mc[1]), 0, "block_result_0");
	CHECK_EQ(MC_RES(&mc[2]), 0, "entry_after_block_ran");
	CHECK_EQ(scratch_word(), 0xA17A17A1, "entry_after_block_took_effect");
	CHECK_EQ(MC_RES(&mc[3]), version, "last_entry_after_block_ran");

	/* [yield, update_va_mapping(scratch -> home), xen_version]: the spinner runs meanwhile. */
	entry(&mc[0], __HYPERVISOR_sched_op, SCHEDOP_yield, 0, 0);
	set_uvm(&mc[1], scratch, virt_to_mach(scratch) | 3);
	entry(&mc[2], __HYPERVISOR_xen_version, 0, 0, 0);
	CHECK_EQ(HYPERVISOR_multicall(mc, 3), 0, "yield_batch_returns_0");
	CHECK_EQ(MC_RES(&mc[0]), 0, "yield_result_0");
	CHECK_EQ(MC_RES(&mc[1]), 0, "entry_after_yield_ran");
	CHECK_EQ(scratch_word(), 0x5C5C5C5C, "entry_after_yield_took_effect");
	CHECK_EQ(MC_RES(&mc[2]), version, "last_entry_after_yield_ran");

	/* A yield as the last entry: the batch's result is 0 however the scheduler goes (several
	 * times, so that some of the yields do switch to the spinner under any policy). */
	{
		u32 k, bad = 0, badres = 0;
		for (k = 0; k < 20; k++) {
			entry(&mc[0], __HYPERVISOR_xen_version, 0, 0, 0);
			entry(&mc[1], __HYPERVISOR_sched_op, SCHEDOP_yield, 0, 0);
			bad += HYPERVISOR_multicall(mc, 2) != 0;
			badres += MC_RES(&mc[1]) != 0;
		}
		CHECK_EQ(bad, 0, "yield_last_returns_0");
		CHECK_EQ(badres, 0, "yield_last_result_0");
	}

	/* Multicall still works afterwards (Xen 2005 left its flag set: -EINVAL from here on). */
	entry(&mc[0], __HYPERVISOR_xen_version, 0, 0, 0);
	CHECK_EQ(HYPERVISOR_multicall(mc, 1), 0, "multicall_usable_after");
	CHECK_EQ(MC_RES(&mc[0]), version, "multicall_usable_after_result");

	/* [block, xen_version] with an event pending (a timer tick taken while masked): the block
	 * gives 0 at once and the batch goes on (semantics.md §7.3): no switch away (a slice of the
	 * spinner's is 10 ms), and no sleep until the far timer set after the tick. */
	{
		u32 seen = ticks;
		u64 far, t1;
		events_disable();
		HYPERVISOR_set_timer_op(time_now_ns() + 100000);
		while (!vcpu0()->evtchn_upcall_pending)
			barrier();
		far = time_now_ns() + 200000000ull;
		HYPERVISOR_set_timer_op(far);
		entry(&mc[0], __HYPERVISOR_sched_op, SCHEDOP_block, 0, 0);
		entry(&mc[1], __HYPERVISOR_xen_version, 0, 0, 0);
		t1 = time_now_ns();
		CHECK_EQ(HYPERVISOR_multicall(mc, 2), 0, "pending_block_batch_returns_0");
		CHECK(time_now_ns() - t1 < 1000000, "pending_block_batch_returned_at_once");
		CHECK_EQ(MC_RES(&mc[0]), 0, "pending_block_result_0");
		CHECK_EQ(MC_RES(&mc[1]), version, "entry_after_pending_block_ran");
		/* The block enabled events: the pending tick was delivered. */
		CHECK_EQ(ticks, seen + 1, "pending_tick_delivered");
		HYPERVISOR_set_timer_op(0);
	}

	if (checks_failed)
		checks_done();
	printk("DONE passed=%u failed=%u\n", checks_passed, checks_failed);
	/* [console write, shutdown(poweroff), console write]: the domain stops at the sub-call and
	 * the rest of the batch never runs (test/hostile.test.ts reads the console). */
	{
		static const char before[] = "MC before shutdown\n", after[] = "MC after shutdown\n";
		entry(&mc[0], __HYPERVISOR_console_io, CONSOLEIO_write, sizeof(before) - 1, (u32)before);
		entry(&mc[1], __HYPERVISOR_sched_op,
		      SCHEDOP_shutdown | (SHUTDOWN_poweroff << SCHEDOP_reasonshift), 0, 0);
		entry(&mc[2], __HYPERVISOR_console_io, CONSOLEIO_write, sizeof(after) - 1, (u32)after);
		HYPERVISOR_multicall(mc, 3);
	}
	printk("FAIL shutdown_batch_came_back\n");
	guest_halt(SHUTDOWN_crash);
}
