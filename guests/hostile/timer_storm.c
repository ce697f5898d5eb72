/*
 * A guest that sets its one-shot timer earlier again and again (test/hostile-timer-storm.test.ts,
 * beside a domain ticking every 1 ms and the hashed victim). Each set_timer_op earlier than the
 * last is an out-of-order insertion into its CPU's deadline queue (src/xen/scheduler.ts), which
 * shifts every later entry it left behind; every REBUILD_AT of them the queue is rebuilt from a
 * scan of the domains. A round sets deadlines latest first, ahead of now by up to 1 ms (in front
 * of the ticker's now and then) or by 2.5-4.5 ms, some rounds with a cancel (0) or a later one
 * among them; then it sleeps until the last one set. The timer must fire at it: not before (a wake
 * before it is counted), and not more than 50 us after.
 * cmdline: rounds=<R> n=<N>.
 */
#include "hostile.h"

static volatile u32 fired;

static void on_timer(u32 port, struct upcall_frame *f)
{
	(void)port;
	(void)f;
	fired++;
}

void start_kernel(start_info_t *si)
{
	u32 port = 0, r, k, rounds, n, overran = 0, late = 0, early = 0, nofire = 0, sets = 0;
	long badrc = 0;
	u64 worst = 0;
	hostile_init(si, "timer_storm");
	rounds = cmdline_u32(si, "rounds", 40);
	n = cmdline_u32(si, "n", 1500);
	CHECK_EQ(evtchn_bind_virq(VIRQ_TIMER, &port), 0, "timer_bound");
	evtchn_handlers[port] = on_timer;
	clear_bit(port, HYPERVISOR_shared_info->evtchn_mask);
	events_enable();
	for (r = 0; r < rounds; r++) {
		/* Odd rounds: n deadlines 1 us apart, 2.5-4.5 ms ahead (behind the ticker's). Even
		 * ones: n/5 deadlines 0.5 us apart within 1 ms, so in front of the ticker's now and
		 * then. A set costs ~2 us of virtual time: each lies ahead when set. */
		u32 m = r & 1 ? n : n / 5;
		u64 gap = r & 1 ? 1000ull : 500ull;
		u64 start = time_now_ns();
		u64 base = start + (u64)m * 2500ull + (u64)(r % 4) * 250000ull / (r & 1 ? 1 : 4);
		u64 last = 0, now;
		u32 fired0;
		for (k = 0; k < m; k++) {
			u64 t = base + (u64)(m - k) * gap;
			/* Now and then a cancel, or a deadline later than the rest. */
			if (r % 5 == 1 && k == m / 2)
				badrc |= HYPERVISOR_set_timer_op(0);
			if (r % 3 == 2 && k % 97 == 0 && k + 1 < m)
				t += 5000000ull;
			badrc |= HYPERVISOR_set_timer_op(t);
			sets++;
			last = t;
		}
		/* Every deadline set lay ahead when set, or the round tested the past's path. */
		if (time_now_ns() >= last)
			overran++;
		if (r < 2)
			printk("loop_ns=%u lead_ns=%u\n", (u32)(time_now_ns() - start), (u32)(last - start));
		fired0 = fired;
		while ((now = time_now_ns()) < last) {
			if (fired != fired0)
				early++;
			fired0 = fired;
			HYPERVISOR_sched_op(SCHEDOP_block);
		}
		if (fired == fired0 && now - last > 1000000ull)
			nofire++;
		if (now - last > worst)
			worst = now - last;
		if (now - last > 50000ull)
			late++;
	}
	CHECK_EQ(badrc, 0, "set_timer_op_ok");
	CHECK_EQ(overran, 0, "deadlines_ahead_when_set");
	CHECK_EQ(early, 0, "no_wake_before_the_deadline");
	CHECK_EQ(nofire, 0, "every_round_woken");
	CHECK_EQ(late, 0, "woken_within_50us");
	printk("STORM rounds=%u sets=%u worst_ns=%u\n", rounds, sets, (u32)worst);
	HYPERVISOR_set_timer_op(0);
	printk("DONE passed=%u failed=%u\n", checks_passed, checks_failed);
	for (;;)
		HYPERVISOR_sched_op(SCHEDOP_block);
}
