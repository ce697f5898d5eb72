/*
 * Test block frontend: the protocol of XenLinux's blkfront (March 2005) against the domain
 * controller and dom0's blkback, and every bad input a frontend can give them
 * (test/blkif.test.ts runs it).
 *
 * The toolstack gives it two disks: sda1 (0x801), 2048 sectors read-write, and sdb (0x810),
 * 128 sectors read-only, whose sector s holds byte i = pattern(seed, s, i) with seed 1 and 2.
 * It negotiates the connection over the control interface (driver UP -> DISCONNECTED,
 * INTERFACE_CONNECT -> CONNECTED), probes, reads, writes (seed 0x33 at sda1 sectors 100..115,
 * seeds 0x44+k at 200+8k..), then sends what a broken or hostile frontend would; each must get
 * BLKIF_RSP_ERROR or a refused connection, never touch anything, and leave the backend serving.
 * With "hotplug" on its command line it waits for the controller's CHANGED notices (a disk
 * attached, then detached) and probes each time. It ends by disconnecting.
 */
#include "lib.h"
#include "blkif.h"
#include "ctrl_if.h"
#include "evtchn_ops.h"

#define SDA1 0x801
#define SDB 0x810
#define SDC 0x820
#define SDA1_SECTORS 2048
#define SDB_SECTORS 128
#define MS 1000000ull

static u8 ring_page[4096] BSS_PAGE;
static u8 data[12][4096] BSS_PAGE;
static u8 probe_page[4096] BSS_PAGE;
static blkif_sring_t *const ring = (blkif_sring_t *)ring_page;
static u32 req_prod_pvt, rsp_cons, next_id = 0x1000;

/* What the controller last told us (CMSG_BLKIF_FE_INTERFACE_STATUS). */
static volatile u32 statuses, last_status, last_evtchn, last_domid, changes;
static volatile u32 blk_events;
static u32 blk_port;

static u8 pattern(u32 seed, u32 sector, u32 i)
{
	return (u8)(sector * 131 + i * 7 + seed);
}

static void receiver(control_msg_t *m)
{
	blkif_fe_interface_status_t st;
	if (m->type != CMSG_BLKIF_FE || m->subtype != CMSG_BLKIF_FE_INTERFACE_STATUS ||
	    m->length != sizeof(st)) {
		m->length = 0;
		return;
	}
	memcpy(&st, (const void *)m->msg, sizeof(st));
	if (st.status == BLKIF_INTERFACE_STATUS_CHANGED) {
		changes++;
	} else {
		last_status = st.status;
		last_evtchn = st.evtchn;
		last_domid = st.domid;
	}
	statuses++;
	/* The response echoes the message, as Linux's blkif_ctrlif_rx. */
}

static void blk_handler(u32 port, struct upcall_frame *f) { blk_events++; }
static void timer_handler(u32 port, struct upcall_frame *f) {}


static u32 want_statuses;
static int enough_statuses(void) { return statuses >= want_statuses; }
static u32 want_changes;
static int enough_changes(void) { return changes >= want_changes; }
static u32 want_rsp;
static int enough_rsp(void) { return ring->rsp_prod - rsp_cons >= want_rsp; }


/* Waits for the next interface status (not CHANGED) after sending; returns it or ~0. */
static u32 next_status(u32 before)
{
	want_statuses = before + 1;
	if (!wait_cond(enough_statuses, 1000 * MS))
		return ~0u;
	return last_status;
}

static u32 connect(u32 handle, u32 frame)
{
	blkif_fe_interface_connect_t c;
	u32 before = statuses;
	memset(&c, 0, sizeof(c));
	c.handle = handle;
	c.shmem_frame = frame;
	if (ctrl_if_call(CMSG_BLKIF_FE, CMSG_BLKIF_FE_INTERFACE_CONNECT, &c, sizeof(c)) != sizeof(c))
		return ~1u;
	return next_status(before);
}

static void ring_init(void)
{
	memset(ring_page, 0, sizeof(ring_page));
	req_prod_pvt = rsp_cons = 0;
}

