/*
 * Conformance: event_channel_op (hypercall 16), MAR 32-byte evtchn_op_t with the
 * union at offset 8; focus on bind_virq (abi.md §2.8, semantics §5.2).
 */
#include "lib.h"

static evtchn_op_t op;

static long evop(u32 cmd)
{
	op.cmd = cmd;
	return HYPERVISOR_event_channel_op(&op);
}

static long status(u32 port, u32 *st)
{
	memset(&op, 0, sizeof(op));
	op.u.status.dom = DOMID_SELF;
	op.u.status.port = port;
	long rc = evop(EVTCHNOP_status);
	*st = op.u.status.status;
	return rc;
}

static long close_port(u32 port)
{
	memset(&op, 0, sizeof(op));
	op.u.close.dom = DOMID_SELF;
	op.u.close.port = port;
	return evop(EVTCHNOP_close);
}

static long send_port(u32 port)
{
	memset(&op, 0, sizeof(op));
	op.u.send.local_port = port;
	return evop(EVTCHNOP_send);
}

void start_kernel(start_info_t *si)
{
	u32 timer_port = 0, debug_port = 0, p6 = 0, p, st;
	long rc;
	int i, ok;

	conf_init(si, "event_channel_op");

	/* bind_virq: the op block is copied back whole; port at offset 12. */
	memset(&op, 0, sizeof(op));
	EVOP_RESERVED_SET(op, 0x13572468);
	op.u.bind_virq.virq = VIRQ_TIMER;
	op.u.bind_virq.port = 0xFFFFFFFF;
	op.u._raw[2] = 0xCAFEF00D;
	rc = evop(EVTCHNOP_bind_virq);
	timer_port = op.u.bind_virq.port;
	CHECK_EQ(rc, 0, "bind_virq_timer_ok");
	/* Lowest free port: 1 (port 0 is reserved), or 2 when the builder bound the
	 * control channel to port 1 (xend's default, abi.md §4.6). */
	CHECK_EQ(timer_port, si->domain_controller_evtchn == 1 ? 2 : 1, "first_port_is_lowest_free");
	CHECK(op.cmd == EVTCHNOP_bind_virq && op.u.bind_virq.virq == VIRQ_TIMER,
	      "bind_virq_inputs_preserved");
	CHECK_EQ(((u32 *)&op)[(EVOP_U + 4) / 4], timer_port, "bind_virq_port_at_offset_12");
	CHECK(EVOP_RESERVED_IS(op, 0x13572468) && op.u._raw[2] == 0xCAFEF00D,
	      "bind_virq_other_bytes_preserved");

	/* Already bound: returns the existing port. */
	rc = evtchn_bind_virq(VIRQ_TIMER, &p);
	CHECK(rc == 0 && p == timer_port, "bind_virq_again_same_port");

	rc = evtchn_bind_virq(VIRQ_DEBUG, &debug_port);
	CHECK(rc == 0 && debug_port == timer_port + 1, "bind_virq_debug_next_free_port");
	rc = evtchn_bind_virq(6, &p6);
	CHECK(rc == 0 && p6 == debug_port + 1, "bind_virq_6_below_nr_virqs_ok");

	CHECK_EQ(evtchn_bind_virq(NR_VIRQS, &p), -EINVAL, "bind_virq_7_einval");
	CHECK_EQ(evtchn_bind_virq(0xFFFFFFFF, &p), -EINVAL, "bind_virq_minus1_einval");
	CHECK_EQ(evtchn_bind_virq(0x100, &p), -EINVAL, "bind_virq_0x100_einval");

	/* status */
	rc = status(timer_port, &st);
	CHECK(rc == 0 && st == EVTCHNSTAT_virq && op.u.status.u.virq == VIRQ_TIMER,
	      "status_virq_port");
	rc = status(debug_port, &st);
	CHECK(rc == 0 && st == EVTCHNSTAT_virq && op.u.status.u.virq == VIRQ_DEBUG,
	      "status_debug_port");
	rc = status(0, &st);
	CHECK(rc == 0 && st == EVTCHNSTAT_closed, "status_port0_reserved_closed");
	rc = status(5, &st);
	CHECK(rc == 0 && st == EVTCHNSTAT_closed, "status_free_port_closed");
	CHECK_EQ(status(NR_EVENT_CHANNELS, &st), -EINVAL, "status_port_1024_einval");

	/* send is only for interdomain / IPI ports. */
	CHECK_EQ(send_port(timer_port), -EINVAL, "send_on_virq_port_einval");
	CHECK_EQ(send_port(5), -EINVAL, "send_on_free_port_einval");
	CHECK_EQ(send_port(0), -EINVAL, "send_on_port0_einval");
	CHECK_EQ(send_port(5000), -EINVAL, "send_out_of_range_einval");

	/* close */
	CHECK_EQ(close_port(0), -EINVAL, "close_port0_einval");
	CHECK_EQ(close_port(5), -EINVAL, "close_free_port_einval");
	CHECK_EQ(close_port(5000), -EINVAL, "close_out_of_range_einval");
	CHECK_EQ(close_port(debug_port), 0, "close_virq_port_ok");
	rc = status(debug_port, &st);
	CHECK(rc == 0 && st == EVTCHNSTAT_closed, "closed_port_status_closed");
	CHECK_EQ(close_port(debug_port), -EINVAL, "close_twice_einval");
	/* The VIRQ is unbound: binding it again allocates the lowest free port. */
	rc = evtchn_bind_virq(VIRQ_DEBUG, &p);
	CHECK(rc == 0 && p == debug_port, "rebind_after_close_lowest_free_port");

	/* Unknown commands and bad pointers. */
	memset(&op, 0, sizeof(op));
	CHECK_EQ(evop(8), -ENOSYS, "cmd_8_enosys");
	CHECK_EQ(evop(0xFFFF), -ENOSYS, "cmd_0xffff_enosys");
	CHECK_EQ(HYPERVISOR_event_channel_op((evtchn_op_t *)HYPERVISOR_VIRT_START), -EFAULT,
		 "hypervisor_va_efault");
	CHECK_EQ(HYPERVISOR_event_channel_op((evtchn_op_t *)(HYPERVISOR_VIRT_START - 16)), -EFAULT,
		 "straddling_virt_start_efault");
	CHECK_EQ(HYPERVISOR_event_channel_op((evtchn_op_t *)0x10000000), -EFAULT,
		 "unmapped_efault");

	/* The bound timer VIRQ delivers to its port: pending bit set, upcall taken. */
	CHECK_EQ(HYPERVISOR_set_timer_op(1), 0, "setup_timer_past_deadline");
	ok = 0;
	events_enable();
	upcall_hook = 0;
	for (i = 0; i < 1000 && !ok; i++) {
		u32 before = upcall_count;
		if (HYPERVISOR_sched_op(SCHEDOP_block) < 0) /* slept: EAX = hypercall number */
			break;
		ok = upcall_count != before && last_upcall_sel_at_entry & (1u << (timer_port >> 5));
	}
	events_disable();
	CHECK(ok, "virq_timer_delivered_to_bound_port");

	checks_done();
}
