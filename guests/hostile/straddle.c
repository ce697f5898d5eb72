/*
 * Argument arrays that straddle from a mapped page into an unmapped one (below Xen's space, so
 * the range check passes and the fault comes from the copy itself), as Xen of March 2005 read
 * them (multicall.c, mm.c do_mmu_update, event_channel.c):
 * - multicall: each entry is copied whole before it runs; the straddling entry is -EFAULT and
 *   is not run, the entries before it ran and have their results;
 * - mmu_update: each request is copied whole; the straddling one stops the batch with -EFAULT,
 *   the ones before it stand and *pdone counts them;
 * - event_channel_op send: the whole 32-byte block is copied first, so a send whose command and
 *   port are readable but whose block's tail is not is -EFAULT and sends nothing.
 */
#include "hostile.h"

static u8 area[2][4096] BSS_PAGE; /* area[1] is unmapped while the arrays straddle into it */
static u8 scratch[4096] BSS_PAGE; /* remapped by the sub-calls */
static u8 alt[4096] BSS_PAGE;     /* what they map there */

#define PAGE_END ((u32)area[1])

static u32 scratch_word(void) { return *(volatile u32 *)scratch; }

static void scratch_home(void)
{
	HYPERVISOR_update_va_mapping((u32)scratch, virt_to_mach(scratch) | 3, UVMF_INVLPG);
}

void start_kernel(start_info_t *si)
{
	multicall_entry_t *mc;
	mmu_update_t *req;
	evtchn_op_t *op;
	u32 done, port = 0, pfn, mfn;
	volatile u32 *pending;
	hostile_init(si, "straddle");
	*(volatile u32 *)scratch = 0x5C5C5C5C;
	*(volatile u32 *)alt = 0xA17A17A1;
	CHECK_EQ(HYPERVISOR_update_va_mapping(PAGE_END, 0, UVMF_INVLPG), 0, "second_page_unmapped");
	CHECK_EQ(try_load(PAGE_END), 14, "second_page_faults");

	/* multicall: entries 0 and 1 in the page, entry 2 from 16 bytes before its end. */
	mc = (multicall_entry_t *)(PAGE_END - 16 - 2 * sizeof(multicall_entry_t));
	set_uvm(&mc[0], scratch, virt_to_mach(alt) | 3);
	memset(&mc[1], 0, sizeof(mc[1]));
	mc[1].op = __HYPERVISOR_xen_version;
	MC_RES(&mc[0]) = MC_RES(&mc[1]) = 0x5555;
	/* Entry 2's op and first arguments are readable: it would map scratch home again. */
	((u32 *)&mc[2])[0] = __HYPERVISOR_update_va_mapping;
	((u32 *)&mc[2])[1] = (u32)scratch;
	((u32 *)&mc[2])[2] = virt_to_mach(scratch) | 3;
	((u32 *)&mc[2])[3] = UVMF_INVLPG;
	CHECK_EQ(HYPERVISOR_multicall(mc, 3), -EFAULT, "multicall_straddling_entry_efault");
	CHECK_EQ(MC_RES(&mc[0]), 0, "multicall_entry_0_ran");
	CHECK_EQ(MC_RES(&mc[1]), HYPERVISOR_xen_version(0), "multicall_entry_1_ran");
	CHECK_EQ(scratch_word(), 0xA17A17A1, "multicall_straddling_entry_not_run");
	scratch_home();
	CHECK_EQ(scratch_word(), 0x5C5C5C5C, "scratch_home");

	/* mmu_update: requests 0 and 1 in the page, request 2 from 4 bytes before its end. */
	req = (mmu_update_t *)(PAGE_END - 4 - 2 * sizeof(mmu_update_t));
	pfn = virt_to_pfn(alt);
	mfn = virt_to_mfn(alt);
	req[0].ptr = (mfn << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE;
	req[0].val = pfn + 1;
	req[1].ptr = pte_ma(scratch);
	req[1].val = virt_to_mach(alt) | 0x67;
	/* Request 2's ptr is readable (it would map scratch home), its val is not. */
	((u32 *)&req[2])[0] = pte_ma(scratch);
	done = 0xdead;
	CHECK_EQ(HYPERVISOR_mmu_update(req, 3, &done), -EFAULT, "mmu_update_straddling_request_efault");
	CHECK_EQ(done, 2, "mmu_update_pdone_counts_the_two_before");
	CHECK_EQ(((const volatile u32 *)HYPERVISOR_VIRT_START)[mfn], pfn + 1, "mmu_update_request_0_stands");
	mmuext(0, MMUEXT_TLB_FLUSH); /* a PTE written by mmu_update is not flushed for us */
	CHECK_EQ(scratch_word(), 0xA17A17A1, "mmu_update_request_1_stands");
	req[0].val = pfn;
	CHECK_EQ(HYPERVISOR_mmu_update(req, 1, 0), 0, "m2p_back");
	scratch_home();

	/* event_channel_op send to ourselves (an IPI port), its block cut 12 bytes in. */
	CHECK_EQ(ev_bind_ipi(0, &port), 0, "ipi_port");
	pending = ev_pending_words();
	vcpu0()->evtchn_upcall_mask = 1;
	ev_mask_words()[port / 32] |= 1u << (port % 32);
	pending[port / 32] &= ~(1u << (port % 32));
	op = (evtchn_op_t *)(PAGE_END - 12);
	((u32 *)op)[0] = EVTCHNOP_send;
	((u32 *)op)[2] = port;
	CHECK_EQ(HYPERVISOR_event_channel_op(op), -EFAULT, "send_straddling_block_efault");
	CHECK_EQ(pending[port / 32] & (1u << (port % 32)), 0, "send_straddling_block_sent_nothing");
	/* The same block wholly in the page sends. */
	op = (evtchn_op_t *)(PAGE_END - sizeof(evtchn_op_t));
	memset(op, 0, sizeof(*op));
	op->cmd = EVTCHNOP_send;
	op->u.send.local_port = port;
	CHECK_EQ(HYPERVISOR_event_channel_op(op), 0, "send_whole_block_ok");
	CHECK(pending[port / 32] & (1u << (port % 32)), "send_whole_block_sent");
	pending[port / 32] &= ~(1u << (port % 32));
	CHECK_EQ(ev_close(DOMID_SELF, port), 0, "ipi_port_closed");

	CHECK_EQ(HYPERVISOR_update_va_mapping(PAGE_END, virt_to_mach(area[1]) | 3, UVMF_INVLPG), 0,
		 "second_page_mapped_back");
	checks_done();
}