static void bind_blk_port(void)
{
	blk_port = last_evtchn;
	evtchn_handlers[blk_port] = blk_handler;
}

static u32 fas(const void *page, u32 first, u32 last)
{
	return (virt_to_mfn(page) << 12) | (first << 3) | last;
}

static blkif_request_t *new_req(u8 op, u16 dev, u64 sector, u8 nr)
{
	blkif_request_t *r = &ring->ring[req_prod_pvt++ & (BLKIF_RING_SIZE - 1)].req;
	memset(r, 0, sizeof(*r));
	r->operation = op;
	r->device = dev;
	r->id = next_id++;
	r->sector_number = sector;
	r->nr_segments = nr;
	return r;
}

static void push(void)
{
	barrier();
	ring->req_prod = req_prod_pvt;
	barrier();
	ev_send(blk_port);
}

/* Pushes the requests queued, waits for n responses; returns how many came. */
static u32 wait_rsps(u32 n)
{
	push();
	want_rsp = n;
	wait_cond(enough_rsp, 2000 * MS);
	return ring->rsp_prod - rsp_cons;
}

/* Issues the last request queued and returns its status (or 0x7fff if no response, or the id
 * or operation were not echoed). */
static s32 issue(const blkif_request_t *r)
{
	u32 id = r->id, op = r->operation;
	blkif_response_t *rsp;
	if (wait_rsps(1) < 1)
		return 0x7fff;
	rsp = &ring->ring[rsp_cons++ & (BLKIF_RING_SIZE - 1)].rsp;
	if (rsp->id != id || rsp->operation != op)
		return 0x7ffe;
	return rsp->status;
}

static s32 rw1(u8 op, u16 dev, u64 sector, void *page, u32 first, u32 last)
{
	blkif_request_t *r = new_req(op, dev, sector, 1);
	r->frame_and_sects[0] = fas(page, first, last);
	return issue(r);
}

static s32 rw_frame(u8 op, u16 dev, u64 sector, u32 frame)
{
	blkif_request_t *r = new_req(op, dev, sector, 1);
	r->frame_and_sects[0] = (frame << 12) | 7;
	return issue(r);
}

/* Do `sectors` sectors at p hold pattern(seed, sector0...)? */
static int holds(const u8 *p, u32 seed, u32 sector0, u32 sectors)
{
	u32 s, i;
	for (s = 0; s < sectors; s++)
		for (i = 0; i < 512; i++)
			if (p[s * 512 + i] != pattern(seed, sector0 + s, i))
				return 0;
	return 1;
}

static void fill(u8 *p, u32 seed, u32 sector0, u32 sectors)
{
	u32 s, i;
	for (s = 0; s < sectors; s++)
		for (i = 0; i < 512; i++)
			p[s * 512 + i] = pattern(seed, sector0 + s, i);
}

static int all(const u8 *p, u8 v, u32 n)
{
	while (n--)
		if (*p++ != v)
			return 0;
	return 1;
}

static s32 probe(vdisk_t *out, u32 max)
{
	blkif_request_t *r = new_req(BLKIF_OP_PROBE, 0, 0, 1);
	s32 st;
	r->frame_and_sects[0] = fas(probe_page, 0, 7);
	st = issue(r);
	if (st > 0 && (u32)st <= max)
		memcpy(out, probe_page, (u32)st * sizeof(vdisk_t));
	return st;
}


