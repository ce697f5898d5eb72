/*
 * Conformance: every event_channel_op sub-op and error path an unprivileged domain can reach
 * (semantics.md §5.1-§5.3, abi.md §2.8.2): port table growth and -ENOSPC, alloc_unbound,
 * bind_interdomain (loopback to itself, every rule), bind_ipi, bind_pirq refusals, close,
 * send, status, and the notification rule seen from the shared-info bits.
 * Events stay masked (upcall_mask = 1) throughout: the bits are inspected directly.
 */
#include "lib.h"
#include "evtchn_ops.h"

#define NONEXISTENT_DOM 0x1234

static u32 me = 0xFFFF; /* our domain id, found by probing */

static void clear_port_bits(u32 port)
{
	clear_bit(port, ev_pending_words());
	clear_bit(port, ev_mask_words());
	vcpu0()->evtchn_pending_sel = 0;
	vcpu0()->evtchn_upcall_pending = 0;
	barrier();
}

static int pending(u32 port) { return test_bit(port, ev_pending_words()); }
static int sel_bit(u32 port) { return (vcpu0()->evtchn_pending_sel >> (port >> 5)) & 1; }

static void table_growth(void)
{
	u32 st, p, first = 0, last = 0, n = 0;
	long rc;

	/* A fresh domain has 16 ports (0..15). */
	CHECK_EQ(ev_status(DOMID_SELF, 15, &st, 0, 0), 0, "table_initial_port15_exists");
	CHECK_EQ(ev_status(DOMID_SELF, 16, &st, 0, 0), -EINVAL, "table_initial_port16_einval");
	CHECK_EQ(ev_close(DOMID_SELF, 16), -EINVAL, "close_beyond_table_einval");
	CHECK_EQ(ev_send(16), -EINVAL, "send_beyond_table_einval");

	/* Fill every port: 1..15, then growth to 48, 80, ... capped at 1024. */
	for (;;) {
		rc = ev_alloc_unbound(NONEXISTENT_DOM, &p);
		if (rc)
			break;
		if (!first)
			first = p;
		if (p != last + 1 && last)
			break;
		last = p;
		/* Bounded: real Xen's cap never triggers (DEVIATIONS.md), it would go on for ever. */
		if (++n > 1100)
			break;
		if (p == 16) {
			CHECK_EQ(ev_status(DOMID_SELF, 47, &st, 0, 0), 0, "table_grew_to_48_port47_exists");
			CHECK_EQ(ev_status(DOMID_SELF, 48, &st, 0, 0), -EINVAL, "table_grew_to_48_port48_einval");
		}
	}
	CHECK_EQ(first, 1, "alloc_first_port_is_1");
	CHECK_EQ(rc, -ENOSPC, "alloc_when_full_enospc");
	CHECK_EQ(last, 1023, "last_port_is_1023");
	CHECK_EQ(n, 1023, "ports_1_to_1023_allocated");
	CHECK(ev_status(DOMID_SELF, 1023, &st, 0, 0) == 0 && st == EVTCHNSTAT_unbound,
	      "port_1023_unbound");
	CHECK_EQ(ev_status(DOMID_SELF, 1024, &st, 0, 0), -EINVAL, "port_1024_einval");
	CHECK_EQ(ev_bind_ipi(0, &p), -ENOSPC, "bind_ipi_when_full_enospc");
	CHECK_EQ(evtchn_bind_virq(VIRQ_DEBUG, &p), -ENOSPC, "bind_virq_when_full_enospc");
	p = 0;
	{
		u32 p2 = 1;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &p, &p2), -ENOSPC,
			 "bind_interdomain_wildcard_when_full_enospc");
	}
	for (p = 1; p <= 1023; p++)
		if (ev_close(DOMID_SELF, p) != 0)
			break;
	CHECK_EQ(p, 1024, "close_all_1023_ports");
	/* The table does not shrink. */
	CHECK(ev_status(DOMID_SELF, 1023, &st, 0, 0) == 0 && st == EVTCHNSTAT_closed,
	      "table_keeps_its_size_after_close");
}

