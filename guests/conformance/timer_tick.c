/*
 * Conformance: the periodic 10 ms tick reaching a busy guest, and the time version protocol
 * (semantics.md §7.3, abi.md §2.7.2). The guest binds VIRQ_TIMER, unmasks events and spins
 * WITHOUT ever setting a one-shot timer: only the periodic tick can wake its handler. Each
 * tick must bump time_version1 and time_version2 together and move system_time by exactly
 * 10 ms, with tsc_timestamp and the wall clock moving by the same amount of time.
 */
#include "lib.h"

#define TICK_NS 10000000ull
#define SPIN_NS 30000000ull
#define MAX_EV 8

struct tick_sample {
	u32 v1, v2;
	u64 system_time, tsc_timestamp;
	u32 wc_sec, wc_usec;
	u64 now; /* time_now_ns() in the handler */
};

static u32 timer_port;
static volatile u32 timer_events;
static struct tick_sample samples[MAX_EV];

static void on_timer(u32 port, struct upcall_frame *f)
{
	volatile shared_info_t *s = HYPERVISOR_shared_info;
	struct tick_sample *t;
	u32 i = timer_events;
	timer_events = i + 1;
	if (i >= MAX_EV)
		return;
	t = &samples[i];
	t->v1 = s->time_version1;
	t->v2 = s->time_version2;
	t->system_time = s->system_time;
	t->tsc_timestamp = s->tsc_timestamp;
	t->wc_sec = s->wc_sec;
	t->wc_usec = s->wc_usec;
	t->now = time_now_ns();
}

static u64 wall_us(u32 sec, u32 usec)
{
	return (u64)sec * 1000000ull + usec;
}

void start_kernel(start_info_t *si)
{
	volatile shared_info_t *s;
	struct time_snapshot t;
	u64 start, now, prev, freq;
	u32 v1, v2, n, i, monotonic = 1, versions_ok = 1, steps_ok = 1, tsc_ok = 1, wc_ok = 1;
	u32 now_ok = 1;

	conf_init(si, "timer_tick");
	s = HYPERVISOR_shared_info;

	/* At rest (no update in progress) both version words are equal. */
	v1 = s->time_version1;
	v2 = s->time_version2;
	CHECK_EQ(v1, v2, "versions_equal_at_rest");
	time_read(&t);
	CHECK(t.cpu_freq != 0, "cpu_freq_nonzero");
	CHECK(t.cpu_freq >> 32 == 0, "cpu_freq_fits_32_bits");
	freq = t.cpu_freq;

	CHECK_EQ(evtchn_bind_virq(VIRQ_TIMER, &timer_port), 0, "bind_virq_timer");
	evtchn_handlers[timer_port] = on_timer;
	clear_bit(timer_port, HYPERVISOR_shared_info->evtchn_mask);

	/* Spin (no block, no set_timer_op) for 30 ms of guest time with events on. */
	start = prev = time_now_ns();
	events_enable();
	do {
		now = time_now_ns();
		if (now < prev)
			monotonic = 0;
		prev = now;
	} while (now - start < SPIN_NS);
	events_disable();
	n = timer_events;

	CHECK(monotonic, "guest_time_monotonic_while_spinning");
	CHECK(n >= 2, "periodic_tick_reaches_busy_guest");
	if (n < 2)
		printk("  timer events in 30 ms: %u\n", n);
	if (n > MAX_EV)
		n = MAX_EV;

	for (i = 0; i < n; i++) {
		struct tick_sample *c = &samples[i];
		if (c->v1 != c->v2)
			versions_ok = 0;
		if (c->now < c->system_time || c->now - c->system_time >= TICK_NS)
			now_ok = 0;
		if (i == 0) {
			if (c->v1 == v1 || c->system_time <= t.system_time)
				versions_ok = 0;
			continue;
		}
		struct tick_sample *p = &samples[i - 1];
		u64 dns = c->system_time - p->system_time;
		u64 dtsc = c->tsc_timestamp - p->tsc_timestamp;
		u64 dwc = wall_us(c->wc_sec, c->wc_usec) - wall_us(p->wc_sec, p->wc_usec);
		if (c->v1 <= p->v1 || c->v2 <= p->v2)
			versions_ok = 0;
		if (c->system_time <= p->system_time || c->tsc_timestamp <= p->tsc_timestamp)
			monotonic = 0;
		/* A busy guest takes every tick: consecutive ticks are exactly 10 ms apart. */
		if (dns != TICK_NS) {
			steps_ok = 0;
			printk("  tick %u: system_time step %u ns\n", i, (u32)dns);
		}
		/* tsc_timestamp moves by the same time at cpu_freq: dtsc * 1e9 / freq == dns. */
		if (udiv64_32(dtsc * 1000000000ull, (u32)freq, 0) != dns)
			tsc_ok = 0;
		if (dwc * 1000ull != dns)
			wc_ok = 0;
	}
	CHECK(versions_ok, "versions_advance_together_across_ticks");
	CHECK(monotonic, "system_time_and_tsc_timestamp_monotonic");
	CHECK(steps_ok, "system_time_steps_10ms_at_ticks");
	CHECK(tsc_ok, "tsc_timestamp_consistent_with_system_time");
	CHECK(wc_ok, "wall_clock_consistent_with_system_time");
	CHECK(now_ok, "tick_handler_runs_within_the_tick");

	/* At rest again: equal, and the snapshot taken through the protocol needs no retry. */
	CHECK_EQ(s->time_version1, s->time_version2, "versions_equal_after_ticks");
	time_read(&t);
	CHECK_EQ(t.retries, 0, "time_read_no_retry_at_rest");
	CHECK(n > 0 && t.system_time >= samples[n - 1].system_time, "system_time_not_back");

	checks_done();
}