static void negotiate(void)
{
	blkif_fe_driver_status_t ds = { BLKIF_DRIVER_STATUS_UP, 0 };
	blkif_fe_interface_connect_t c;
	u32 before = statuses;
	u32 l2_mfn = virt_to_mfn((void *)start_info->pt_base);
	u32 n;

	CHECK_EQ(ctrl_if_call(CMSG_BLKIF_FE, CMSG_BLKIF_FE_DRIVER_STATUS, &ds, sizeof(ds)), sizeof(ds), "driver_up_answered");
	CHECK_EQ(next_status(before), BLKIF_INTERFACE_STATUS_DISCONNECTED, "driver_up_gives_disconnected");
	/* A message of the wrong length is a parse error: answered with length 0. */
	CHECK_EQ(ctrl_if_call(CMSG_BLKIF_FE, CMSG_BLKIF_FE_DRIVER_STATUS, &ds, 3), 0, "driver_status_bad_length_empty_answer");
	CHECK_EQ(ctrl_if_call(CMSG_BLKIF_FE, CMSG_BLKIF_FE_INTERFACE_CONNECT, &ds, 5), 0, "connect_bad_length_empty_answer");
	CHECK_EQ(ctrl_if_call(CMSG_BLKIF_FE, 77, &ds, 4), 0, "unknown_subtype_empty_answer");
	/* A ring in a frame that is not ours, or that dom0 may not map writable, is refused. */
	CHECK_EQ(connect(0, 0xfffff), BLKIF_INTERFACE_STATUS_CLOSED, "connect_frame_not_ram_closed");
	CHECK_EQ(connect(0, 0), BLKIF_INTERFACE_STATUS_CLOSED, "connect_frame_0_closed");
	CHECK_EQ(connect(0, l2_mfn), BLKIF_INTERFACE_STATUS_CLOSED, "connect_page_table_closed");
	/* An interface we do not have: no status comes. */
	n = statuses;
	memset(&c, 0, sizeof(c));
	c.handle = 7;
	c.shmem_frame = virt_to_mfn(ring_page);
	CHECK_EQ(ctrl_if_call(CMSG_BLKIF_FE, CMSG_BLKIF_FE_INTERFACE_CONNECT, &c, sizeof(c)), sizeof(c), "connect_unknown_handle_answered");
	want_statuses = n + 1;
	CHECK(!wait_cond(enough_statuses, 50 * MS), "connect_unknown_handle_no_status");

	ring_init();
	CHECK_EQ(connect(0, virt_to_mfn(ring_page)), BLKIF_INTERFACE_STATUS_CONNECTED, "connect_connected");
	CHECK(last_evtchn != 0 && last_evtchn < NR_EVENT_CHANNELS, "connected_evtchn_valid");
	CHECK_EQ(last_domid, 0, "backend_is_dom0");
	bind_blk_port();
	{
		blkif_fe_interface_status_t q;
		memset(&q, 0, sizeof(q));
		CHECK_EQ(ctrl_if_call(CMSG_BLKIF_FE, CMSG_BLKIF_FE_INTERFACE_QUERY, &q, sizeof(q)), sizeof(q), "query_answered");
	}
}