static void alloc_unbound(void)
{
	evtchn_op_t op;
	u32 p, st, u1;
	long rc;

	memset(&op, 0xEE, sizeof(op));
	op.u.alloc_unbound.dom = NONEXISTENT_DOM;
#ifdef XEN_ABI_JUL
	op.u.alloc_unbound.port = 0; /* JUL: in/out, 0 = allocate */
#endif
	rc = ev_op(&op, EVTCHNOP_alloc_unbound);
	p = op.u.alloc_unbound.port;
	CHECK(rc == 0 && p == 1, "alloc_unbound_nonexistent_dom_ok_port1");
	CHECK(EVOP_RESERVED_IS(op, 0xEEEEEEEE) && op.u._raw[2] == 0xEEEEEEEE &&
	      op.u.alloc_unbound.dom == NONEXISTENT_DOM,
	      "alloc_unbound_block_copied_back_whole");
	rc = ev_status(DOMID_SELF, p, &st, &u1, 0);
	CHECK(rc == 0 && st == EVTCHNSTAT_unbound && (u1 & 0xFFFF) == NONEXISTENT_DOM,
	      "status_unbound_reports_remote_dom");
	CHECK_EQ(ev_send(p), -EINVAL, "send_on_unbound_einval");
	CHECK_EQ(ev_close(DOMID_SELF, p), 0, "close_unbound_ok");
}

/* Finds our id: bind_interdomain(SELF, 0, SELF, p) works only if p awaits our own id. */
static void find_self(void)
{
	u32 id, p, p1, p2;
	int wrong_einval = 1;
	for (id = 0; id < 64 && me == 0xFFFF; id++) {
		if (ev_alloc_unbound(id, &p))
			break;
		p1 = 0;
		p2 = p;
		long rc = ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &p1, &p2);
		if (rc == 0)
			me = id;
		else if (rc != -EINVAL)
			wrong_einval = 0;
		if (rc == 0) {
			ev_close(DOMID_SELF, p1);
			ev_close(DOMID_SELF, p2);
		} else {
			ev_close(DOMID_SELF, p);
		}
	}
	CHECK(me != 0xFFFF, "loopback_bind_to_port_awaiting_self_ok");
	CHECK(wrong_einval, "bind_to_port_awaiting_other_domain_einval");
}

