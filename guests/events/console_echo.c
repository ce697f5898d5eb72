/*
 * Console input: CONSOLEIO_read returns the bytes the host queued (hv.consoleInput, or
 * `tsxen run`'s stdin). Polls for up to 2 s of guest time until a newline arrives, prints
 * "echo: <bytes>" and reports whether anything came.
 */
#include "lib.h"

static char buf[256];

void start_kernel(start_info_t *si)
{
	u32 got = 0;
	u64 deadline;

	conf_init(si, "console_echo");
	/* Sleep between polls: a one-shot timer 1 ms ahead, then block. */
	evtchn_bind_virq(VIRQ_TIMER, 0);
	events_enable();
	deadline = time_now_ns() + 2000000000ull;
	while (got < sizeof(buf) - 1 && time_now_ns() < deadline) {
		long rc = HYPERVISOR_console_io(CONSOLEIO_read, sizeof(buf) - 1 - got, buf + got);
		if (rc < 0)
			break;
		got += rc;
		if (got > 0 && buf[got - 1] == '\n')
			break;
		HYPERVISOR_set_timer_op(time_now_ns() + 1000000ull);
		HYPERVISOR_sched_op(SCHEDOP_block);
	}
	buf[got] = 0;
	printk("echo: %s", buf);
	if (got == 0 || buf[got - 1] != '\n')
		printk("\n");
	CHECK(got > 0, "read_host_bytes");
	checks_done();
}
