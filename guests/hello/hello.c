/*
 * tsxen demo guest: greet, map shared_info, install callbacks and traps, bind
 * VIRQ_TIMER, arm a one-shot timer 10 ms ahead, block, take the timer event in
 * the upcall, say goodbye and power off.  Output is deterministic for a given
 * start_info.  Started by tsxend (xm create), it also answers the domain controller: an
 * xm shutdown or xm reboot while it waits makes it shut down with that reason.
 */
#include "lib.h"
#include "ctrl_if.h"

static u32 timer_port;
static volatile int timer_seen;

/* Runs inside the event callback (upcall_mask = 1, set by Xen). */
static void hello_upcall(struct upcall_frame *f)
{
	shared_info_t *s = HYPERVISOR_shared_info;
	vcpu_info_t *v = vcpu0();
	v->evtchn_upcall_pending = 0;
	__atomic_exchange_n(&v->evtchn_pending_sel, 0, __ATOMIC_SEQ_CST);
	if (test_bit(timer_port, s->evtchn_pending)) {
		clear_bit(timer_port, s->evtchn_pending);
		if (!timer_seen) {
			timer_seen = 1;
			printk("hello: timer event on port %u taken in the event callback\n",
			       timer_port);
		}
	}
	ctrl_if_event();
}

static void fatal(const char *what, long rc)
{
	printk("hello: %s failed: %d\n", what, (int)rc);
	guest_halt(SHUTDOWN_crash);
}

void start_kernel(start_info_t *si)
{
	struct time_snapshot t;
	u64 deadline;
	long rc;
	u32 blocks = 0;

	lib_init(si);
	printk("Hello from tsxen! (tsxen-test guest, Xen %u.%u interface)\n",
	       (u32)HYPERVISOR_xen_version(0) >> 16, (u32)HYPERVISOR_xen_version(0) & 0xFFFF);
	printk("hello: nr_pages=%u shared_info=%08x cmdline=\"%s\"\n", si->nr_pages,
	       si->shared_info, (const char *)si->cmd_line);

	rc = map_shared_info();
	if (rc)
		fatal("update_va_mapping(shared_info)", rc);
	printk("hello: shared_info mapped\n");

	rc = callbacks_init();
	if (rc)
		fatal("set_callbacks", rc);
	rc = traps_init();
	if (rc)
		fatal("set_trap_table", rc);
	printk("hello: callbacks and trap table installed\n");

	upcall_hook = hello_upcall;
	ctrl_if_init();
	rc = evtchn_bind_virq(VIRQ_TIMER, &timer_port);
	if (rc)
		fatal("bind_virq(VIRQ_TIMER)", rc);
	printk("hello: VIRQ_TIMER bound to port %u\n", timer_port);

	time_read(&t);
	deadline = t.system_time + 10000000ull; /* +10 ms */
	rc = HYPERVISOR_set_timer_op(deadline);
	if (rc)
		fatal("set_timer_op", rc);
	printk("hello: one-shot timer armed 10 ms ahead; blocking\n");

	events_enable();
	while (!timer_seen) {
		ctrl_if_check_shutdown("hello");
		/* A block that slept returns the hypercall number in EAX (Xen never writes it). */
		rc = HYPERVISOR_sched_op(SCHEDOP_block);
		if (rc < 0)
			fatal("sched_op(block)", rc);
		if (++blocks > 100000)
			fatal("waiting for the timer", -1);
	}
	events_disable();

	printk("hello: goodbye\n");
	guest_halt(SHUTDOWN_poweroff);
}
