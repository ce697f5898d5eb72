/*
 * An idle domain, for bench/scale-bench.ts (npm run bench:scale): boots, binds VIRQ_TIMER,
 * prints "idle: ready" and then sleeps like an idle kernel with a periodic tick: arm the
 * timer `tick_ms` ahead, block, take the event, again (tick_ms=0: block with no timer).
 * cmdline: tick_ms=<N> (default 10, a 100 Hz tick).
 */
#include "lib.h"
#include "evtchn_ops.h"

static volatile u32 ticks;

static void on_timer(u32 port, struct upcall_frame *f)
{
	(void)port;
	(void)f;
	ticks++;
}

void start_kernel(start_info_t *si)
{
	u32 tick_ms, port;
	long rc;

	lib_init(si);
	if ((rc = map_shared_info()) || (rc = callbacks_init()) || (rc = traps_init()) ||
	    (rc = evtchn_bind_virq(VIRQ_TIMER, &port))) {
		printk("idle: setup failed rc=%d\n", (int)rc);
		guest_halt(SHUTDOWN_crash);
	}
	tick_ms = cmdline_u32(si, "tick_ms", 10);
	evtchn_handlers[port] = on_timer;
	clear_bit(port, HYPERVISOR_shared_info->evtchn_mask);
	printk("idle: ready, tick %u ms\n", tick_ms);
	events_enable();
	for (;;) {
		if (tick_ms != 0)
			HYPERVISOR_set_timer_op(time_now_ns() + (u64)tick_ms * 1000000ull);
		HYPERVISOR_sched_op(SCHEDOP_block);
	}
}
