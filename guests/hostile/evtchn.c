/*
 * Event channels (issue 12, class 10): binding to, sending on, closing and asking about other
 * domains' ports (dom0's and the victim's), interdomain binds to domains that do not exist,
 * ports out of range, and a full port table. None may bind, close or signal anything of
 * anyone else's; the victim (with no ports) must never be woken.
 */
#include "hostile.h"

void start_kernel(start_info_t *si)
{
	u32 victim, p1, p2, i, bound = 0, n = 0, st;
	long rc = 0;
	hostile_init(si, "evtchn");
	victim = cmdline_u32(si, "victim", 0);

	/* Someone else's ports: dom0's (some bound to VIRQs) and the victim's (all free). */
	for (i = 0; i < 32; i++) {
		p1 = 0;
		p2 = i;
		if (ev_bind_interdomain(DOMID_SELF, 0, &p1, &p2) == 0)
			bound++;
		p1 = 0;
		p2 = i;
		if (ev_bind_interdomain(DOMID_SELF, victim, &p1, &p2) == 0)
			bound++;
	}
	CHECK_EQ(bound, 0, "no_bind_to_others_ports");
	p1 = 0;
	p2 = 1;
	CHECK_EQ(ev_bind_interdomain(victim, DOMID_SELF, &p1, &p2), -EPERM, "bind_as_victim");
	CHECK_EQ(ev_bind_interdomain(0, victim, &p1, &p2), -EPERM, "bind_dom0_to_victim");
	p1 = p2 = 0;
	CHECK_EQ(ev_bind_interdomain(DOMID_SELF, 999, &p1, &p2), -ESRCH, "bind_no_domain");
	CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_XEN, &p1, &p2), -ESRCH, "bind_domid_xen");
	CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_IO, &p1, &p2), -ESRCH, "bind_domid_io");
	p1 = 5000;
	CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &p1, &p2), -EINVAL, "bind_port_out_of_range");
	CHECK_EQ(ev_close(victim, 1), -EPERM, "close_victim_port");
	CHECK_EQ(ev_close(0, 1), -EPERM, "close_dom0_port");
	CHECK_EQ(ev_status(victim, 1, &st, 0, 0), -EPERM, "status_victim_port");
	CHECK_EQ(ev_status(0, 1, &st, 0, 0), -EPERM, "status_dom0_port");
	/* Our own ports out of range and unbound. */
	CHECK_EQ(ev_send(1024), -EINVAL, "send_1024");
	CHECK_EQ(ev_send(0xFFFFFFFFu), -EINVAL, "send_all_ones");
	CHECK_EQ(ev_send(0x80000000u), -EINVAL, "send_negative");
	CHECK_EQ(ev_send(3), -EINVAL, "send_free_port");
	CHECK_EQ(ev_close(DOMID_SELF, 0xFFFFFFFFu), -EINVAL, "close_all_ones");
	CHECK_EQ(ev_status(DOMID_SELF, 0x10000, &st, 0, 0), -EINVAL, "status_out_of_range");
	CHECK_EQ(ev_bind_pirq(1, 0, &p1), -EPERM, "bind_pirq_unprivileged");
	CHECK_EQ(ev_bind_pirq(128, 0, &p1), -EINVAL, "bind_pirq_out_of_range");
	{
		evtchn_op_t op;
		memset(&op, 0, sizeof(op));
		op.u.bind_virq.virq = NR_VIRQS;
		CHECK_EQ(ev_op(&op, EVTCHNOP_bind_virq), -EINVAL, "bind_virq_out_of_range");
		CHECK_EQ(ev_op(&op, 99), -ENOSYS, "unknown_cmd");
		CHECK_EQ(HYPERVISOR_event_channel_op((evtchn_op_t *)HYPERVISOR_VIRT_START), -EFAULT,
			 "op_in_xen_space");
	}
	/* An unbound port offered to the victim: sending on it reaches nobody. */
	CHECK_EQ(ev_alloc_unbound(victim, &p1), 0, "offer_port_to_victim");
	CHECK_EQ(ev_send(p1), -EINVAL, "send_unbound");
	CHECK_EQ(ev_close(DOMID_SELF, p1), 0, "close_offer");
	/* Fill our table: it ends with -ENOSPC, then every port closes again. */
	for (i = 0; i < 2048; i++) {
		rc = ev_alloc_unbound(victim, &p1);
		if (rc)
			break;
		n++;
	}
	CHECK_EQ(rc, -ENOSPC, "table_full_enospc");
	CHECK_EQ(n, NR_EVENT_CHANNELS - 1, "ports_1_to_1023");
	rc = 0;
	for (i = 1; i < NR_EVENT_CHANNELS; i++)
		rc |= ev_close(DOMID_SELF, i);
	CHECK_EQ(rc, 0, "all_closed");
	checks_done();
}
