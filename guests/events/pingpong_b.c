/*
 * Interdomain events, side B (the one that offers the port): alloc_unbound for A, then
 * answers each event from A with one of its own. Then a coalescing phase: after A's "go"
 * (sent once A has our last answer: two sends of ours in a row could coalesce into one
 * pending bit at A), with its port masked, B lets A send three events and finds one pending
 * bit and no upcall.
 * Finally B waits for A to close its end and sees its own port back in UNBOUND for A.
 * cmdline: peer=<A's domid> rounds=<N>.  (Data through a shared page comes with grant tables.)
 */
#include "lib.h"
#include "evtchn_ops.h"

static volatile u32 received;
static u32 port;

static void on_event(u32 p, struct upcall_frame *f)
{
	(void)p;
	(void)f;
	received++;
}

static void wait_for(u32 n)
{
	u32 spins = 0;
	events_disable();
	while (received < n && spins++ < 100000) {
		HYPERVISOR_sched_op(SCHEDOP_block); /* enables events */
		events_disable();
	}
}

void start_kernel(start_info_t *si)
{
	u32 peer, rounds, i, st, u1, upcalls, tries;
	conf_init(si, "pingpong_b");
	peer = cmdline_u32(si, "peer", 0xFFFF);
	rounds = cmdline_u32(si, "rounds", 10);
	CHECK(peer != 0xFFFF, "cmdline_names_peer");

	CHECK_EQ(ev_alloc_unbound(peer, &port), 0, "alloc_unbound_for_peer");
	CHECK_EQ(port, 1, "offered_port_is_1");
	evtchn_handlers[port] = on_event;

	/* Rounds: A sends, B answers. */
	for (i = 1; i <= rounds; i++) {
		wait_for(i);
		if (received != i)
			break;
		if (ev_send(port) != 0)
			break;
	}
	CHECK_EQ(received, rounds, "received_every_ping");
	CHECK(ev_status(DOMID_SELF, port, &st, &u1, 0) == 0 && st == EVTCHNSTAT_interdomain &&
	      (u1 & 0xFFFF) == peer, "status_interdomain_to_peer");

	/* Coalescing: after A's go, mask the port, tell A to send 3, wait for the pending bit. */
	wait_for(rounds + 1);
	CHECK_EQ(received, rounds + 1, "go_for_burst");
	events_disable();
	set_bit(port, ev_mask_words());
	upcalls = upcall_count;
	CHECK_EQ(ev_send(port), 0, "send_ready_for_burst");
	for (tries = 0; tries < 100000 && !test_bit(port, ev_pending_words()); tries++)
		HYPERVISOR_sched_op(SCHEDOP_yield);
	/* Give A time to finish its burst. */
	for (tries = 0; tries < 50; tries++)
		HYPERVISOR_sched_op(SCHEDOP_yield);
	CHECK(test_bit(port, ev_pending_words()), "burst_sets_pending_on_masked_port");
	CHECK(upcall_count == upcalls && received == rounds + 1, "masked_burst_no_upcall");
	/* The three sends coalesced into one pending bit: clearing it leaves nothing. */
	clear_bit(port, ev_pending_words());
	vcpu0()->evtchn_pending_sel = 0;
	vcpu0()->evtchn_upcall_pending = 0;
	clear_bit(port, ev_mask_words());
	events_enable();
	HYPERVISOR_xen_version(0);
	CHECK_EQ(received, rounds + 1, "burst_coalesced_into_one_pending_bit");
	CHECK_EQ(ev_send(port), 0, "ack_burst");

	/* A closes its end: ours returns to UNBOUND awaiting A. */
	for (tries = 0; tries < 100000; tries++) {
		if (ev_status(DOMID_SELF, port, &st, &u1, 0) == 0 && st == EVTCHNSTAT_unbound)
			break;
		HYPERVISOR_sched_op(SCHEDOP_yield);
	}
	CHECK(st == EVTCHNSTAT_unbound && (u1 & 0xFFFF) == peer, "peer_close_makes_port_unbound_for_peer");
	CHECK_EQ(ev_send(port), -EINVAL, "send_after_peer_closed_einval");
	checks_done();
}