static void interdomain(void)
{
	u32 pa, p1, p2, st, u1, u2, free_port, vp, pb;

	CHECK_EQ(ev_alloc_unbound(me, &pa), 0, "alloc_unbound_for_self");
	p1 = 0;
	p2 = pa;
	CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &p1, &p2), 0, "bind_loopback_ok");
	CHECK(p2 == pa && p1 != pa && p1 != 0, "bind_loopback_ports_written_back");
	CHECK(ev_status(DOMID_SELF, p1, &st, &u1, &u2) == 0 && st == EVTCHNSTAT_interdomain &&
	      (u1 & 0xFFFF) == me && u2 == pa, "status_interdomain_port1");
	CHECK(ev_status(DOMID_SELF, pa, &st, &u1, &u2) == 0 && st == EVTCHNSTAT_interdomain &&
	      (u1 & 0xFFFF) == me && u2 == p1, "status_interdomain_port2");

	/* Idempotent rebinding returns the existing pair. */
	{
		u32 a = p1, b = pa;
		CHECK(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b) == 0 && a == p1 && b == pa,
		      "rebind_existing_pair_ok");
		a = p1, b = 0;
		CHECK(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b) == 0 && a == p1 && b == pa,
		      "rebind_port1_wildcard_port2_returns_pair");
		a = 0, b = pa;
		CHECK(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b) == 0 && a == p1 && b == pa,
		      "rebind_wildcard_port1_returns_pair");
	}
	free_port = 14;
	CHECK(ev_status(DOMID_SELF, free_port, &st, 0, 0) == 0 && st == EVTCHNSTAT_closed,
	      "setup_port14_free");
	{
		u32 a = p1, b = free_port;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b), -EINVAL,
			 "rebind_port1_to_other_port2_einval");
		a = free_port, b = 0;
		/* [QUIRK] unprivileged, port2 FREE (wildcard): EPERM even for dom2 = SELF. */
		CHECK_EQ_UNPRIV(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b), -EPERM,
			 "quirk_unpriv_free_port2_wildcard_eperm");
		a = 0, b = free_port;
		CHECK_EQ_UNPRIV(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b), -EPERM,
			 "quirk_unpriv_free_port2_eperm");
		a = 0, b = 0;
		CHECK_EQ_UNPRIV(ev_bind_interdomain(me, DOMID_SELF, &a, &b), -EPERM,
			 "unpriv_dom1_not_self_eperm");
		a = 0, b = 1;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, NONEXISTENT_DOM, &a, &b), -ESRCH,
			 "bind_nonexistent_dom2_esrch");
		a = 0x80000000u, b = 0;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, NONEXISTENT_DOM, &a, &b), -EINVAL,
			 "bind_negative_port1_einval_before_esrch");
		a = 0, b = 0xFFFFFFFFu;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b), -EINVAL,
			 "bind_negative_port2_einval");
		a = 5000, b = pa;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b), -EINVAL,
			 "bind_port1_beyond_table_einval");
		a = 0, b = 5000;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b), -EINVAL,
			 "bind_port2_beyond_table_einval");
		CHECK_EQ(evtchn_bind_virq(VIRQ_DEBUG, &vp), 0, "setup_bind_virq_debug");
		a = vp, b = pa;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b), -EINVAL,
			 "bind_port1_virq_einval");
		CHECK_EQ(ev_alloc_unbound(me, &pb), 0, "setup_second_unbound");
		a = 0, b = vp;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b), -EINVAL,
			 "bind_port2_virq_einval");
		CHECK_EQ(ev_close(DOMID_SELF, vp), 0, "close_virq_debug");
		CHECK_EQ(ev_alloc_unbound(NONEXISTENT_DOM, &vp), 0, "setup_unbound_for_other");
		a = vp, b = pb;
		CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &a, &b), -EINVAL,
			 "bind_port1_unbound_for_other_dom_einval");
		CHECK_EQ(ev_close(DOMID_SELF, vp), 0, "close_unbound_for_other");
		CHECK_EQ(ev_close(DOMID_SELF, pb), 0, "close_second_unbound");
	}

	/* send: pending on the remote end; the notification rule (semantics.md §5.3). */
	clear_port_bits(pa);
	clear_port_bits(p1);
	CHECK_EQ(ev_send(p1), 0, "send_interdomain_ok");
	CHECK(pending(pa) && !pending(p1), "send_sets_pending_on_remote_port");
	CHECK(sel_bit(pa) && vcpu0()->evtchn_upcall_pending == 1,
	      "send_sets_selector_and_upcall_pending_even_when_masked");
	vcpu0()->evtchn_upcall_pending = 0;
	vcpu0()->evtchn_pending_sel = 0;
	CHECK_EQ(ev_send(p1), 0, "send_again_ok");
	CHECK(vcpu0()->evtchn_upcall_pending == 0 && vcpu0()->evtchn_pending_sel == 0,
	      "second_send_with_pending_set_notifies_nothing");
	clear_port_bits(pa);
	set_bit(pa, ev_mask_words());
	CHECK_EQ(ev_send(p1), 0, "send_to_masked_port_ok");
	CHECK(pending(pa) && !sel_bit(pa) && vcpu0()->evtchn_upcall_pending == 0,
	      "masked_port_pending_without_selector_or_upcall");
	clear_bit(pa, ev_mask_words());
	CHECK_EQ(HYPERVISOR_xen_version(0) >= 0, 1, "unmask_then_hypercall");
	CHECK(!sel_bit(pa) && vcpu0()->evtchn_upcall_pending == 0, "unmask_renotifies_nothing");
	clear_port_bits(pa);
	vcpu0()->evtchn_pending_sel = 1u << (pa >> 5);
	CHECK_EQ(ev_send(p1), 0, "send_with_selector_already_set");
	CHECK(pending(pa) && vcpu0()->evtchn_upcall_pending == 0,
	      "selector_already_set_no_upcall_pending");
	clear_port_bits(pa);
	CHECK_EQ(ev_send(pa), 0, "send_other_direction_ok");
	CHECK(pending(p1), "send_other_direction_sets_pending");
	clear_port_bits(p1);

	/* close one end: the other goes back to UNBOUND awaiting us, and can be rebound. */
	CHECK_EQ(ev_close(DOMID_SELF, p1), 0, "close_interdomain_ok");
	CHECK(ev_status(DOMID_SELF, pa, &st, &u1, 0) == 0 && st == EVTCHNSTAT_unbound &&
	      (u1 & 0xFFFF) == me, "peer_becomes_unbound_awaiting_closer");
	CHECK_EQ(ev_send(pa), -EINVAL, "send_on_reverted_unbound_einval");
	p1 = 0;
	p2 = pa;
	CHECK_EQ(ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &p1, &p2), 0, "rebind_after_close_ok");
	CHECK_EQ(ev_close(DOMID_SELF, pa), 0, "close_other_end_ok");
	CHECK(ev_status(DOMID_SELF, p1, &st, &u1, 0) == 0 && st == EVTCHNSTAT_unbound,
	      "closing_port2_reverts_port1");
	CHECK_EQ(ev_close(DOMID_SELF, p1), 0, "close_reverted_port");
}

