/*
 * Test network frontend: XenLinux's netfront protocol of March 2005 against the domain
 * controller and dom0's netback, run as two guests on one bridge (test/netif.test.ts).
 *
 * Both negotiate (driver UP -> DISCONNECTED with their MAC, INTERFACE_CONNECT -> CONNECTED)
 * and post receive buffers the way netfront did: each buffer page is unmapped and given back
 * to Xen (decrease_reservation); a packet arrives in a page netback flips to us, which we map
 * where the buffer was and enter in our p2m and M2P.
 *
 * "role=pong" broadcasts READY every 20 ms until pinged, then answers each PING with a PONG of
 * the same sequence number and payload, until BYE.  "role=ping" waits for READY, sends 8 PINGs
 * of sizes up to 1514 and checks each PONG, then sends what a broken frontend would (a runt, an
 * oversized frame, one crossing its page, frames that are not ours): each must be refused with
 * NETIF_RSP_ERROR, and garbage ring indices must get the interface disconnected.
 *
 * "role=spoof" sends from the victim's MAC and others not its own (see spoof()).
 *
 * "role=dhcp" is alone on a bridge with a passt uplink (test/passt.test.ts): it
 * broadcasts a DHCP DISCOVER until an OFFER comes (bounded), prints the address and router
 * offered, then asks ARP for the router and prints the answer.
 */
#include "lib.h"
#include "ctrl_if.h"
#include "evtchn_ops.h"
#include "netif.h"

#define MS 1000000ull
#define NRX 16
#define NPING 8
#define ETHERTYPE 0x88b5

static u8 tx_page[4096] BSS_PAGE;
static u8 rx_page[4096] BSS_PAGE;
static u8 txbuf[4][4096] BSS_PAGE;
static u8 rxbuf[NRX][4096] BSS_PAGE;
static netif_tx_interface_t *const tx = (netif_tx_interface_t *)tx_page;
static netif_rx_interface_t *const rx = (netif_rx_interface_t *)rx_page;
static u32 tx_prod, rx_cons, rx_prod;

static volatile u32 statuses, last_status, last_evtchn;
static u8 my_mac[6];
static u32 port;

static void receiver(control_msg_t *m)
{
	netif_fe_interface_status_t st;
	if (m->type != CMSG_NETIF_FE || m->subtype != CMSG_NETIF_FE_INTERFACE_STATUS ||
	    m->length != sizeof(st)) {
		m->length = 0;
		return;
	}
	memcpy(&st, m->msg, sizeof(st));
	last_status = st.status;
	last_evtchn = st.evtchn;
	if (st.status != NETIF_INTERFACE_STATUS_CLOSED)
		memcpy(my_mac, st.mac, 6);
	statuses++;
}

static void noop(u32 p, struct upcall_frame *f) {}


static u32 want;
static int enough_statuses(void) { return statuses >= want; }


static u32 next_status(u32 before)
{
	want = before + 1;
	return wait_cond(enough_statuses, 1000 * MS) ? last_status : ~0u;
}

static u32 connect(u32 txf, u32 rxf)
{
	netif_fe_interface_connect_t c;
	u32 before = statuses;
	memset(&c, 0, sizeof(c));
	c.tx_shmem_frame = txf;
	c.rx_shmem_frame = rxf;
	if (ctrl_if_call(CMSG_NETIF_FE, CMSG_NETIF_FE_INTERFACE_CONNECT, &c, sizeof(c)) != sizeof(c))
		return ~1u;
	return next_status(before);
}

/* netfront's network_alloc_rx_buffers for one buffer: unmap it, give the page back, post it. */
static long post_rx(u32 id)
{
	u32 mfn = virt_to_mfn(rxbuf[id]);
	long rc = HYPERVISOR_update_va_mapping((u32)rxbuf[id], 0, UVMF_INVLPG);
	if (rc)
		return rc;
	if (HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, &mfn, 1, 0, DOMID_SELF) != 1)
		return -1;
	rx->ring[rx_prod & (NETIF_RX_RING_SIZE - 1)].req.id = (u16)id;
	barrier();
	rx->req_prod = ++rx_prod;
	return 0;
}

