/*
 * Grant tables, side B (the mapper): maps A's grants by host virtual address (read-write and
 * read-only), with every error path a second domain can reach; exchanges data with A through
 * the shared page, events for signalling; keeps using the page after A gave it up; unmaps
 * explicitly and implicitly (overwriting the PTE with update_va_mapping and mmu_update); runs
 * its maptrack out; and receives a page A transfers through its accept_transfer entry.
 * cmdline: peer=<A's domid> rounds=<N>.
 */
#include "probe.h"
#include "evtchn_ops.h"
#include "grant.h"
#include "grant_mbox.h"

PROBE(p_read, "movl probe_addr, %eax", "movl (%eax), %ecx");
PROBE(p_write, "movl probe_addr, %eax", "movl %ecx, (%eax)");

static u8 gt_page[4096] BSS_PAGE;
static u8 win[4096] BSS_PAGE;   /* A's RW page is mapped here */
static u8 win2[4096] BSS_PAGE;  /* A's RO page */
static u8 spare[4096] BSS_PAGE; /* given back to Xen to make room; the transferred page lands here */
static gnttab_map_grant_ref_t maps[512];
static gnttab_unmap_grant_ref_t unmaps[512];

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
		HYPERVISOR_sched_op(SCHEDOP_block);
		events_disable();
	}
	events_enable();
}

static int faults(void (*probe)(void *), void *va)
{
	probe_addr = (u32)va;
	return trap_catch(probe, 0) == 14;
}

static u32 pte_ma(void *va)
{
	/* The L1 covering our image follows the L2 (abi.md §4.3). */
	const u32 *l2 = (const u32 *)start_info->pt_base;
	u32 l1_ma = l2[(u32)va >> 22] & ~0xFFFu;
	return l1_ma + (((u32)va >> 12) & 1023) * 4;
}