static void ipi(void)
{
	u32 p, p31, st, u1;
	CHECK_EQ(ev_bind_ipi(0, &p), 0, "bind_ipi_vcpu0_ok");
	CHECK(ev_status(DOMID_SELF, p, &st, &u1, 0) == 0 && st == EVTCHNSTAT_ipi && u1 == 0,
	      "status_ipi");
	clear_port_bits(p);
	CHECK_EQ(ev_send(p), 0, "send_ipi_ok");
	CHECK(pending(p) && vcpu0()->evtchn_upcall_pending, "send_ipi_pending_on_same_port");
	clear_port_bits(p);
#ifdef XEN_ABI_JUL
	/* JUL ipi_vcpu: the VCPU must exist (we have only VCPU 0). */
	(void)p31;
	CHECK_EQ(ev_bind_ipi(31, 0), -EINVAL, "bind_ipi_missing_vcpu31_einval");
	CHECK_EQ(ev_bind_ipi(1, 0), -EINVAL, "bind_ipi_missing_vcpu1_einval");
#else
	CHECK_EQ(ev_bind_ipi(31, &p31), 0, "bind_ipi_vcpu31_ok");
	CHECK(ev_status(DOMID_SELF, p31, &st, &u1, 0) == 0 && st == EVTCHNSTAT_ipi && u1 == 31,
	      "status_ipi_31");
	CHECK_EQ(ev_send(p31), -EINVAL, "send_ipi_to_missing_vcpu_einval");
#endif
	CHECK_EQ(ev_bind_ipi(32, 0), -EINVAL, "bind_ipi_32_einval");
	CHECK_EQ(ev_bind_ipi(0xFFFFFFFFu, 0), -EINVAL, "bind_ipi_minus1_einval");
	CHECK_EQ(ev_close(DOMID_SELF, p), 0, "close_ipi_ok");
#ifndef XEN_ABI_JUL
	CHECK_EQ(ev_close(DOMID_SELF, p31), 0, "close_ipi31_ok");
#endif
}

#ifdef XEN_ABI_JUL
/* JUL alloc_unbound: port in/out — 0 allocates, a named port is made (or kept) UNBOUND. */
static long alloc_at(u32 dom, u32 port_in, u32 *port_out)
{
	evtchn_op_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.u.alloc_unbound.dom = (domid_t)dom;
	op.u.alloc_unbound.port = port_in;
	rc = ev_op(&op, EVTCHNOP_alloc_unbound);
	if (port_out)
		*port_out = op.u.alloc_unbound.port;
	return rc;
}

