/*
 * Interdomain events, side A (the binder): bind_interdomain(SELF, 0, B, port) to B's
 * offered port (retrying until B has offered it), then ping B and wait for each answer;
 * then a "go" once the last answer is in (so B's "ready" cannot coalesce with that answer
 * into one pending bit), a burst of three sends for B's coalescing check; then close.
 * cmdline: peer=<B's domid> port=<B's port> rounds=<N>.
 */
#include "lib.h"
#include "evtchn_ops.h"

static volatile u32 received;

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
		HYPERVISOR_sched_op(SCHEDOP_block);
		events_disable();
	}
}

void start_kernel(start_info_t *si)
{
	u32 peer, pport, rounds, i, tries, p1 = 0, p2, st, u1, u2;
	long rc = -1;
	int only_expected_errors = 1;
	conf_init(si, "pingpong_a");
	peer = cmdline_u32(si, "peer", 0xFFFF);
	pport = cmdline_u32(si, "port", 1);
	rounds = cmdline_u32(si, "rounds", 10);
	CHECK(peer != 0xFFFF, "cmdline_names_peer");

	/* Before B offers the port it is FREE (-EPERM for us) or beyond B's table (-EINVAL). */
	for (tries = 0; tries < 100000; tries++) {
		p1 = 0;
		p2 = pport;
		rc = ev_bind_interdomain(DOMID_SELF, peer, &p1, &p2);
		if (rc == 0)
			break;
		if (rc != -EPERM && rc != -EINVAL)
			only_expected_errors = 0;
		HYPERVISOR_sched_op(SCHEDOP_yield);
	}
	CHECK_EQ(rc, 0, "bind_to_peer_offered_port");
	CHECK(only_expected_errors, "before_offer_only_eperm_or_einval");
	CHECK(p2 == pport && p1 == 1, "bound_ports_written_back");
	CHECK(ev_status(DOMID_SELF, p1, &st, &u1, &u2) == 0 && st == EVTCHNSTAT_interdomain &&
	      (u1 & 0xFFFF) == peer && u2 == pport, "status_interdomain_to_peer");
	evtchn_handlers[p1] = on_event;

	for (i = 1; i <= rounds; i++) {
		if (ev_send(p1) != 0)
			break;
		wait_for(i);
		if (received != i)
			break;
	}
	CHECK_EQ(received, rounds, "every_ping_answered");
	CHECK_EQ(ev_send(p1), 0, "go_for_burst");

	/* B says ready (one event), then we send a burst of three and wait for its ack. */
	wait_for(rounds + 1);
	CHECK_EQ(received, rounds + 1, "peer_ready_for_burst");
	CHECK(ev_send(p1) == 0 && ev_send(p1) == 0 && ev_send(p1) == 0, "burst_of_three_sends_ok");
	wait_for(rounds + 2);
	CHECK_EQ(received, rounds + 2, "peer_acked_burst");

	CHECK_EQ(ev_close(DOMID_SELF, p1), 0, "close_our_end");
	CHECK(ev_status(DOMID_SELF, p1, &st, 0, 0) == 0 && st == EVTCHNSTAT_closed, "our_end_closed");
	checks_done();
}
