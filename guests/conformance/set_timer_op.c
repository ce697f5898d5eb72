/*
 * Conformance: set_timer_op (hypercall 15, MAR: EBX = high 32 bits, ECX = low
 * 32 bits of an absolute system time in ns), abi.md §1.3, semantics §7.4.
 */
#include "lib.h"

#define TIMER_SLOP_NS 50000ull

static u32 timer_port;
static volatile u32 timer_events;
static volatile u32 sel_seen;

static void on_timer(u32 port, struct upcall_frame *f)
{
	timer_events++;
}

/* Block until a timer event arrives; returns the number of blocks (0 = gave up). */
static u32 wait_timer_event(void)
{
	u32 start = timer_events, i;
	events_enable();
	for (i = 1; i <= 2000; i++) {
		if (HYPERVISOR_sched_op(SCHEDOP_block) < 0) /* slept: EAX = hypercall number */
			break;
		if (timer_events != start) {
			events_disable();
			return i;
		}
	}
	events_disable();
	return 0;
}

/* Block until now >= deadline - slop with a timer event seen; 0 = gave up. */
static int wait_until(u64 deadline)
{
	u32 i;
	for (i = 0; i < 2000; i++) {
		if (!wait_timer_event())
			return 0;
		if (time_now_ns() + TIMER_SLOP_NS >= deadline)
			return 1;
	}
	return 0;
}

/* Records the selector and acknowledges the upcall, leaving the port bit pending. */
static void sel_hook(struct upcall_frame *f)
{
	vcpu_info_t *v = vcpu0();
	v->evtchn_upcall_pending = 0;
	sel_seen |= __atomic_exchange_n(&v->evtchn_pending_sel, 0, __ATOMIC_SEQ_CST);
}

void start_kernel(start_info_t *si)
{
	struct time_snapshot t;
	u64 t0, t1, deadline;
	u32 n;

	conf_init(si, "set_timer_op");

	/* Time from shared_info (version protocol). */
	time_read(&t);
	CHECK(t.cpu_freq != 0, "shared_info_cpu_freq_nonzero");
	t0 = time_now_ns();
	t1 = time_now_ns();
	CHECK(t1 >= t0, "system_time_monotonic");
	CHECK(t0 >= t.system_time, "now_not_before_last_update");

	CHECK_EQ(evtchn_bind_virq(VIRQ_TIMER, &timer_port), 0, "bind_virq_timer");
	evtchn_handlers[timer_port] = on_timer;

	/* One-shot timer 2 ms ahead wakes a blocked VCPU through VIRQ_TIMER. */
	deadline = time_now_ns() + 2000000ull;
	CHECK_EQ(HYPERVISOR_set_timer_op(deadline), 0, "future_deadline_returns_0");
	CHECK(wait_until(deadline), "one_shot_fires_at_deadline");

	/* A deadline in the past (EBX = 0 high, ECX = 1 low) fires at once. */
	CHECK_EQ(hypercall2(__HYPERVISOR_set_timer_op, 0, 1), 0, "past_deadline_returns_0");
	CHECK(wait_timer_event() != 0, "past_deadline_fires");

	/* The pending-selector bit for the port's word is set on delivery. */
	sel_seen = 0;
	upcall_hook = sel_hook;
	CHECK_EQ(HYPERVISOR_set_timer_op(1), 0, "past_deadline_again_returns_0");
	n = upcall_count;
	events_enable();
	while (upcall_count == n && HYPERVISOR_sched_op(SCHEDOP_block) >= 0)
		;
	events_disable();
	upcall_hook = 0;
	CHECK(sel_seen & (1u << (timer_port >> 5)), "pending_sel_bit_set");
	CHECK(test_bit(timer_port, HYPERVISOR_shared_info->evtchn_pending),
	      "port_pending_bit_set");
	clear_bit(timer_port, HYPERVISOR_shared_info->evtchn_pending);

	/* A later call replaces the one-shot: far (~4.3 s, high word 1) then near. */
	t0 = time_now_ns();
	CHECK_EQ(HYPERVISOR_set_timer_op(t0 + (1ull << 32)), 0, "far_deadline_high_word_returns_0");
	deadline = t0 + 2000000ull;
	CHECK_EQ(HYPERVISOR_set_timer_op(deadline), 0, "replace_deadline_returns_0");
	CHECK(wait_until(deadline), "replacement_fires");
	CHECK(time_now_ns() < t0 + 1000000000ull, "replacement_fires_before_far_deadline");

	/* 0 cancels; any 64-bit value is accepted. */
	CHECK_EQ(HYPERVISOR_set_timer_op(0), 0, "zero_cancels_returns_0");
	CHECK_EQ(HYPERVISOR_set_timer_op(0xFFFFFFFFFFFFFFFFull), 0, "max_deadline_returns_0");
	CHECK_EQ(HYPERVISOR_set_timer_op(0), 0, "cancel_again_returns_0");

	checks_done();
}
