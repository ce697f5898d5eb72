/*
 * Physical IRQs in a privileged (physdev-capable) domain (semantics.md §5.5, §9.1), run by
 * test/events.test.ts with the machine's line 8 a periodic edge device (every 5 ms) and
 * line 11 a level device the host asserts at 50 ms. cmdline: none.
 */
#include "lib.h"
#include "evtchn_ops.h"

static volatile u32 count8, count11;
static u32 p8, p11;

static void on8(u32 p, struct upcall_frame *f) { (void)p; (void)f; count8++; }
static void on11(u32 p, struct upcall_frame *f) { (void)p; (void)f; count11++; }
static void on_timer(u32 p, struct upcall_frame *f) { (void)p; (void)f; }

/* Blocks until *c >= n or timeout_ns passes; returns whether *c >= n. */
static int wait_count(volatile u32 *c, u32 n, u64 timeout_ns)
{
	u64 end = time_now_ns() + timeout_ns;
	events_disable();
	while (*c < n && time_now_ns() < end) {
		HYPERVISOR_set_timer_op(end);
		HYPERVISOR_sched_op(SCHEDOP_block);
		events_disable();
	}
	return *c >= n;
}

static long unmask_notify(void)
{
	physdev_op_t op;
	memset(&op, 0, sizeof(op));
	return pd_op(&op, PHYSDEVOP_IRQ_UNMASK_NOTIFY);
}

static u32 status_query(u32 irq)
{
	physdev_op_t op;
	memset(&op, 0, sizeof(op));
	op.u.irq_status_query.irq = irq;
	if (pd_op(&op, PHYSDEVOP_IRQ_STATUS_QUERY))
		return 0xDEAD;
	return op.u.irq_status_query.flags;
}