static void data_path(void)
{
	vdisk_t vd[8];
	u32 k, n;
	s32 st;
	blkif_request_t *r;

	CHECK_EQ(probe(vd, 8), 2, "probe_two_disks");
	CHECK(vd[0].device == SDA1 && vd[0].capacity == SDA1_SECTORS &&
		      vd[0].info == (VDISK_TYPE_DISK | VDISK_FLAG_VIRT),
	      "probe_sda1");
	CHECK(vd[1].device == SDB && vd[1].capacity == SDB_SECTORS &&
		      vd[1].info == (VDISK_TYPE_DISK | VDISK_FLAG_VIRT | VDISK_FLAG_RO),
	      "probe_sdb_readonly");

	CHECK_EQ(rw1(BLKIF_OP_READ, SDA1, 0, data[0], 0, 7), BLKIF_RSP_OKAY, "read_sda1_page");
	CHECK(holds(data[0], 1, 0, 8), "read_sda1_contents");

	/* Three segments, partial pages: sectors 20..23 at data[0]+1024, 24..31 in data[1],
	 * 32 at data[2]+3584; the rest of the pages untouched. */
	for (k = 0; k < 3; k++)
		memset(data[k], 0xee, 4096);
	r = new_req(BLKIF_OP_READ, SDA1, 20, 3);
	r->frame_and_sects[0] = fas(data[0], 2, 5);
	r->frame_and_sects[1] = fas(data[1], 0, 7);
	r->frame_and_sects[2] = fas(data[2], 7, 7);
	CHECK_EQ(issue(r), BLKIF_RSP_OKAY, "read_three_segments");
	CHECK(holds(data[0] + 1024, 1, 20, 4) && holds(data[1], 1, 24, 8) && holds(data[2] + 3584, 1, 32, 1),
	      "read_three_segments_contents");
	CHECK(all(data[0], 0xee, 1024) && all(data[0] + 3072, 0xee, 1024) && all(data[2], 0xee, 3584),
	      "read_three_segments_rest_untouched");

	CHECK_EQ(rw1(BLKIF_OP_READ, SDB, SDB_SECTORS - 8, data[3], 0, 7), BLKIF_RSP_OKAY, "read_sdb_last_page");
	CHECK(holds(data[3], 2, SDB_SECTORS - 8, 8), "read_sdb_contents");
	CHECK_EQ(rw1(BLKIF_OP_READ, SDA1, SDA1_SECTORS - 8, data[3], 0, 7), BLKIF_RSP_OKAY, "read_sda1_last_page");

	/* Write 16 sectors at 100 from two pages, read them back into two others. */
	fill(data[4], 0x33, 100, 8);
	fill(data[5], 0x33, 108, 8);
	r = new_req(BLKIF_OP_WRITE, SDA1, 100, 2);
	r->frame_and_sects[0] = fas(data[4], 0, 7);
	r->frame_and_sects[1] = fas(data[5], 0, 7);
	CHECK_EQ(issue(r), BLKIF_RSP_OKAY, "write_two_pages");
	memset(data[6], 0, 4096);
	memset(data[7], 0, 4096);
	r = new_req(BLKIF_OP_READ, SDA1, 100, 2);
	r->frame_and_sects[0] = fas(data[6], 0, 7);
	r->frame_and_sects[1] = fas(data[7], 0, 7);
	CHECK_EQ(issue(r), BLKIF_RSP_OKAY, "read_back");
	CHECK(holds(data[6], 0x33, 100, 8) && holds(data[7], 0x33, 108, 8), "read_back_contents");

	/* A burst: eight writes with one notification; every one completes, in order. */
	for (k = 0; k < 8; k++) {
		fill(data[k], 0x44 + k, 200 + 8 * k, 8);
		r = new_req(BLKIF_OP_WRITE, SDA1, 200 + 8 * k, 1);
		r->frame_and_sects[0] = fas(data[k], 0, 7);
	}
	n = wait_rsps(8);
	CHECK_EQ(n, 8, "burst_all_answered");
	for (k = 0, st = 0; k < n; k++) {
		blkif_response_t *p = &ring->ring[rsp_cons++ & (BLKIF_RING_SIZE - 1)].rsp;
		if (p->status != BLKIF_RSP_OKAY || p->operation != BLKIF_OP_WRITE || p->id != next_id - 8 + k)
			st = -1;
	}
	CHECK_EQ(st, 0, "burst_all_okay_in_order");
}

