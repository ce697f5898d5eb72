/* Conformance: sched_op (hypercall 6), abi.md §2.13.4 (MAR). */
#include "lib.h"

void start_kernel(start_info_t *si)
{
	struct hc_regs in, before, after;
	u32 n, port, slept = 0, other = 0;
	u64 deadline;
	long rc;
	int i;

	conf_init(si, "sched_op");

	/* A yield returns 0, unless another vcpu ran: Xen's do_yield switches away inside
	 * __enter_scheduler and never stores its result, so EAX keeps the hypercall number. */
	rc = HYPERVISOR_sched_op(SCHEDOP_yield);
	CHECK(rc == 0 || rc == __HYPERVISOR_sched_op, "yield_returns_0_or_keeps_eax");
	/* Only bits 7:0 select the command. */
	rc = HYPERVISOR_sched_op(0xABCD00u | SCHEDOP_yield);
	CHECK(rc == 0 || rc == __HYPERVISOR_sched_op, "yield_high_bits_ignored");

#ifdef XEN_ABI_JUL
	/* JUL: vcpu_down (3) / vcpu_up (4), VCPU id in bits 8 and up (abi.md §1.4). */
	CHECK_EQ(HYPERVISOR_sched_op(SCHEDOP_vcpu_down | (5 << SCHEDOP_vcpushift)), -ESRCH,
		 "vcpu_down_absent_vcpu_esrch");
	CHECK_EQ(HYPERVISOR_sched_op(SCHEDOP_vcpu_up | (31 << SCHEDOP_vcpushift)), -ESRCH,
		 "vcpu_up_absent_vcpu_esrch");
	CHECK_EQ(HYPERVISOR_sched_op(SCHEDOP_vcpu_down | (32 << SCHEDOP_vcpushift)), -EINVAL,
		 "vcpu_down_32_einval");
	CHECK_EQ(HYPERVISOR_sched_op(SCHEDOP_vcpu_up | (0x1000u << SCHEDOP_vcpushift)), -EINVAL,
		 "vcpu_up_huge_einval");
	CHECK_EQ(HYPERVISOR_sched_op(SCHEDOP_vcpu_up), 0, "vcpu_up_running_self_ok");
	CHECK_EQ(HYPERVISOR_sched_op(5), -ENOSYS, "op_5_enosys");
#else
	CHECK_EQ(HYPERVISOR_sched_op(3), -ENOSYS, "op_3_enosys");
	CHECK_EQ(HYPERVISOR_sched_op(4), -ENOSYS, "op_4_vcpu_up_not_at_mar_enosys");
#endif
	CHECK_EQ(HYPERVISOR_sched_op(0xFF), -ENOSYS, "op_0xff_enosys");
	CHECK_EQ(HYPERVISOR_sched_op(0x1FF), -ENOSYS, "op_0x1ff_enosys");

	/* Mini-OS (March) spins on yield relying on EBX/EDX surviving. */
	memset(&in, 0, sizeof(in));
	memset(&before, 0, sizeof(before));
	memset(&after, 0, sizeof(after));
	in.eax = __HYPERVISOR_sched_op;
	in.ebx = SCHEDOP_yield;
	in.edx = __HYPERVISOR_sched_op;
	in.eflags = 0x202;
	hc_probe(&in, &before, &after);
	CHECK((after.eax == 0 || after.eax == __HYPERVISOR_sched_op) && after.ebx == SCHEDOP_yield &&
	      after.edx == __HYPERVISOR_sched_op,
	      "yield_preserves_ebx_edx");

	/* block with an event already pending returns at once, having cleared the
	 * mask, and the upcall is delivered on the way back. */
	n = upcall_count;
	events_disable();
	vcpu0()->evtchn_upcall_pending = 1;
	rc = HYPERVISOR_sched_op(SCHEDOP_block);
	CHECK_EQ(rc, 0, "block_with_pending_returns_0");
	CHECK_EQ(upcall_count - n, 1, "block_clears_mask_and_upcall_delivered");
	CHECK_EQ(vcpu0()->evtchn_upcall_mask, 0, "mask_clear_after_block");
	events_disable();

	/* block until a one-shot timer fires (VIRQ_TIMER bound, port unmasked). */
	rc = evtchn_bind_virq(VIRQ_TIMER, &port);
	CHECK_EQ(rc, 0, "bind_virq_timer");
	n = upcall_count;
	deadline = time_now_ns() + 1000000ull;
	rc = HYPERVISOR_set_timer_op(deadline);
	CHECK_EQ(rc, 0, "set_timer_1ms");
	/* A block that really sleeps resumes through Xen's context switch, never through the
	 * hypercall's result store: EAX still holds the hypercall number (real Xen, issue 17).
	 * One that finds an event pending (the timer already fired, a periodic tick) returns 0
	 * at once; then the timer is armed again, until a block has slept. */
	for (i = 0; i < 1000 && (upcall_count == n || slept == 0); i++) {
		if (time_now_ns() >= deadline) {
			deadline = time_now_ns() + 1000000ull;
			HYPERVISOR_set_timer_op(deadline);
		}
		rc = HYPERVISOR_sched_op(SCHEDOP_block);
		if (rc == __HYPERVISOR_sched_op)
			slept++;
		else if (rc != 0)
			other++;
	}
	events_disable();
	CHECK(slept > 0 && other == 0, "block_that_sleeps_leaves_eax_hypercall_number");
	CHECK(upcall_count != n, "block_woken_by_timer_event");

	checks_done(); /* SCHEDOP_shutdown: poweroff (or crash) */
}
