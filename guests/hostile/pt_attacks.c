/*
 * Page-table attacks without the writable window (issue 12, classes 3-5). Every attempt must
 * be refused with the errno Xen gives, or bounce a #PF; the guest ends with DONE.
 *  3. superpage L2 entries (XSA-148): PSE in a PDE through mmu_update, in a fresh L2 that is
 *     then pinned, and by a direct store into the L2; PAT/PSE bit 7 in L1 entries;
 *  4. RW flips on page-table mappings through fast paths (XSA-182): a read-only linear L2
 *     entry rewritten with RW, a read-only PTE of an L1 or L2 page rewritten with RW (by
 *     mmu_update, update_va_mapping and a multicall);
 *  5. foreign frames: the victim's data frame, its L2 (vl2=), the M2P and its L1 named in
 *     PTEs, PDEs, MACHPHYS_UPDATE, pins, base pointers, plain stores, transfers, decrease.
 * The kernel's own L1 maps itself, so with the writable-page-table assist a direct store into
 * it is emulated and checked one entry at a time: those stores must bounce a #PF too.
 */
#include "hostile.h"

#define FREE_SLOT 0x102u /* VA 0x40800000: unused by us */

static u8 scratch[4096] BSS_PAGE;
static u8 scratch2[4096] BSS_PAGE;
static u32 vmfn, vl2, vl1, m2pl1, l2ma;

static u32 kernel_l1_mfn(void)
{
	return cur_l2()[(u32)_text >> 22] >> PAGE_SHIFT;
}

static long uvm(const void *va, u32 pte)
{
	return HYPERVISOR_update_va_mapping((u32)va, pte, UVMF_INVLPG);
}

static void superpages(void)
{
	u32 l2b = spare_mfn(0), l1 = kernel_l1_mfn();
	u32 big = (vmfn & ~1023u) << PAGE_SHIFT; /* the 4 MiB machine region holding the victim */
	u32 pde_ma = l2ma + FREE_SLOT * 4;

	CHECK_EQ(mmu1(pde_ma, big | 0xE7), -EINVAL, "pse_pde_over_victim_region");
	CHECK_EQ(mmu1(pde_ma, 0 | 0xE7), -EINVAL, "pse_pde_over_low_memory");
	CHECK_EQ(mmu1(pde_ma, (l1 << PAGE_SHIFT) | 0xA7), -EINVAL, "pse_pde_at_own_l1");
	CHECK_EQ(mmu1(pde_ma, (l1 << PAGE_SHIFT) | 0x167), -EINVAL, "global_pde");
	CHECK_EQ(cur_l2()[FREE_SLOT], 0, "pde_untouched");
	/* A fresh L2 carrying a superpage: validation refuses the pin. */
	CHECK_EQ(build_l2_copy(l2b, FREE_SLOT, big | 0xE7, 0), 0, "build_l2_with_pse");
	CHECK_EQ(mmuext(l2b << PAGE_SHIFT, MMUEXT_PIN_L2_TABLE), -EINVAL, "pin_l2_with_pse_refused");
	CHECK_EQ(mmuext(l2b << PAGE_SHIFT, MMUEXT_NEW_BASEPTR), -EINVAL, "baseptr_l2_with_pse_refused");
	/* The direct store: our L2 is mapped read-only at pt_base (no assist for L2s). */
	CHECK_EQ(try_store(start_info->pt_base + FREE_SLOT * 4, big | 0xE7), 14, "direct_pse_store_faults");
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables), 0,
		 "assist_on");
	CHECK_EQ(try_store(start_info->pt_base + FREE_SLOT * 4, big | 0xE7), 14,
		 "direct_pse_store_faults_with_assist");
	CHECK_EQ(cur_l2()[FREE_SLOT], 0, "pde_still_empty");
	/* Bit 7 (PAT) and bit 8 (GLOBAL) in L1 entries. */
	CHECK_EQ(uvm(scratch, virt_to_mach(scratch) | 0x80 | 3), -EINVAL, "uvm_pat_bit");
	CHECK_EQ(uvm(scratch, virt_to_mach(scratch) | 0x100 | 3), -EINVAL, "uvm_global_bit");
	CHECK_EQ(mmu1(pte_ma(scratch), virt_to_mach(scratch) | 0x80 | 3), -EINVAL, "mmu_pat_bit");
	/* Emulated direct stores into the self-mapping kernel L1. */
	{
		volatile u32 *kl1 = (volatile u32 *)(start_info->pt_base + PAGE_SIZE);
		u32 idx = ((u32)scratch >> PAGE_SHIFT) & 1023, was = kl1[idx];
		CHECK_EQ(try_store((u32)&kl1[idx], virt_to_mach(scratch) | 0x80 | 3), 14,
			 "emulated_pat_store_faults");
		CHECK_EQ(try_store((u32)&kl1[idx], (vmfn << PAGE_SHIFT) | 0x67), 14,
			 "emulated_victim_store_faults");
		CHECK_EQ(try_store((u32)&kl1[idx], (vmfn << PAGE_SHIFT) | 0x25), 14,
			 "emulated_victim_ro_store_faults");
		CHECK_EQ(try_store((u32)&kl1[idx], l2ma | 0x67), 14, "emulated_own_l2_rw_store_faults");
		CHECK_EQ(try_store((u32)&kl1[idx], (m2pl1 << PAGE_SHIFT) | 0x25), 14,
			 "emulated_m2p_l1_store_faults");
		CHECK_EQ(kl1[idx], was, "kernel_l1_entry_unchanged");
	}
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_disable, VMASST_TYPE_writable_pagetables), 0,
		 "assist_off");
}

