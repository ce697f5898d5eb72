/*
 * A control ring with garbage indices (issue 12, class 11). The control interface's two
 * rings live in our shared_info page at +2048 (abi.md §4.6) and dom0 (the domain controller)
 * reads them on every notification. First a full ring of well-formed requests of a type
 * nobody serves (answered empty), then by mode=<n> an index that makes no sense:
 *   1 the tx request producer far ahead      2 the rx response producer beyond what dom0 sent
 *   3 the tx request producer one past the free room
 * and a notification. dom0 must drop our interface (its port closed: ours goes unbound)
 * without looping, crashing or writing outside the rings; the bytes around the rings carry a
 * pattern the test checks afterwards.
 */
#include "ctrl_if.h"
#include "hostile.h"

#define RING_BYTES ((u32)sizeof(control_if_t))

static volatile control_if_t *ctrl(void)
{
	return (volatile control_if_t *)(shared_info_page + CONTROL_IF_OFFSET);
}

/* Yields until cond() or a bounded number of rounds; returns whether cond() came true. */
static int wait_for(int (*cond)(void))
{
	u32 i;
	for (i = 0; i < 5000 && !cond(); i++)
		HYPERVISOR_sched_op(SCHEDOP_yield);
	return cond();
}

static u32 port;
static int answered_8(void)
{
	return ctrl()->tx_ring.rsp_prod == 8;
}
static int unbound(void)
{
	u32 st = 0;
	ev_status(DOMID_SELF, port, &st, 0, 0);
	return st == EVTCHNSTAT_unbound;
}

void start_kernel(start_info_t *si)
{
	u32 mode, i, bad = 0;
	volatile control_if_t *c;
	hostile_init(si, "ctrl_ring");
	mode = cmdline_u32(si, "mode", 0);
	port = si->domain_controller_evtchn;
	c = ctrl();
	CHECK(port != 0, "has_control_channel");
	/* The pattern around the rings (the shared_info struct itself ends at 588). */
	memset(shared_info_page + 1024, 0xA5, CONTROL_IF_OFFSET - 1024);
	memset(shared_info_page + CONTROL_IF_OFFSET + RING_BYTES, 0xA5,
	       PAGE_SIZE - CONTROL_IF_OFFSET - RING_BYTES);
	printk("RING pattern\n");

	/* A full ring of requests of an unserved type, each claiming 255 bytes. */
	for (i = 0; i < CONTROL_RING_SIZE; i++) {
		volatile control_msg_t *m = &c->tx_ring.ring[i];
		m->type = 0xEE;
		m->subtype = (u8)i;
		m->id = (u8)(0x40 + i);
		m->length = 255;
	}
	barrier();
	c->tx_ring.req_prod = CONTROL_RING_SIZE;
	CHECK_EQ(ev_send(port), 0, "notify_full_ring");
	CHECK(wait_for(answered_8), "eight_answers");
	for (i = 0; i < CONTROL_RING_SIZE; i++) {
		volatile control_msg_t *m = &c->tx_ring.ring[i];
		if (m->type != 0xEE || m->subtype != i || m->id != 0x40 + i || m->length != 0)
			bad++;
	}
	CHECK_EQ(bad, 0, "answers_echo_type_subtype_id_empty");

	switch (mode) {
	case 1:
		c->tx_ring.req_prod = 0xFFFFFFF0u;
		break;
	case 2:
		c->rx_ring.rsp_prod = 0x7FFFFFFFu;
		break;
	case 3:
		c->tx_ring.req_prod = CONTROL_RING_SIZE + CONTROL_RING_SIZE + 1;
		break;
	default:
		check_fail("mode", "unknown mode %u", mode);
	}
	barrier();
	CHECK_EQ(ev_send(port), 0, "notify_garbage");
	CHECK(wait_for(unbound), "dom0_dropped_the_interface");
	CHECK_EQ(ev_send(port), -EINVAL, "nobody_listens_any_more");
	checks_done();
}