static void bad_requests(void)
{
	u32 l2_mfn = virt_to_mfn((void *)start_info->pt_base);
	blkif_request_t *r;
	u32 k;

	memset(data[0], 0x5a, 4096);
	CHECK_EQ(rw1(BLKIF_OP_WRITE, SDB, 0, data[0], 0, 7), BLKIF_RSP_ERROR, "write_readonly_refused");
	CHECK_EQ(rw1(BLKIF_OP_READ, SDA1, SDA1_SECTORS - 4, data[0], 0, 7), BLKIF_RSP_ERROR, "read_past_end");
	CHECK_EQ(rw1(BLKIF_OP_WRITE, SDA1, SDA1_SECTORS, data[0], 0, 0), BLKIF_RSP_ERROR, "write_at_end");
	CHECK_EQ(rw1(BLKIF_OP_READ, SDB, SDB_SECTORS, data[0], 0, 0), BLKIF_RSP_ERROR, "read_sdb_at_end");
	CHECK_EQ(rw1(BLKIF_OP_READ, SDA1, 1ull << 40, data[0], 0, 7), BLKIF_RSP_ERROR, "read_sector_2_40");
	CHECK_EQ(rw1(BLKIF_OP_READ, SDA1, ~0ull - 3, data[0], 0, 7), BLKIF_RSP_ERROR, "read_sector_wraps");
	CHECK_EQ(rw1(BLKIF_OP_READ, 0x999, 0, data[0], 0, 7), BLKIF_RSP_ERROR, "read_no_such_device");
	CHECK_EQ(rw1(BLKIF_OP_READ, 0x802, 0, data[0], 0, 7), BLKIF_RSP_ERROR, "read_sda2_not_attached");
	CHECK_EQ(rw1(BLKIF_OP_READ, SDA1, 0, data[0], 5, 2), BLKIF_RSP_ERROR, "read_first_after_last");
	CHECK(all(data[0], 0x5a, 4096), "refused_reads_wrote_nothing");

	r = new_req(BLKIF_OP_READ, SDA1, 0, 0);
	CHECK_EQ(issue(r), BLKIF_RSP_ERROR, "zero_segments");
	r = new_req(BLKIF_OP_READ, SDA1, 0, 12);
	for (k = 0; k < BLKIF_MAX_SEGMENTS_PER_REQUEST; k++)
		r->frame_and_sects[k] = fas(data[k], 0, 7);
	CHECK_EQ(issue(r), BLKIF_RSP_ERROR, "twelve_segments");
	r = new_req(9, SDA1, 0, 1);
	r->frame_and_sects[0] = fas(data[0], 0, 7);
	CHECK_EQ(issue(r), BLKIF_RSP_ERROR, "unknown_operation");

	/* Frames that are not ours: Xen refuses dom0's mapping, the request fails. */
	CHECK_EQ(rw_frame(BLKIF_OP_READ, SDA1, 0, 0xfffff), BLKIF_RSP_ERROR, "read_into_frame_not_ram");
	CHECK_EQ(rw_frame(BLKIF_OP_READ, SDA1, 0, 0), BLKIF_RSP_ERROR, "read_into_frame_0");
	CHECK_EQ(rw_frame(BLKIF_OP_READ, SDA1, 0, 1), BLKIF_RSP_ERROR, "read_into_frame_1");
	CHECK_EQ(rw_frame(BLKIF_OP_WRITE, SDA1, 300, 0xfffff), BLKIF_RSP_ERROR, "write_from_frame_not_ram");
	CHECK_EQ(rw_frame(BLKIF_OP_WRITE, SDA1, 308, 0), BLKIF_RSP_ERROR, "write_from_frame_0");
	/* Our own page directory: dom0 may not map it writable to read into it. */
	CHECK_EQ(rw_frame(BLKIF_OP_READ, SDA1, 0, l2_mfn), BLKIF_RSP_ERROR, "read_into_page_table");
	/* A good segment then a bad one: nothing is done. */
	memset(data[1], 0x77, 4096);
	r = new_req(BLKIF_OP_READ, SDA1, 0, 2);
	r->frame_and_sects[0] = fas(data[1], 0, 7);
	r->frame_and_sects[1] = (0xfffffu << 12) | 7;
	CHECK_EQ(issue(r), BLKIF_RSP_ERROR, "read_good_then_bad_frame");

	r = new_req(BLKIF_OP_PROBE, 0, 0, 2);
	r->frame_and_sects[0] = fas(probe_page, 0, 7);
	r->frame_and_sects[1] = fas(data[0], 0, 7);
	CHECK_EQ(issue(r), BLKIF_RSP_ERROR, "probe_two_segments");
	r = new_req(BLKIF_OP_PROBE, 0, 0, 1);
	r->frame_and_sects[0] = fas(probe_page, 1, 7);
	CHECK_EQ(issue(r), BLKIF_RSP_ERROR, "probe_partial_page");
	r = new_req(BLKIF_OP_PROBE, 0, 0, 1);
	r->frame_and_sects[0] = (0xfffffu << 12) | 7;
	CHECK_EQ(issue(r), BLKIF_RSP_ERROR, "probe_frame_not_ram");

	/* After all that the backend still serves. */
	CHECK_EQ(rw1(BLKIF_OP_READ, SDA1, 8, data[2], 0, 7), BLKIF_RSP_OKAY, "still_serving");
	CHECK(holds(data[2], 1, 8, 8), "still_serving_contents");
}