static void rw_flips(void)
{
	u32 l1 = kernel_l1_mfn();
	u32 pde_ma = l2ma + FREE_SLOT * 4;
	static multicall_entry_t mc[2];

	/* A read-only linear entry (the L2 maps itself): allowed; RW on it must not be. */
	CHECK_EQ(mmu1(pde_ma, l2ma | 0x25), 0, "linear_ro_pde_accepted");
	CHECK_EQ(mmu1(pde_ma, l2ma | 0x27), -EINVAL, "linear_pde_rw_flip_refused");
	CHECK_EQ(mmu1(pde_ma, l2ma | 0x67), -EINVAL, "linear_pde_rw_dirty_flip_refused");
	CHECK_EQ(cur_l2()[FREE_SLOT] & _PAGE_RW, 0, "linear_pde_still_readonly");
	CHECK_EQ(try_store((FREE_SLOT << 22) + (FREE_SLOT << 12) + 4, 0x1234), 14,
		 "linear_window_not_writable");
	/* update_va_mapping of a VA inside the linear window: its "PTE" is an entry of the L2
	 * itself, reached through a read-only linear mapping. Nothing may be written there. */
	{
		u32 lin = FREE_SLOT << 22;
		CHECK_EQ(uvm((void *)(lin + (0x103u << 12)), (l1 << PAGE_SHIFT) | 0x67), -EINVAL,
			 "uvm_through_linear_own_l1_as_pde");
		CHECK_EQ(uvm((void *)(lin + (0x103u << 12)), (vmfn << PAGE_SHIFT) | 0x67), -EINVAL,
			 "uvm_through_linear_victim_as_pde");
		CHECK_EQ(uvm((void *)(lin + (FREE_SLOT << 12)), l2ma | 0x27), -EINVAL,
			 "uvm_through_linear_rw_self_map");
		CHECK_EQ(uvm((void *)(lin + (0x103u << 12)), 0), -EINVAL, "uvm_through_linear_clear");
		CHECK_EQ(cur_l2()[0x103], 0, "l2_entry_untouched");
		CHECK_EQ(cur_l2()[FREE_SLOT] & _PAGE_RW, 0, "self_map_still_readonly");
	}
	CHECK_EQ(mmu1(pde_ma, 0), 0, "linear_pde_cleared");
	/* A read-only PTE of a page table: RW flips by every route. */
	CHECK_EQ(uvm(scratch, (l1 << PAGE_SHIFT) | 0x25), 0, "map_own_l1_readonly");
	CHECK_EQ(uvm(scratch, (l1 << PAGE_SHIFT) | 0x27), -EINVAL, "uvm_l1_rw_flip_refused");
	CHECK_EQ(mmu1(pte_ma(scratch), (l1 << PAGE_SHIFT) | 0x67), -EINVAL, "mmu_l1_rw_flip_refused");
	mc[0].op = __HYPERVISOR_update_va_mapping;
	mc[0].args[0] = (u32)scratch;
	mc[0].args[1] = (l1 << PAGE_SHIFT) | 0x27;
	mc[0].args[2] = UVMF_INVLPG;
	mc[1] = mc[0];
	mc[1].args[1] = l2ma | 0x27;
	CHECK_EQ(HYPERVISOR_multicall(mc, 2), 0, "multicall_ran");
	CHECK_EQ(MC_RES(&mc[0]), -EINVAL, "multicall_l1_rw_flip_refused");
	CHECK_EQ(MC_RES(&mc[1]), -EINVAL, "multicall_l2_rw_refused");
	CHECK_EQ(try_store((u32)scratch, 0), 14, "own_l1_still_readonly");
	CHECK_EQ(uvm(scratch2, l2ma | 0x25), 0, "map_own_l2_readonly");
	CHECK_EQ(uvm(scratch2, l2ma | 0x27), -EINVAL, "uvm_l2_rw_flip_refused");
	CHECK_EQ(mmu1(pte_ma(scratch2), l2ma | 0x27), -EINVAL, "mmu_l2_rw_flip_refused");
	CHECK_EQ(try_store((u32)scratch2 + FREE_SLOT * 4, 0xE7), 14, "own_l2_still_readonly");
	CHECK_EQ(uvm(scratch, virt_to_mach(scratch) | 3), 0, "restore_scratch");
	CHECK_EQ(uvm(scratch2, virt_to_mach(scratch2) | 3), 0, "restore_scratch2");
}

