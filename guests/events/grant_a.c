/*
 * Grant tables, side A (the grantor): sets up its grant table, grants B one page writable
 * and one read-only (plus a few error cases), answers B's pings through the shared page,
 * checks the in-use bits Xen keeps in its entries, gives up the granted page while B still
 * maps it, and finally transfers a page to B through B's accept_transfer entry.
 * cmdline: peer=<B's domid> port=<B's port> self=<own domid>.
 */
#include "lib.h"
#include "evtchn_ops.h"
#include "grant.h"
#include "grant_mbox.h"

static u8 gt_page[4096] BSS_PAGE;
static u8 data_rw[4096] BSS_PAGE;
static u8 data_ro[4096] BSS_PAGE;
static u8 xfer_page[4096] BSS_PAGE;

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
	events_enable();
}

static volatile grant_entry_t *gt(void)
{
	return (volatile grant_entry_t *)gt_page;
}

static long transfer(void *va, u32 dom, u32 ref)
{
	mmu_update_t req;
	u32 done = 0;
	req.ptr = virt_to_mach(va) | ((ref & 0xFF) << 2) | MMU_EXTENDED_COMMAND;
	req.val = (dom << 16) | (ref & 0xFF00) | MMUEXT_TRANSFER_PAGE;
	return HYPERVISOR_mmu_update(&req, 1, &done);
}

static void grant(u32 ref, u32 dom, void *va, u32 flags)
{
	gt()[ref].frame = virt_to_mfn(va);
	gt()[ref].domid = (domid_t)dom;
	barrier();
	gt()[ref].flags = (u16)flags;
}