/* Ring indices that make no sense: the backend drops the ring, the controller says so. */
static void garbage_ring(void)
{
	u32 before = statuses, rsp = ring->rsp_prod;
	ring->req_prod = req_prod_pvt + 1000;
	barrier();
	ev_send(blk_port);
	CHECK_EQ(next_status(before), BLKIF_INTERFACE_STATUS_DISCONNECTED, "garbage_indices_disconnected");
	CHECK_EQ(ring->rsp_prod, rsp, "garbage_indices_no_responses");
	ring_init();
	CHECK_EQ(connect(0, virt_to_mfn(ring_page)), BLKIF_INTERFACE_STATUS_CONNECTED, "reconnect_connected");
	bind_blk_port();
	CHECK_EQ(rw1(BLKIF_OP_READ, SDA1, 100, data[0], 0, 7), BLKIF_RSP_OKAY, "reconnect_read");
	CHECK(holds(data[0], 0x33, 100, 8), "reconnect_read_contents");
}

static void hotplug(void)
{
	vdisk_t vd[8];
	want_changes = changes + 1;
	printk("blkfront: waiting for a disk to be attached\n");
	CHECK(wait_cond(enough_changes, 20000 * MS), "attach_announced_changed");
	CHECK_EQ(probe(vd, 8), 3, "probe_after_attach");
	CHECK(vd[2].device == SDC && vd[2].capacity == 64 && (vd[2].info & VDISK_FLAG_RO) == 0,
	      "attached_sdc");
	CHECK_EQ(rw1(BLKIF_OP_READ, SDC, 0, data[0], 0, 7), BLKIF_RSP_OKAY, "read_sdc");
	CHECK(holds(data[0], 3, 0, 8), "read_sdc_contents");
	want_changes = changes + 1;
	printk("blkfront: waiting for a disk to be detached\n");
	CHECK(wait_cond(enough_changes, 20000 * MS), "detach_announced_changed");
	CHECK_EQ(probe(vd, 8), 2, "probe_after_detach");
	CHECK_EQ(rw1(BLKIF_OP_READ, SDC, 0, data[0], 0, 7), BLKIF_RSP_ERROR, "read_detached_sdc");
}

static void disconnect(void)
{
	u32 before = statuses, rsp;
	u32 h = 0;
	long rc;
	CHECK_EQ(ctrl_if_call(CMSG_BLKIF_FE, CMSG_BLKIF_FE_INTERFACE_DISCONNECT, &h, 4), 4, "disconnect_answered");
	CHECK_EQ(next_status(before), BLKIF_INTERFACE_STATUS_DISCONNECTED, "disconnect_disconnected");
	/* The channel is closed at dom0's end: a request now goes nowhere. */
	rsp = ring->rsp_prod;
	new_req(BLKIF_OP_READ, SDA1, 0, 1)->frame_and_sects[0] = fas(data[0], 0, 7);
	ring->req_prod = req_prod_pvt;
	rc = ev_send(blk_port);
	CHECK(rc != 0, "send_after_disconnect_refused");
	want_rsp = 1;
	CHECK(!wait_cond(enough_rsp, 50 * MS) && ring->rsp_prod == rsp, "no_response_after_disconnect");
}

void start_kernel(start_info_t *si)
{
	u32 timer_port;
	conf_init(si, "blkfront");
	if (evtchn_bind_virq(VIRQ_TIMER, &timer_port) == 0)
		evtchn_handlers[timer_port] = timer_handler;
	ctrl_if_receiver = receiver;
	if (ctrl_if_init() == 0) {
		check_fail("control_interface", "the domain has no control channel");
		checks_done();
	}
	events_enable();
	negotiate();
	if (last_status == BLKIF_INTERFACE_STATUS_CONNECTED) {
		data_path();
		bad_requests();
		garbage_ring();
		if (cmdline_word("hotplug"))
			hotplug();
		disconnect();
	}
	checks_done();
}