/* Takes one received packet, if any: maps its page where the buffer was; returns its length
 * (the data at *data) or 0, or -1 if the response was bad. The buffer is re-posted by the
 * caller with post_rx(*id). */
static int rx_take(u8 **data, u32 *id)
{
	netif_rx_response_t r;
	mmu_update_t mu;
	u32 pfn, mfn;
	if (rx_cons == rx->resp_prod)
		return 0;
	barrier();
	r = rx->ring[rx_cons & (NETIF_RX_RING_SIZE - 1)].resp;
	rx_cons++;
	rx->event = rx_cons + 1;
	if (r.id >= NRX || r.status <= 0)
		return -1;
	mfn = r.addr >> 12;
	pfn = virt_to_pfn(rxbuf[r.id]);
	if (HYPERVISOR_update_va_mapping((u32)rxbuf[r.id], (mfn << 12) | _PAGE_PRESENT | _PAGE_RW, UVMF_INVLPG))
		return -1;
	mu.ptr = (mfn << 12) | MMU_MACHPHYS_UPDATE;
	mu.val = pfn;
	if (HYPERVISOR_mmu_update(&mu, 1, 0))
		return -1;
	((u32 *)start_info->mfn_list)[pfn] = mfn;
	*id = r.id;
	*data = rxbuf[r.id] + (r.addr & 4095);
	return r.status;
}

/* Transmits len bytes at addr (a machine address); returns the response status. */
static s32 tx_raw(u32 addr, u32 len)
{
	netif_tx_request_t *q = &tx->ring[tx_prod & (NETIF_TX_RING_SIZE - 1)].req;
	u32 id = tx_prod & 0xffff, mine = tx_prod;
	u64 deadline = time_now_ns() + 1000 * MS;
	q->addr = addr;
	q->id = (u16)id;
	q->size = (u16)len;
	barrier();
	tx->req_prod = ++tx_prod;
	tx->event = tx_prod;
	ev_send(port);
	while ((s32)(tx->resp_prod - (mine + 1)) < 0) {
		if (time_now_ns() >= deadline)
			return 0x7f;
		HYPERVISOR_set_timer_op(deadline);
		HYPERVISOR_sched_op(SCHEDOP_block);
	}
	if (tx->ring[mine & (NETIF_TX_RING_SIZE - 1)].resp.id != id)
		return 0x7e;
	return tx->ring[mine & (NETIF_TX_RING_SIZE - 1)].resp.status;
}

static u8 fillbyte(u32 seq, u32 i) { return (u8)(seq * 29 + i * 3 + 7); }

/* Builds frame `kind` from src to dst in txbuf[0] with `len` bytes in all and sends it. */
static s32 send_from(const u8 *src, const u8 *dst, char kind, u32 seq, u32 len)
{
	u8 *f = txbuf[0];
	u32 i;
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = ETHERTYPE >> 8;
	f[13] = ETHERTYPE & 0xff;
	memcpy(f + 14, "tsxen", 5);
	f[19] = (u8)kind;
	memcpy(f + 20, &seq, 4);
	for (i = 24; i < len; i++)
		f[i] = fillbyte(seq, i);
	return tx_raw(virt_to_mach(f), len);
}

static s32 send(const u8 *dst, char kind, u32 seq, u32 len) { return send_from(my_mac, dst, kind, seq, len); }

/* Is this one of our frames, of this kind? Checks its payload. */
static int ours(const u8 *f, int len, char kind, u32 *seq)
{
	int i;
	if (len < 24 || f[12] != (ETHERTYPE >> 8) || f[13] != (ETHERTYPE & 0xff) || memcmp(f + 14, "tsxen", 5) ||
	    f[19] != (u8)kind)
		return 0;
	memcpy(seq, f + 20, 4);
	for (i = 24; i < len; i++)
		if (f[i] != fillbyte(*seq, (u32)i))
			return -1;
	return 1;
}