void start_kernel(start_info_t *si)
{
	struct mbox *mb = (struct mbox *)data_rw;
	u32 peer, pport, self, rounds, i, k, tries, p1 = 0, p2, frame = 0, sum, rw_mfn, x_mfn, ev;
	s16 st;
	long rc = -1;

	conf_init(si, "grant_a");
	peer = cmdline_u32(si, "peer", 0xFFFF);
	pport = cmdline_u32(si, "port", 1);
	self = cmdline_u32(si, "self", 1);
	rounds = cmdline_u32(si, "rounds", 20);
	CHECK(peer != 0xFFFF, "cmdline_names_peer");

	CHECK(gnt_setup(DOMID_SELF, 1, &st, &frame) == 0 && st == GNTST_okay, "setup_table");
	CHECK_EQ(gnt_map_table(gt_page, frame), 0, "map_table");
	CHECK(gnt_setup(peer, 1, &st, &frame) == 0 && st == GNTST_permission_denied, "setup_peer_table_denied");

	/* The pages B will map, and the grants. */
	memset(data_rw, 0, sizeof(data_rw));
	memset(data_ro, RO_FILL, sizeof(data_ro));
	rw_mfn = virt_to_mfn(data_rw);
	mb->mfn = rw_mfn;
	mb->magic = MAGIC_A;
	grant(REF_RW, peer, data_rw, GTF_permit_access);
	grant(REF_RO, peer, data_ro, GTF_permit_access | GTF_readonly);
	grant(REF_OTHER, 0x77, data_rw, GTF_permit_access);
	for (i = 0; i < NR_MANY; i++)
		grant(REF_MANY + i, peer, data_ro, GTF_permit_access | GTF_readonly);

	/* Mapping our own grant is refused: a domain maps only other domains' grants. */
	CHECK_EQ(gnt_map(0, self, REF_RW, GNTMAP_host_map, 0), GNTST_bad_domain, "map_own_grant_bad_domain");
	CHECK_EQ(gt()[REF_RW].flags, GTF_permit_access, "own_map_attempt_sets_no_bits");

	/* Event channel to B (B offers port pport for us). */
	for (tries = 0; tries < 100000; tries++) {
		p1 = 0;
		p2 = pport;
		rc = ev_bind_interdomain(DOMID_SELF, peer, &p1, &p2);
		if (rc == 0)
			break;
		HYPERVISOR_sched_op(SCHEDOP_yield);
	}
	CHECK_EQ(rc, 0, "bind_to_peer");
	evtchn_handlers[p1] = on_event;
	events_enable();
	CHECK_EQ(ev_send(p1), 0, "send_grants_ready");

	/* Rounds: B writes blk_b and ping = i; we check it and answer with blk_a and pong = i. */
	ev = 0;
	for (i = 1; i <= rounds; i++) {
		wait_for(++ev);
		if (mb->ping != i)
			break;
		for (k = 0, sum = 0; k < 256; k++)
			sum += mb->blk_b[k] == mbox_pattern(i, k, 0xB) ? 1 : 0;
		if (sum != 256 || mb->sum_b != i * 7)
			break;
		if (i == 1) {
			CHECK_EQ(gt()[REF_RW].flags, GTF_permit_access | GTF_reading | GTF_writing,
				 "rw_entry_reading_writing_while_mapped");
			CHECK_EQ(gt()[REF_RO].flags, GTF_permit_access | GTF_readonly | GTF_reading,
				 "ro_entry_reading_while_mapped");
			CHECK_EQ(gt()[REF_OTHER].flags, GTF_permit_access, "other_entry_untouched");
		}
		for (k = 0; k < 256; k++)
			mb->blk_a[k] = mbox_pattern(i, k, 0xA);
		mb->sum_a = i * 11;
		barrier();
		mb->pong = i;
		ev_send(p1);
	}
	CHECK_EQ(i, rounds + 1, "every_round_verified");

	/* We cannot unmap B's mappings: our maptrack is empty. */
	CHECK_EQ(gnt_unmap((u32)data_rw, rw_mfn, 0), GNTST_bad_handle, "cannot_unmap_peers_handle_0");
	CHECK_EQ(gnt_unmap(0, 0, 1), GNTST_bad_handle, "cannot_unmap_peers_handle_1");

	/* Give the granted page back to Xen while B maps it: it lives on for B. */
	wait_for(++ev); /* B: "still mapped, drop it" */
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)data_rw, 0, UVMF_INVLPG), 0, "unmap_own_granted_page");
	CHECK_EQ(HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, &rw_mfn, 1, 0, DOMID_SELF), 1,
		 "decrease_reservation_of_granted_page");
	ev_send(p1);

	/* B unmapped ref RW explicitly and ref RO implicitly: the in-use bits are gone. */
	wait_for(++ev);
	CHECK_EQ(gt()[REF_RW].flags, GTF_permit_access, "rw_entry_bits_cleared_after_unmap");
	CHECK_EQ(gt()[REF_RO].flags, GTF_permit_access | GTF_readonly, "ro_entry_bits_cleared_after_implicit_unmap");
	ev_send(p1);

	/* B exhausted its maptrack on our REF_MANY grants and unmapped them all. */
	wait_for(++ev);
	for (i = 0, k = 0; i < NR_MANY; i++)
		k += gt()[REF_MANY + i].flags == (GTF_permit_access | GTF_readonly);
	CHECK_EQ(k, NR_MANY, "many_entries_bits_cleared");

	/* Page transfer to B: B offered REF_XFER (accept_transfer) and made room. */
	memset(xfer_page, 0x7E, sizeof(xfer_page));
	x_mfn = virt_to_mfn(xfer_page);
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)xfer_page, 0, UVMF_INVLPG), 0, "unmap_page_to_transfer");
	CHECK_EQ(transfer(xfer_page, peer, REF_XFER_BAD), -EINVAL, "transfer_through_invalid_entry_fails");
	CHECK_EQ(transfer(xfer_page, peer, REF_XFER + 512), -EINVAL, "transfer_ref_beyond_table_fails");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)xfer_page, (x_mfn << 12) | 3, UVMF_INVLPG), 0,
		 "refused_transfer_leaves_page_ours");
	CHECK_EQ(*(volatile u32 *)xfer_page, 0x7E7E7E7E, "refused_transfer_page_intact");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)xfer_page, 0, UVMF_INVLPG), 0, "unmap_page_again");
	CHECK_EQ(transfer(xfer_page, peer, REF_XFER), 0, "transfer_to_peer_ok");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)xfer_page, (x_mfn << 12) | 3, UVMF_INVLPG), -EINVAL,
		 "transferred_page_no_longer_ours");
	ev_send(p1);

	wait_for(++ev); /* B: received and checked */
	CHECK_EQ(ev, rounds + 4, "all_events_seen");
	checks_done();
}
