/*
 * tsxen counter guest: counts forever, one line per 100 ms of guest time, for the
 * toolstack's save/restore demo (xm save / xm restore, test/xm.test.ts).
 *
 * It answers the domain controller (lib/ctrl_if.c): xm shutdown and xm reboot reach it as
 * CMSG_SHUTDOWN requests on its control interface, and it shuts down with that reason
 * (unless its command line says "noctrl").
 *
 * The guest does nothing special for save/restore: the toolstack pauses it and saves it
 * transparently (docs/api.md, "Save and restore"). Each tick it re-checks that what it
 * knows of machine frames is still true after a restore: the p2m list (start_info.mfn_list)
 * must give frames it owns (a remap through it succeeds and reads the page back), and the
 * x87 registers must hold the values it left there (the FPU context travels too).
 */
#include "lib.h"
#include "ctrl_if.h"

#define TICK_NS 100000000ull /* 100 ms */

static u32 timer_port;
static volatile u32 timer_fired;
/* A page the guest remaps every tick through the p2m list, and the page it points it at. */
static u8 window[4096] BSS_PAGE;
static u8 target[4096] BSS_PAGE;

static void counter_upcall(struct upcall_frame *f)
{
	shared_info_t *s = HYPERVISOR_shared_info;
	vcpu_info_t *v = vcpu0();
	v->evtchn_upcall_pending = 0;
	__atomic_exchange_n(&v->evtchn_pending_sel, 0, __ATOMIC_SEQ_CST);
	if (test_bit(timer_port, s->evtchn_pending)) {
		clear_bit(timer_port, s->evtchn_pending);
		timer_fired = 1;
	}
	ctrl_if_event();
}

static void fatal(const char *what, long rc)
{
	printk("counter: %s failed: %d\n", what, (int)rc);
	guest_halt(SHUTDOWN_crash);
}

/* Remap `window` onto `target` through the p2m list and read the counter back through it. */
static int p2m_check(u32 n)
{
	long rc;
	*(volatile u32 *)target = n;
	rc = HYPERVISOR_update_va_mapping((u32)window,
					  virt_to_mach(target) | _PAGE_PRESENT | _PAGE_RW,
					  UVMF_INVLPG);
	if (rc)
		return (int)rc;
	return *(volatile u32 *)window == n ? 0 : -1;
}

static int cmdline_has(const char *s, const char *word)
{
	size_t n = strlen(word);
	for (; *s; s++)
		if (memcmp(s, word, n) == 0)
			return 1;
	return 0;
}

void start_kernel(start_info_t *si)
{
	u64 next;
	u32 n = 0;
	long rc;
	/* Loaded onto the x87 stack once; it must still be there after every tick. */
	const u32 fpu_magic = 31337;
	u32 fpu_seen;
	int spin;

	lib_init(si);
	printk("counter: starting (nr_pages=%u)\n", si->nr_pages);
	if ((rc = map_shared_info()))
		fatal("update_va_mapping(shared_info)", rc);
	if ((rc = callbacks_init()))
		fatal("set_callbacks", rc);
	if ((rc = traps_init()))
		fatal("set_trap_table", rc);
	upcall_hook = counter_upcall;
	if ((rc = evtchn_bind_virq(VIRQ_TIMER, &timer_port)))
		fatal("bind_virq(VIRQ_TIMER)", rc);
	/* extra = "noctrl": a guest that never listens to the domain controller (the tests'
	 * xm shutdown timeout). */
	if (!cmdline_has((const char *)si->cmd_line, "noctrl"))
		ctrl_if_init();
	/* extra = "spin": waits for each tick busy, never blocking (xm top's 100% CPU). */
	spin = cmdline_has((const char *)si->cmd_line, "spin");
	__asm__ __volatile__("fninit; fildl %0" : : "m"(fpu_magic));

	next = time_now_ns() + TICK_NS;
	events_enable();
	for (;;) {
		timer_fired = 0;
		if ((rc = HYPERVISOR_set_timer_op(next)))
			fatal("set_timer_op", rc);
		while (!timer_fired && time_now_ns() < next) {
			/* Restored on a machine whose clock is behind the one it was saved on:
			 * system time went back, so start the tick again from now. */
			if (time_now_ns() + 2 * TICK_NS < next) {
				next = time_now_ns() + TICK_NS;
				HYPERVISOR_set_timer_op(next);
			}
			ctrl_if_check_shutdown("counter");
			if (!spin)
				HYPERVISOR_sched_op(SCHEDOP_block);
		}
		ctrl_if_check_shutdown("counter");
		/* The next tick is 100 ms after this one was seen: a domain that was saved for
		 * a while carries on counting at the same pace rather than catching up. */
		next = time_now_ns() + TICK_NS;
		n++;
		/* Peek at st(0) without popping it. */
		__asm__ __volatile__("fistl %0" : "=m"(fpu_seen));
		rc = p2m_check(n);
		if (rc)
			printk("counter: FAIL p2m remap after %u: %d\n", n, (int)rc);
		if (fpu_seen != fpu_magic)
			printk("counter: FAIL fpu st(0)=%u after %u\n", fpu_seen, n);
		printk("counter: %u\n", n);
	}
}