void start_kernel(start_info_t *si)
{
	u32 p, st, u1, tport, c;
	physdev_op_t op;

	conf_init(si, "pirq");
	CHECK(si->flags & SIF_PRIVILEGED, "start_info_privileged");
	CHECK_EQ(evtchn_bind_virq(VIRQ_TIMER, &tport), 0, "bind_virq_timer");
	evtchn_handlers[tport] = on_timer;

	CHECK_EQ(status_query(8), 0, "status_query_edge_line_no_unmask_notify");
	CHECK_EQ(status_query(11), PHYSDEVOP_IRQ_NEEDS_UNMASK_NOTIFY, "status_query_level_line_needs_notify");
	CHECK_EQ(status_query(100), PHYSDEVOP_IRQ_NEEDS_UNMASK_NOTIFY, "status_query_unwired_irq_needs_notify");

	CHECK_EQ(ev_bind_pirq(0, 0, &p), -EBUSY, "bind_pirq_xen_timer_irq0_ebusy");
	CHECK_EQ(ev_bind_pirq(2, BIND_PIRQ__WILL_SHARE, &p), -EBUSY, "bind_pirq_cascade_irq2_ebusy");
	CHECK_EQ(ev_bind_pirq(128, 0, &p), -EINVAL, "bind_pirq_128_einval");
	CHECK_EQ(ev_bind_pirq(8, 0, &p8), 0, "bind_pirq_8_ok");
	CHECK(ev_bind_pirq(8, BIND_PIRQ__WILL_SHARE, &p) == 0 && p == p8, "bind_pirq_again_same_port");
	CHECK(ev_status(DOMID_SELF, p8, &st, &u1, 0) == 0 && st == EVTCHNSTAT_pirq && u1 == 8,
	      "status_pirq");
	CHECK_EQ(ev_send(p8), -EINVAL, "send_on_pirq_port_einval");
	CHECK_EQ(ev_bind_pirq(11, BIND_PIRQ__WILL_SHARE, &p11), 0, "bind_pirq_11_shareable_ok");
	CHECK_EQ(ev_bind_pirq(100, 0, &p), 0, "bind_pirq_unwired_100_ok");
	CHECK_EQ(ev_close(DOMID_SELF, p), 0, "close_pirq_100");
	evtchn_handlers[p8] = on8;
	evtchn_handlers[p11] = on11;

	/* The periodic edge line delivers events without unmask-notify. */
	CHECK(wait_count(&count8, 3, 100000000ull), "periodic_edge_line_delivers_repeatedly");
	CHECK_EQ(unmask_notify(), 0, "unmask_notify_ok");

	/* The level line (asserted by the host at 50 ms) fires once, stays masked in flight... */
	CHECK(wait_count(&count11, 1, 200000000ull), "level_line_delivers");
	c = count11;
	wait_count(&count11, c + 1, 20000000ull);
	CHECK_EQ(count11, c, "level_line_in_flight_no_redelivery");
	/* ...a masked event port keeps it in flight across unmask-notify... */
	set_bit(p11, ev_mask_words());
	CHECK_EQ(unmask_notify(), 0, "unmask_notify_with_port_masked_ok");
	clear_bit(p11, ev_mask_words());
	wait_count(&count11, c + 1, 20000000ull);
	CHECK_EQ(count11, c, "masked_port_keeps_irq_in_flight");
	/* ...and unmask-notify with the port unmasked ends it: still asserted, it fires again. */
	CHECK_EQ(unmask_notify(), 0, "unmask_notify_unmasked_ok");
	CHECK(wait_count(&count11, c + 1, 20000000ull), "level_line_refires_after_unmask_notify");

	/* close unbinds; rebinding works. */
	CHECK_EQ(ev_close(DOMID_SELF, p8), 0, "close_pirq_ok");
	CHECK(ev_status(DOMID_SELF, p8, &st, 0, 0) == 0 && st == EVTCHNSTAT_closed, "closed_pirq_port_closed");
	c = count8;
	wait_count(&count8, c + 1, 20000000ull);
	CHECK_EQ(count8, c, "closed_pirq_delivers_nothing");
	CHECK(ev_bind_pirq(8, 0, &p) == 0, "rebind_pirq_after_close_ok");
	evtchn_handlers[p] = on8;
	CHECK(wait_count(&count8, c + 1, 50000000ull), "rebound_pirq_delivers");
	CHECK_EQ(ev_close(DOMID_SELF, p), 0, "close_rebound_pirq");
	CHECK_EQ(ev_close(DOMID_SELF, p11), 0, "close_pirq_11");

	/* physdev with privilege: PCI range checks and an empty slot (00:02.0 of the machine's
	 * bus, src/machine/pci.ts; guests/events/physdev_pci.c covers the devices); IOPL. */
	memset(&op, 0, sizeof(op));
	op.u.pci_cfgreg.bus = 256;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_CFGREG_READ), -EINVAL, "pci_read_bus_256_einval");
	op.u.pci_cfgreg.bus = 0;
	op.u.pci_cfgreg.dev = 32;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_CFGREG_READ), -EINVAL, "pci_read_dev_32_einval");
	op.u.pci_cfgreg.dev = 0;
	op.u.pci_cfgreg.func = 8;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_CFGREG_WRITE), -EINVAL, "pci_write_func_8_einval");
	op.u.pci_cfgreg.func = 0;
	op.u.pci_cfgreg.dev = 2;
	op.u.pci_cfgreg.value = 0;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_CFGREG_READ), -ENODEV, "pci_read_missing_device_enodev");
	CHECK_EQ(op.u.pci_cfgreg.value, 0xFFFFFFFF, "pci_read_missing_device_all_ones");
	CHECK_EQ(pd_op(&op, PHYSDEVOP_PCI_INITIALISE_DEVICE), -ENODEV, "pci_init_missing_device_enodev");
	memset(&op, 0, sizeof(op));
	op.u.set_iopl.iopl = 3;
	CHECK_EQ(pd_op(&op, PHYSDEVOP_SET_IOPL), 0, "set_iopl_3_ok");
	checks_done();
}