static void alloc_unbound_in_out(void)
{
	u32 p = 0, q = 0, st, u1;
	CHECK(alloc_at(NONEXISTENT_DOM, 0, &p) == 0 && p == 1, "jul_alloc_port0_allocates_lowest");
	CHECK(alloc_at(NONEXISTENT_DOM, 5, &q) == 0 && q == 5, "jul_alloc_named_free_port");
	CHECK(ev_status(DOMID_SELF, 5, &st, &u1, 0) == 0 && st == EVTCHNSTAT_unbound &&
	      (u1 & 0xFFFF) == NONEXISTENT_DOM, "jul_named_port_unbound_for_dom");
	CHECK(alloc_at(NONEXISTENT_DOM, 5, &q) == 0 && q == 5, "jul_alloc_same_unbound_again_ok");
	CHECK_EQ(alloc_at(me, 5, 0), -EINVAL, "jul_alloc_unbound_for_other_dom_einval");
	CHECK_EQ(alloc_at(NONEXISTENT_DOM, 0xFFFFFFFFu, 0), -EINVAL, "jul_alloc_negative_port_einval");
	CHECK_EQ(alloc_at(NONEXISTENT_DOM, 1024, 0), -EINVAL, "jul_alloc_port_1024_einval");
	CHECK_EQ(ev_bind_ipi(0, &q), 0, "jul_setup_ipi_port");
	CHECK_EQ(alloc_at(NONEXISTENT_DOM, q, 0), -EINVAL, "jul_alloc_on_ipi_port_einval");
	CHECK(alloc_at(NONEXISTENT_DOM, 0, &st) == 0 && st == 3, "jul_alloc_port0_skips_used");
	CHECK_EQ(ev_close(DOMID_SELF, st), 0, "jul_close_3");
	CHECK_EQ(ev_close(DOMID_SELF, q), 0, "jul_close_ipi");
	CHECK_EQ(ev_close(DOMID_SELF, 5), 0, "jul_close_5");
	CHECK_EQ(ev_close(DOMID_SELF, p), 0, "jul_close_1");
}
#endif

static void pirq_and_privilege(void)
{
	u32 p, q, st;
	CHECK_EQ_UNPRIV(ev_bind_pirq(5, 0, &p), -EPERM, "bind_pirq_unprivileged_eperm");
	CHECK_EQ_UNPRIV(ev_bind_pirq(5, BIND_PIRQ__WILL_SHARE, &p), -EPERM, "bind_pirq_share_unprivileged_eperm");
	CHECK_EQ(ev_bind_pirq(128, 0, &p), -EINVAL, "bind_pirq_128_einval");
	CHECK_EQ(ev_bind_pirq(0xFFFFFFFFu, 0, &p), -EINVAL, "bind_pirq_minus1_einval");
	/* The refused bind left its port free. */
	CHECK_EQ(ev_alloc_unbound(NONEXISTENT_DOM, &q), 0, "setup_alloc_after_refused_pirq");
	CHECK_EQ_UNPRIV(q, 1, "refused_pirq_left_port_free");
	CHECK_EQ_UNPRIV(ev_close(me, q), -EPERM, "close_named_own_dom_unprivileged_eperm");
	CHECK_EQ_UNPRIV(ev_close(0, q), -EPERM, "close_other_dom_unprivileged_eperm");
	CHECK_EQ_UNPRIV(ev_status(0, q, &st, 0, 0), -EPERM, "status_other_dom_unprivileged_eperm");
	CHECK_EQ_UNPRIV(ev_close(DOMID_SELF, q), 0, "close_self_ok");
	CHECK_EQ(ev_close(DOMID_SELF, 0), -EINVAL, "close_reserved_port0_einval");
	CHECK(ev_status(DOMID_SELF, 0, &st, 0, 0) == 0 && st == EVTCHNSTAT_closed,
	      "status_reserved_port0_closed");
	CHECK_EQ(ev_close(DOMID_SELF, 0xFFFFFFFFu), -EINVAL, "close_negative_port_einval");
	CHECK_EQ(ev_status(DOMID_SELF, 0x80000000u, &st, 0, 0), -EINVAL,
		 "status_negative_port_einval");
	CHECK_EQ(ev_send(0xFFFFFFFFu), -EINVAL, "send_negative_port_einval");
}