static volatile u32 rx_events;
static void rx_handler(u32 p, struct upcall_frame *f) { rx_events++; }
static int rx_ready(void) { return rx_cons != rx->resp_prod; }

/* Waits for the next frame of `kind` (others are dropped); returns its length or 0. */
static int expect(char kind, u32 *seq, u8 *src, u64 timeout_ns)
{
	u64 deadline = time_now_ns() + timeout_ns;
	for (;;) {
		u8 *data;
		u32 id;
		int n;
		while ((n = rx_take(&data, &id)) != 0) {
			int ok = n > 0 ? ours(data, n, kind, seq) : 0;
			if (n > 0 && src)
				memcpy(src, data + 6, 6);
			if (n > 0)
				post_rx(id);
			if (ok != 0)
				return ok > 0 ? n : -1;
		}
		if (time_now_ns() >= deadline)
			return 0;
		if (!wait_cond(rx_ready, deadline - time_now_ns()))
			return 0;
	}
}

static const u8 broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const u32 sizes[NPING] = { 60, 64, 128, 200, 512, 1000, 1500, 1514 };

static void ping(void)
{
	u8 peer[6];
	u32 seq, k, good = 0;
	int n;
	n = expect('R', &seq, peer, 10000 * MS);
	CHECK(n > 0, "peer_ready_seen");
	for (k = 0; k < NPING; k++) {
		u8 src[6];
		if (send(peer, 'P', k, sizes[k]) != NETIF_RSP_OKAY)
			continue;
		n = expect('O', &seq, src, 2000 * MS);
		if (n == (int)sizes[k] && seq == k && memcmp(src, peer, 6) == 0)
			good++;
	}
	CHECK_EQ(good, NPING, "pongs_all_back_intact");
	/* The smallest frame netback takes, and one ending at its page's last byte but one. */
	memset(txbuf[1], 0, 4096);
	memcpy(txbuf[1], peer, 6);
	memcpy(txbuf[1] + 6, my_mac, 6);
	CHECK_EQ(tx_raw(virt_to_mach(txbuf[1]), 14), NETIF_RSP_OKAY, "tx_14_bytes_ok");
	memcpy(txbuf[1] + 4095 - 100, peer, 6);
	memcpy(txbuf[1] + 4095 - 100 + 6, my_mac, 6);
	CHECK_EQ(tx_raw(virt_to_mach(txbuf[1] + 4095 - 100), 100), NETIF_RSP_OKAY, "tx_to_page_end_ok");
	/* Bad frames: refused and counted. */
	CHECK_EQ(tx_raw(virt_to_mach(txbuf[1]), 13), NETIF_RSP_ERROR, "tx_runt_refused");
	CHECK_EQ(tx_raw(virt_to_mach(txbuf[1]), 1515), NETIF_RSP_ERROR, "tx_oversized_refused");
	CHECK_EQ(tx_raw(virt_to_mach(txbuf[1] + 4000), 200), NETIF_RSP_ERROR, "tx_crossing_page_refused");
	CHECK_EQ(tx_raw(0xfffff000u, 60), NETIF_RSP_ERROR, "tx_frame_not_ram_refused");
	CHECK_EQ(tx_raw(0x00000000u, 60), NETIF_RSP_ERROR, "tx_frame_0_refused");
	CHECK_EQ(send(peer, 'B', 99, 60), NETIF_RSP_OKAY, "bye_sent");
	{
		u32 before = statuses;
		tx->req_prod = tx_prod + 1000;
		barrier();
		ev_send(port);
		CHECK_EQ(next_status(before), NETIF_INTERFACE_STATUS_DISCONNECTED, "tx_garbage_indices_disconnected");
	}
}