void start_kernel(start_info_t *si)
{
	struct mbox *mb = (struct mbox *)win;
	u32 peer, rounds, i, k, sum, frame = 0, dev = 0, rw_mfn, ev = 0, n, total, spare_mfn, got;
	long h_rw, h_ro, h;
	s16 st;
	int ok;

	conf_init(si, "grant_b");
	peer = cmdline_u32(si, "peer", 0xFFFF);
	rounds = cmdline_u32(si, "rounds", 20);
	CHECK(peer != 0xFFFF, "cmdline_names_peer");

	CHECK(gnt_setup(DOMID_SELF, 1, &st, &frame) == 0 && st == GNTST_okay, "setup_table");
	CHECK_EQ(gnt_map_table(gt_page, frame), 0, "map_table");
	((volatile grant_entry_t *)gt_page)[REF_XFER].domid = (domid_t)peer;
	((volatile grant_entry_t *)gt_page)[REF_XFER].frame = 0;
	((volatile grant_entry_t *)gt_page)[REF_XFER].flags = GTF_accept_transfer;

	CHECK_EQ(ev_alloc_unbound(peer, &port), 0, "alloc_unbound_for_peer");
	evtchn_handlers[port] = on_event;
	events_enable();
	wait_for(++ev); /* grants ready */
	CHECK_EQ(received, 1, "grants_ready_event");

	/* Errors against a real grantor. */
	CHECK_EQ(gnt_map((u32)win, peer, REF_OTHER, GNTMAP_host_map, 0), GNTST_general_error,
		 "map_grant_for_other_domain_general_error");
	CHECK_EQ(gnt_map((u32)win, peer, REF_INVALID, GNTMAP_host_map, 0), GNTST_general_error,
		 "map_invalid_entry_general_error");
	CHECK_EQ(gnt_map((u32)win, peer, REF_RO, GNTMAP_host_map, 0), GNTST_general_error,
		 "map_readonly_grant_writable_general_error");
	CHECK_EQ(gnt_map((u32)win, peer, 511, GNTMAP_host_map | GNTMAP_readonly, 0), GNTST_general_error,
		 "map_last_ref_unused_general_error");
	CHECK_EQ(gnt_map((u32)win, peer, 512, GNTMAP_host_map, 0), GNTST_bad_gntref, "map_ref_512_bad_gntref");
	CHECK_EQ(gnt_map(0x10000000, peer, REF_RW, GNTMAP_host_map, 0), -EINVAL,
		 "map_va_without_page_table_einval");
	CHECK(!faults(p_read, win) && *(volatile u32 *)win == 0, "failed_maps_left_win_alone");

	/* Map A's RW page at win, its RO page at win2. */
	h_rw = gnt_map((u32)win, peer, REF_RW, GNTMAP_host_map, 0);
	CHECK(h_rw >= 0, "map_rw_grant_ok");
	CHECK_EQ(mb->magic, MAGIC_A, "rw_mapping_shows_grantors_data");
	rw_mfn = mb->mfn;
	h_ro = gnt_map((u32)win2, peer, REF_RO, GNTMAP_host_map | GNTMAP_readonly, 0);
	CHECK(h_ro >= 0 && h_ro != h_rw, "map_ro_grant_ok");
	CHECK_EQ(*(volatile u32 *)win2, 0x3C3C3C3C, "ro_mapping_readable");
	CHECK(faults(p_write, win2) && (last_trap.error_code & 3) == 3, "ro_mapping_write_faults");
	CHECK_EQ(*(volatile u32 *)win2, 0x3C3C3C3C, "ro_page_unchanged");
	/* A read-only map of the RW grant and a device map: pins add up, handles differ. */
	h = gnt_map(0, peer, REF_RW, GNTMAP_device_map | GNTMAP_readonly, &dev);
	CHECK(h >= 0 && h != h_rw && h != h_ro, "device_map_ok");
	CHECK_EQ(dev, rw_mfn, "device_map_dev_bus_addr_is_frame_number");
	CHECK_EQ(gnt_unmap(0, rw_mfn + 1, h), GNTST_general_error, "device_unmap_wrong_frame_general_error");
	CHECK_EQ(gnt_unmap(0, rw_mfn, h), 1, "device_only_unmap_status_1");
	CHECK_EQ(gnt_unmap(0, rw_mfn, h), GNTST_bad_handle, "device_handle_freed");
	{
		gnttab_dump_table_t d;
		d.dom = (domid_t)peer;
		d.status = 0x5555;
		CHECK(HYPERVISOR_grant_table_op(GNTTABOP_dump_table, &d, 1) == 0 && d.status == 0,
		      "dump_peer_table_no_privilege_needed");
	}
	CHECK(gnt_setup(peer, 1, &st, &frame) == 0 && st == GNTST_permission_denied, "setup_peer_table_denied");

	/* Data exchange. */
	for (i = 1; i <= rounds; i++) {
		for (k = 0; k < 256; k++)
			mb->blk_b[k] = mbox_pattern(i, k, 0xB);
		mb->sum_b = i * 7;
		barrier();
		mb->ping = i;
		ev_send(port);
		wait_for(++ev);
		if (mb->pong != i || mb->sum_a != i * 11)
			break;
		for (k = 0, sum = 0; k < 256; k++)
			sum += mb->blk_a[k] == mbox_pattern(i, k, 0xA) ? 1 : 0;
		if (sum != 256)
			break;
	}
	CHECK_EQ(i, rounds + 1, "every_round_answered");

	/* A gives the page up while we map it: it stays ours to use. */
	ev_send(port);
	wait_for(++ev);
	mb->blk_b[0] = 0xCAFEF00D;
	CHECK_EQ(mb->blk_b[0], 0xCAFEF00D, "page_usable_after_grantor_dropped_it");
	CHECK_EQ(mb->blk_a[255], mbox_pattern(rounds, 255, 0xA), "page_contents_survive");
	CHECK_EQ(gnt_unmap((u32)win2, 0, h_rw), -EINVAL, "unmap_at_wrong_va_einval");
	CHECK(!faults(p_read, win), "wrong_va_unmap_left_mapping");
	CHECK_EQ(gnt_unmap((u32)win, 0, h_rw), GNTST_okay, "unmap_rw_ok");
	CHECK(faults(p_read, win), "unmapped_va_faults");
	CHECK_EQ(gnt_unmap((u32)win, 0, h_rw), GNTST_bad_handle, "unmap_twice_bad_handle");
	/* The frame went back to Xen with our unmap: the grant no longer maps. */
	CHECK_EQ(gnt_map((u32)win, peer, REF_RW, GNTMAP_host_map, 0), GNTST_general_error,
		 "map_freed_frame_general_error");

	/* Implicit unmapping: overwrite the PTE (update_va_mapping, then mmu_update). */
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)win2, virt_to_mach(win2) | 3, UVMF_INVLPG), 0,
		 "overwrite_ro_grant_pte_with_update_va_mapping");
	CHECK_EQ(gnt_unmap((u32)win2, 0, h_ro), GNTST_bad_handle, "implicitly_unmapped_handle_freed");
	h = gnt_map((u32)win2, peer, REF_RO, GNTMAP_host_map | GNTMAP_readonly, 0);
	CHECK(h >= 0 && *(volatile u32 *)win2 == 0x3C3C3C3C, "remap_ro_grant");
	{
		mmu_update_t req[2];
		u32 done = 0;
		req[0].ptr = pte_ma(win2) | MMU_NORMAL_PT_UPDATE;
		req[0].val = 0;
		req[1].ptr = (u32)win2 | MMU_EXTENDED_COMMAND;
		req[1].val = MMUEXT_INVLPG;
		CHECK(HYPERVISOR_mmu_update(req, 2, &done) == 0 && done == 2, "zap_grant_pte_with_mmu_update");
	}
	CHECK(faults(p_read, win2), "zapped_va_faults");
	CHECK_EQ(gnt_unmap((u32)win2, 0, h), GNTST_bad_handle, "zapped_handle_freed");
	ev_send(port);
	wait_for(++ev);

	/* Pin overflow and maptrack exhaustion on A's REF_MANY grants, as read-only device maps
	 * (no PTEs; unmapped by frame number). */
	total = 0;
	ok = 1;
	for (i = 0; i < NR_MANY && ok; i++) {
		n = 0;
		memset(maps, 0, sizeof(maps));
		for (k = 0; k < 130; k++) {
			maps[k].dom = (domid_t)peer;
			maps[k].ref = (grant_ref_t)(REF_MANY + i);
			maps[k].flags = GNTMAP_device_map | GNTMAP_readonly;
		}
		if (HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, maps, 130) != 0)
			ok = 0;
		for (k = 0; k < 130; k++)
			if (maps[k].handle >= 0) {
				n++;
				dev = maps[k].dev_bus_addr;
			}
		if (i == 0) {
			CHECK_EQ(n, 128, "pin_count_caps_at_128_maps");
			CHECK(maps[128].handle == GNTST_general_error && maps[129].handle == GNTST_general_error,
			      "pin_overflow_general_error_not_plus_28");
		}
		total += n;
		if (total >= NR_MAPTRACK_ENTRIES)
			break;
	}
	CHECK_EQ(total, NR_MAPTRACK_ENTRIES, "maptrack_holds_1024_handles");
	CHECK_EQ(gnt_map(0, peer, REF_RO, GNTMAP_device_map | GNTMAP_readonly, 0), GNTST_no_device_space,
		 "full_maptrack_refuses_maps");
	for (h = 0, got = 0; h < NR_MAPTRACK_ENTRIES; h += 512) {
		memset(unmaps, 0, sizeof(unmaps));
		for (k = 0; k < 512; k++) {
			unmaps[k].handle = (u16)(h + k);
			unmaps[k].dev_bus_addr = dev;
		}
		CHECK_EQ(HYPERVISOR_grant_table_op(GNTTABOP_unmap_grant_ref, unmaps, 512), 0, "unmap_batch_512");
		for (k = 0; k < 512; k++)
			got += unmaps[k].status == 1 && unmaps[k].dev_bus_addr == 0; /* device-only: 1 [QUIRK] */
	}
	CHECK_EQ(got, NR_MAPTRACK_ENTRIES, "device_unmaps_report_1_and_clear_dev_bus_addr");
	h = gnt_map(0, peer, REF_RO, GNTMAP_device_map | GNTMAP_readonly, 0);
	CHECK(h >= 0 && gnt_unmap(0, dev, h) == 1, "maptrack_usable_again");

	/* Make room for the transfer: give one page back. */
	spare_mfn = virt_to_mfn(spare);
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)spare, 0, UVMF_INVLPG), 0, "unmap_spare");
	CHECK_EQ(HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, &spare_mfn, 1, 0, DOMID_SELF), 1,
		 "decrease_reservation_spare");
	ev_send(port);
	wait_for(++ev);
	{
		volatile grant_entry_t *e = &((volatile grant_entry_t *)gt_page)[REF_XFER];
		u32 mfn = e->frame;
		mmu_update_t req;
		u32 done = 0;
		CHECK_EQ(e->flags, GTF_accept_transfer | GTF_transfer_committed | GTF_transfer_completed,
			 "transfer_committed_and_completed");
		CHECK(mfn != 0 && mfn != spare_mfn, "transfer_frame_written");
		CHECK_EQ(((volatile grant_entry_t *)gt_page)[REF_XFER_BAD].flags, 0, "bad_entry_untouched");
		CHECK_EQ(HYPERVISOR_update_va_mapping((u32)spare, (mfn << 12) | 3, UVMF_INVLPG), 0,
			 "received_page_maps");
		CHECK_EQ(*(volatile u32 *)spare, 0x7E7E7E7E, "received_page_contents");
		req.ptr = (mfn << 12) | MMU_MACHPHYS_UPDATE;
		req.val = virt_to_pfn(spare);
		CHECK_EQ(HYPERVISOR_mmu_update(&req, 1, &done), 0, "receiver_fixes_m2p");
		CHECK_EQ(machine_to_phys_mapping[mfn], virt_to_pfn(spare), "m2p_updated");
	}
	ev_send(port);
	checks_done();
}