static void physdev_unprivileged(void)
{
	physdev_op_t op;
	memset(&op, 0, sizeof(op));
	op.u.pci_cfgreg.value = 0x12345678;
#ifdef XEN_ABI_JUL
	/* JUL has no PCI physdev ops: their numbers are unknown commands (-EINVAL). */
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_CFGREG_READ), -EINVAL, "jul_physdev_pci_read_einval");
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_CFGREG_WRITE), -EINVAL, "jul_physdev_pci_write_einval");
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_INITIALISE_DEVICE), -EINVAL, "jul_physdev_pci_init_einval");
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_PROBE_ROOT_BUSES), -EINVAL, "jul_physdev_probe_einval");
	CHECK_EQ(pd_op(&op, 11), -EINVAL, "jul_physdev_cmd_11_einval");
#else
	CHECK_EQ_UNPRIV(pd_op(&op, PHYSDEVOP_PCI_CFGREG_READ), -EPERM, "physdev_pci_read_unprivileged_eperm");
	CHECK_EQ_UNPRIV(op.u.pci_cfgreg.value, 0xFFFFFFFF, "physdev_pci_read_refused_value_all_ones");
	memset(&op, 0, sizeof(op));
	CHECK_EQ_UNPRIV(pd_op(&op, PHYSDEVOP_PCI_CFGREG_WRITE), -EPERM, "physdev_pci_write_unprivileged_eperm");
	CHECK_EQ_UNPRIV(pd_op(&op, PHYSDEVOP_PCI_INITIALISE_DEVICE), -EPERM,
		 "physdev_pci_init_unprivileged_eperm");
	memset(&op, 0xAB, sizeof(op));
	CHECK_UNPRIV(pd_op(&op, PHYSDEVOP_PCI_PROBE_ROOT_BUSES) == 0 && op.u.pci_probe_root_buses.busmask[0] == 0 &&
	      op.u.pci_probe_root_buses.busmask[7] == 0, "physdev_probe_root_buses_empty");
#endif
	CHECK_EQ(pd_op(&op, PHYSDEVOP_IRQ_UNMASK_NOTIFY), 0, "physdev_unmask_notify_nothing_ok");
	memset(&op, 0, sizeof(op));
	op.u.irq_status_query.irq = 207;
	op.u.irq_status_query.flags = 0xFF;
	CHECK(pd_op(&op, PHYSDEVOP_IRQ_STATUS_QUERY) == 0 &&
	      op.u.irq_status_query.flags == PHYSDEVOP_IRQ_NEEDS_UNMASK_NOTIFY,
	      "physdev_status_query_no_privilege_needed");
	op.u.irq_status_query.irq = 208;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_IRQ_STATUS_QUERY), -EINVAL, "physdev_status_query_208_einval");
	memset(&op, 0, sizeof(op));
	op.u.set_iopl.iopl = 4;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_SET_IOPL), -EINVAL, "physdev_set_iopl_4_einval");
	op.u.set_iopl.iopl = 0;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_SET_IOPL), 0, "physdev_set_iopl_0_ok");
	memset(&op, 0, sizeof(op));
	op.u.set_iobitmap.bitmap = HYPERVISOR_VIRT_START - 4096;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_SET_IOBITMAP), -EINVAL, "physdev_iobitmap_crossing_xen_einval");
	op.u.set_iobitmap.bitmap = 0x10000000;
	op.u.set_iobitmap.nr_ports = 65537;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_SET_IOBITMAP), -EINVAL, "physdev_iobitmap_65537_ports_einval");
	op.u.set_iobitmap.nr_ports = 0;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_SET_IOBITMAP), 0, "physdev_iobitmap_ok");
	op.cmd = 8;
	CHECK_EQ(HYPERVISOR_physdev_op(&op), -EINVAL, "physdev_unknown_cmd_einval");
	CHECK_EQ(HYPERVISOR_physdev_op((void *)HYPERVISOR_VIRT_START), -EFAULT, "physdev_bad_pointer_efault");
}

void start_kernel(start_info_t *si)
{
	conf_init(si, "evtchn_full");
	events_disable();
	table_growth();
	alloc_unbound();
	find_self();
	printk("domain id %u\n", me);
	interdomain();
	ipi();
#ifdef XEN_ABI_JUL
	alloc_unbound_in_out();
#endif
	pirq_and_privilege();
	physdev_unprivileged();
	checks_done();
}