static void foreign(void)
{
	u32 victim = cmdline_u32(start_info, "victim", 0);
	u32 pde_ma = l2ma + FREE_SLOT * 4, list[1];
	u32 m2p0 = 0;

	CHECK_EQ(mmu1(pte_ma(scratch), (vmfn << PAGE_SHIFT) | 0x67), -EINVAL, "mmu_map_victim_rw");
	CHECK_EQ(mmu1(pte_ma(scratch), (vmfn << PAGE_SHIFT) | 0x25), -EINVAL, "mmu_map_victim_ro");
	CHECK_EQ(uvm(scratch, (vmfn << PAGE_SHIFT) | 0x25), -EINVAL, "uvm_map_victim");
	CHECK_EQ(HYPERVISOR_update_va_mapping_otherdomain((u32)scratch, (vmfn << PAGE_SHIFT) | 0x25,
							  UVMF_INVLPG, victim),
		 -EPERM, "uvm_otherdomain_unprivileged");
	CHECK_EQ(uvm(scratch, (vl2 << PAGE_SHIFT) | 0x25), -EINVAL, "uvm_map_victim_l2");
	CHECK_EQ(uvm(scratch, (m2pl1 << PAGE_SHIFT) | 0x25), -EINVAL, "uvm_map_m2p_l1");
	CHECK_EQ(uvm(scratch, 0xB8000 | 0x27), -EINVAL, "uvm_map_io_frame_unprivileged");
	/* The M2P's own frames are mapped read-only for everyone at 0xFC000000 already. */
	m2p0 = ((const volatile u32 *)0xFC000000u)[0]; /* reading is allowed */
	(void)m2p0;
	CHECK_EQ(try_store(0xFC000000u + vmfn * 4, 0), 14, "m2p_not_writable");
	/* Beyond the flat segments' limit: #GP before any page walk. */
	CHECK_EQ(try_load(0xFC400000u), 13, "xen_private_area_not_readable");
	/* Foreign domain selection: unprivileged callers get only DOMID_IO, which owns no RAM. */
	{
		mmu_update_t r[2];
		r[0].ptr = MMU_EXTENDED_COMMAND;
		r[0].val = MMUEXT_SET_FOREIGNDOM | (victim << 16);
		CHECK_EQ(HYPERVISOR_mmu_update(r, 1, 0), -EINVAL, "set_foreigndom_victim");
		r[0].val = MMUEXT_SET_FOREIGNDOM | (DOMID_XEN << 16);
		CHECK_EQ(HYPERVISOR_mmu_update(r, 1, 0), -EINVAL, "set_foreigndom_xen");
		r[0].val = MMUEXT_SET_FOREIGNDOM | (DOMID_IO << 16);
		r[1].ptr = pte_ma(scratch);
		r[1].val = (vmfn << PAGE_SHIFT) | 0x25;
		CHECK_EQ(HYPERVISOR_mmu_update(r, 2, 0), -EINVAL, "foreigndom_io_maps_no_ram");
	}
	/* PDEs, pins and base pointers naming the victim's tables. */
	CHECK_EQ(mmu1(pde_ma, (vl2 << PAGE_SHIFT) | 0x25), -EINVAL, "pde_linear_to_victim_l2");
	CHECK_EQ(mmu1(pde_ma, (vmfn << PAGE_SHIFT) | 0x67), -EINVAL, "pde_at_victim_frame");
	CHECK_EQ(mmu1(pde_ma, (m2pl1 << PAGE_SHIFT) | 0x25), -EINVAL, "pde_at_m2p_l1");
	CHECK_EQ(mmuext(vl2 << PAGE_SHIFT, MMUEXT_UNPIN_TABLE), -EINVAL, "unpin_victim_l2");
	CHECK_EQ(mmuext(vl2 << PAGE_SHIFT, MMUEXT_NEW_BASEPTR), -EINVAL, "baseptr_victim_l2");
	CHECK_EQ(mmuext(vmfn << PAGE_SHIFT, MMUEXT_PIN_L1_TABLE), -EINVAL, "pin_victim_frame");
	CHECK_EQ(mmuext(m2pl1 << PAGE_SHIFT, MMUEXT_PIN_L1_TABLE), -EINVAL, "pin_m2p_l1");
	/* The victim's kernel L1 (vl1=): already a validated L1, but not ours. */
	CHECK_EQ(mmu1(pde_ma, (vl1 << PAGE_SHIFT) | 0x67), -EINVAL, "pde_at_victim_l1");
	CHECK_EQ(mmuext(vl1 << PAGE_SHIFT, MMUEXT_PIN_L1_TABLE), -EINVAL, "pin_victim_l1");
	CHECK_EQ(uvm(scratch, (vl1 << PAGE_SHIFT) | 0x25), -EINVAL, "uvm_map_victim_l1");
	/* The frame after the M2P's L1 is (in tsxen's layout) an M2P frame: Xen's, read-only. */
	CHECK_EQ(uvm(scratch, ((m2pl1 + 1) << PAGE_SHIFT) | 0x25), -EINVAL, "uvm_map_m2p_frame");
	/* Plain stores by machine address and M2P updates of frames not ours. */
	CHECK_EQ(mmu1(vmfn << PAGE_SHIFT, 0xDEADBEEF), -EINVAL, "plain_store_into_victim");
	CHECK_EQ(mmu1(vl2 << PAGE_SHIFT, 0xDEADBEEF), -EINVAL, "plain_store_into_victim_l2");
	CHECK_EQ(mmu1(m2pl1 << PAGE_SHIFT, 0xDEADBEEF), -EINVAL, "plain_store_into_m2p_l1");
	CHECK_EQ(mmu1(m2pl1 << PAGE_SHIFT | MMU_MACHPHYS_UPDATE, 5), -EINVAL, "machphys_m2p_l1");
	CHECK_EQ(mmu1((vmfn << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, 5), -EINVAL, "machphys_victim");
	CHECK_EQ(mmu1((vl2 << PAGE_SHIFT) | MMU_MACHPHYS_UPDATE, 5), -EINVAL, "machphys_victim_l2");
	/* Frames beyond machine memory and in the I/O hole. */
	CHECK_EQ(mmu1(0xFFFFFFF8u, 0), -EINVAL, "plain_store_beyond_memory");
	CHECK_EQ(mmu1(0x1000, 0), -EINVAL, "plain_store_into_io_frame");
	CHECK_EQ(mmu1(0xFFFFF000u | MMU_MACHPHYS_UPDATE, 0), -EINVAL, "machphys_beyond_memory");
	CHECK_EQ(mmuext(0xFFFFF000u, MMUEXT_PIN_L1_TABLE), -EINVAL, "pin_beyond_memory");
	CHECK_EQ(mmuext(0xFFFFF000u, MMUEXT_NEW_BASEPTR), -EINVAL, "baseptr_beyond_memory");
	CHECK_EQ(mmuext(0, MMUEXT_PIN_L2_TABLE), -EINVAL, "pin_io_frame_0");
	CHECK_EQ(uvm(scratch, 0xFFFFF000u | 0x25), -EINVAL, "uvm_frame_beyond_memory");
	/* Moving frames: transfer and reassign of the victim's, decrease of it. */
	CHECK_EQ(mmu1((vmfn << PAGE_SHIFT) | MMU_EXTENDED_COMMAND, MMUEXT_TRANSFER_PAGE), -EINVAL,
		 "transfer_victim_frame");
	CHECK_EQ(mmu1((vmfn << PAGE_SHIFT) | MMU_EXTENDED_COMMAND, MMUEXT_REASSIGN_PAGE), -EINVAL,
		 "reassign_unprivileged");
	list[0] = vmfn;
	CHECK_EQ(HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, list, 1, 0, DOMID_SELF), 0,
		 "decrease_victim_frame_none_done");
	list[0] = vl2;
	CHECK_EQ(HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, list, 1, 0, DOMID_SELF), 0,
		 "decrease_victim_l2_none_done");
	list[0] = m2pl1;
	CHECK_EQ(HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, list, 1, 0, DOMID_SELF), 0,
		 "decrease_m2p_l1_none_done");
	CHECK_EQ(HYPERVISOR_dom_mem_op(MEMOP_decrease_reservation, list, 1, 0, victim), -EPERM,
		 "decrease_for_victim_unprivileged");
}

void start_kernel(start_info_t *si)
{
	hostile_init(si, "pt_attacks");
	vmfn = cmdline_u32(si, "vmfn", 0);
	vl2 = cmdline_u32(si, "vl2", 0);
	vl1 = cmdline_u32(si, "vl1", 0);
	m2pl1 = m2p_l1_mfn();
	l2ma = cur_l2_ma();
	CHECK(vmfn != 0 && vl2 != 0 && vl1 != 0, "victim_named");
	superpages();
	rw_flips();
	foreign();
	checks_done();
}