/* The Internet checksum of n bytes (big-endian words). */
static u16 csum(const u8 *p, u32 n)
{
	u32 acc = 0, i;
	for (i = 0; i + 1 < n; i += 2)
		acc += (u32)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		acc += (u32)p[n - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (u16)~acc;
}

static void put16(u8 *p, u32 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }
static u32 get16(const u8 *p) { return (u32)(p[0] << 8 | p[1]); }

#define DHCP_XID 0x7a5e0001u

/* A DHCP DISCOVER (RFC 2131) from us, broadcast, in txbuf[2]; returns its length. */
static u32 dhcp_discover(void)
{
	u8 *f = txbuf[2], *ip = f + 14, *udp = ip + 20, *b = udp + 8;
	memset(f, 0, 14 + 20 + 8 + 300);
	memcpy(f, broadcast, 6);
	memcpy(f + 6, my_mac, 6);
	put16(f + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, 20 + 8 + 300);
	ip[8] = 64;
	ip[9] = 17;
	memset(ip + 16, 0xff, 4); /* from 0.0.0.0 to 255.255.255.255 */
	put16(ip + 10, csum(ip, 20));
	put16(udp, 68);
	put16(udp + 2, 67);
	put16(udp + 4, 8 + 300); /* UDP checksum 0: none, as IPv4 allows */
	b[0] = 1;
	b[1] = 1;
	b[2] = 6;
	b[4] = DHCP_XID >> 24; b[5] = DHCP_XID >> 16 & 0xff; b[6] = DHCP_XID >> 8 & 0xff; b[7] = DHCP_XID & 0xff;
	b[10] = 0x80; /* answer by broadcast */
	memcpy(b + 28, my_mac, 6);
	b[236] = 0x63; b[237] = 0x82; b[238] = 0x53; b[239] = 0x63;
	b[240] = 53; b[241] = 1; b[242] = 1; /* DISCOVER */
	b[243] = 55; b[244] = 2; b[245] = 1; b[246] = 3; /* want the netmask and router */
	b[247] = 255;
	return 14 + 20 + 8 + 300;
}

/* An OFFER for our DISCOVER in frame f: the address offered and the router (0 if none). */
static int dhcp_offer(const u8 *f, int n, u8 *yiaddr, u8 *router)
{
	const u8 *ip = f + 14, *udp, *b;
	int i, l4;
	if (n < 14 + 20 + 8 + 240 || get16(f + 12) != 0x0800 || ip[9] != 17)
		return 0;
	l4 = 14 + (ip[0] & 15) * 4;
	udp = f + l4;
	b = udp + 8;
	if (get16(udp) != 67 || get16(udp + 2) != 68 || b[0] != 2 || b[4] != DHCP_XID >> 24 ||
	    b[7] != (DHCP_XID & 0xff) || l4 + 8 + 240 > n)
		return 0;
	memcpy(yiaddr, b + 16, 4);
	memset(router, 0, 4);
	for (i = l4 + 8 + 240; i + 1 < n && f[i] != 255;) {
		if (f[i] == 0) {
			i++;
			continue;
		}
		if (f[i] == 53 && f[i + 2] != 2)
			return 0; /* not an OFFER */
		if (f[i] == 3 && f[i + 1] >= 4 && i + 6 <= n)
			memcpy(router, f + i + 2, 4);
		i += 2 + f[i + 1];
	}
	return 1;
}

/* An ARP request from `ip` for `target`, broadcast, in txbuf[3]; returns its length. */
static u32 arp_request(const u8 *ip, const u8 *target)
{
	u8 *f = txbuf[3];
	static const u8 head[8] = { 0, 1, 8, 0, 6, 4, 0, 1 };
	memset(f, 0, 60);
	memcpy(f, broadcast, 6);
	memcpy(f + 6, my_mac, 6);
	put16(f + 12, 0x0806);
	memcpy(f + 14, head, 8);
	memcpy(f + 22, my_mac, 6);
	memcpy(f + 28, ip, 4);
	memcpy(f + 38, target, 4);
	return 60;
}

/* Waits (bounded) for a received frame `match` accepts; every frame goes back as a buffer. */
static int await_frame(int (*match)(const u8 *, int), u64 timeout_ns)
{
	u64 deadline = time_now_ns() + timeout_ns;
	for (;;) {
		u8 *data;
		u32 id;
		int n, hit = 0;
		while (!hit && (n = rx_take(&data, &id)) != 0) {
			if (n > 0) {
				hit = match(data, n);
				post_rx(id);
			}
		}
		if (hit)
			return 1;
		if (time_now_ns() >= deadline || !wait_cond(rx_ready, deadline - time_now_ns()))
			return 0;
	}
}

static u8 offered[4], router[4], router_mac[6];
static int is_offer(const u8 *f, int n) { return dhcp_offer(f, n, offered, router); }
static int is_arp_reply(const u8 *f, int n)
{
	if (n < 42 || get16(f + 12) != 0x0806 || get16(f + 20) != 2 || memcmp(f + 28, router, 4))
		return 0;
	memcpy(router_mac, f + 22, 6);
	return 1;
}

static void dhcp(void)
{
	u32 tries, len = dhcp_discover();
	int got = 0;
	/* passt answers in wall-clock time: retry every 200 ms, 50 times at most. */
	for (tries = 0; tries < 50 && !got; tries++) {
		CHECK_EQ(tx_raw(virt_to_mach(txbuf[2]), len), NETIF_RSP_OKAY, "dhcp_discover_sent");
		got = await_frame(is_offer, 200 * MS);
	}
	CHECK(got, "dhcp_offer_received");
	printk("OFFER yiaddr=%u.%u.%u.%u router=%u.%u.%u.%u\n", offered[0], offered[1], offered[2], offered[3],
	       router[0], router[1], router[2], router[3]);
	got = 0;
	for (tries = 0; tries < 10 && !got; tries++) {
		tx_raw(virt_to_mach(txbuf[3]), arp_request(offered, router));
		got = await_frame(is_arp_reply, 200 * MS);
	}
	CHECK(got, "router_arp_answered");
	printk("ROUTER mac=%02x:%02x:%02x:%02x:%02x:%02x\n", router_mac[0], router_mac[1], router_mac[2],
	       router_mac[3], router_mac[4], router_mac[5]);
}

/*
 * role=spoof, beside a pong victim (test/netif-spoof.test.ts): sends frames from the victim's
 * MAC (learnt from its READY) and from broadcast and multicast MACs, then keeps sending from
 * the victim's MAC every 5 ms while it listens, until the host's END. netback drops every one
 * of them (answering OKAY), so no frame for the victim may reach us.
 */
static void spoof(void)
{
	static const u8 mcast[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
	u8 victim[6];
	u32 seq, k, okay = 0, sent = 0, stolen = 0, ended = 0;
	u64 next = 0, deadline;
	int n = expect('R', &seq, victim, 10000 * MS);
	CHECK(n > 0, "victim_ready_seen");
	for (k = 0; k < 4; k++)
		okay += send_from(victim, broadcast, 'S', k, 60) == NETIF_RSP_OKAY;
	CHECK_EQ(okay, 4, "victim_source_answered_okay");
	CHECK_EQ(send_from(broadcast, broadcast, 'S', 4, 60), NETIF_RSP_OKAY, "broadcast_source_answered_okay");
	CHECK_EQ(send_from(mcast, broadcast, 'S', 5, 60), NETIF_RSP_OKAY, "multicast_source_answered_okay");
	printk("SPOOFED\n");
	deadline = time_now_ns() + 20000 * MS;
	while (!ended && time_now_ns() < deadline) {
		u8 *data;
		u32 id;
		if (time_now_ns() >= next) {
			send_from(victim, broadcast, 'S', 6 + sent++, 60);
			next = time_now_ns() + 5 * MS;
		}
		while ((n = rx_take(&data, &id)) != 0) {
			if (n < 0)
				continue;
			if (memcmp(data, victim, 6) == 0)
				stolen++;
			if (ours(data, n, 'E', &seq) == 1)
				ended = 1;
			post_rx(id);
		}
		wait_cond(rx_ready, 5 * MS);
	}
	CHECK(ended, "host_end_seen");
	CHECK_EQ(stolen, 0, "no_frame_for_the_victim_received");
	printk("SPOOF sent=%u\n", 6 + sent);
}

static void pong(void)
{
	u32 seq, pings = 0, bad = 0, inorder = 1;
	u8 src[6];
	int n;
	u64 next = 0;
	for (;;) {
		u8 *data;
		u32 id;
		int got = 0;
		if (pings == 0 && time_now_ns() >= next) {
			send(broadcast, 'R', 0, 60);
			next = time_now_ns() + 20 * MS;
		}
		while ((n = rx_take(&data, &id)) != 0) {
			int p = n > 0 ? ours(data, n, 'P', &seq) : 0;
			u32 bs;
			if (n > 0 && ours(data, n, 'B', &bs) == 1)
				got = 2;
			if (p == 1) {
				memcpy(src, data + 6, 6);
				if (seq != pings)
					inorder = 0;
				pings++;
				post_rx(id);
				send(src, 'O', seq, (u32)n);
				continue;
			}
			if (p < 0)
				bad++;
			if (n > 0)
				post_rx(id);
		}
		if (got == 2)
			break;
		want = 0;
		if (!wait_cond(rx_ready, pings == 0 ? 20 * MS : 10000 * MS) && pings > 0)
			break;
	}
	CHECK_EQ(pings, NPING, "pings_answered");
	CHECK(inorder && bad == 0, "pings_in_order_intact");
}


void start_kernel(start_info_t *si)
{
	u32 timer_port, k, before, ds[2] = { NETIF_DRIVER_STATUS_UP, 0 };
	int pinger, dhcper, spoofer;
	long rc = 0;
	conf_init(si, "netfront");
	pinger = cmdline_word("role=ping");
	dhcper = cmdline_word("role=dhcp");
	spoofer = cmdline_word("role=spoof");
	if (evtchn_bind_virq(VIRQ_TIMER, &timer_port) == 0)
		evtchn_handlers[timer_port] = noop;
	ctrl_if_receiver = receiver;
	if (ctrl_if_init() == 0) {
		check_fail("control_interface", "the domain has no control channel");
		checks_done();
	}
	events_enable();
	before = statuses;
	CHECK_EQ(ctrl_if_call(CMSG_NETIF_FE, CMSG_NETIF_FE_DRIVER_STATUS, ds, 8), 8, "driver_up_answered");
	CHECK_EQ(next_status(before), NETIF_INTERFACE_STATUS_DISCONNECTED, "driver_up_gives_disconnected");
	CHECK((my_mac[0] & 1) == 0 && (my_mac[0] | my_mac[1] | my_mac[2]) != 0, "mac_given");
	if (pinger) {
		CHECK_EQ(connect(0xfffff, virt_to_mfn(rx_page)), NETIF_INTERFACE_STATUS_CLOSED, "connect_bad_tx_frame_closed");
		CHECK_EQ(connect(virt_to_mfn(tx_page), virt_to_mfn((void *)si->pt_base)), NETIF_INTERFACE_STATUS_CLOSED,
			 "connect_page_table_closed");
	}
	memset(tx_page, 0, 4096);
	memset(rx_page, 0, 4096);
	CHECK_EQ(connect(virt_to_mfn(tx_page), virt_to_mfn(rx_page)), NETIF_INTERFACE_STATUS_CONNECTED, "connected");
	port = last_evtchn;
	evtchn_handlers[port] = rx_handler;
	rx->event = 1;
	for (k = 0; k < NRX && rc == 0; k++)
		rc = post_rx(k);
	CHECK_EQ(rc, 0, "rx_buffers_posted");
	if (pinger)
		ping();
	else if (dhcper)
		dhcp();
	else if (spoofer)
		spoof();
	else
		pong();
	checks_done();
}
