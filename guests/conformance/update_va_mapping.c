/*
 * Conformance: update_va_mapping (hypercall 14, MAR: EBX va, ECX pte, EDX flags),
 * abi.md §1.3, §2.3.3, §2.5; semantics §1.9.
 */
#include "probe.h"

PROBE(p_read, "movl probe_addr, %eax", "movl (%eax), %ecx");
PROBE(p_write, "movl probe_addr, %eax", "movl %ecx, (%eax)");

/* scratch page (remapped by the tests) and two pages with known contents */
static u8 scratch[4096] BSS_PAGE;
static u8 page_a[4096] BSS_PAGE;
static u8 page_b[4096] BSS_PAGE;

static u32 rd(const void *va)
{
	return *(volatile const u32 *)va;
}

void start_kernel(start_info_t *si)
{
	u32 sva = (u32)scratch;
	u32 ma_scratch, ma_a, ma_b, ma_l2, ma_l1;
	long rc;
	int v;

	conf_init(si, "update_va_mapping"); /* already mapped shared_info with MA|7, UVMF_INVLPG */

	CHECK(HYPERVISOR_shared_info->n_vcpu >= 1 && HYPERVISOR_shared_info->n_vcpu <= 32,
	      "shared_info_mapped_n_vcpu_sane");
	CHECK_EQ(vcpu0()->evtchn_upcall_mask, 1, "shared_info_initial_upcall_mask_1");

	memset(scratch, 0x11, sizeof(scratch));
	memset(page_a, 0xAA, sizeof(page_a));
	memset(page_b, 0xBB, sizeof(page_b));
	ma_scratch = virt_to_mach(scratch);
	ma_a = virt_to_mach(page_a);
	ma_b = virt_to_mach(page_b);
	ma_l2 = virt_to_mach((void *)si->pt_base);
	ma_l1 = virt_to_mach((void *)(si->pt_base + PAGE_SIZE));

	/* Remap the scratch VA onto page A. */
	rc = HYPERVISOR_update_va_mapping(sva, ma_a | 3, UVMF_INVLPG);
	CHECK_EQ(rc, 0, "remap_invlpg_ok");
	CHECK_EQ(rd(scratch), 0xAAAAAAAA, "remap_invlpg_visible");

	rc = HYPERVISOR_update_va_mapping(sva, ma_b | 3, UVMF_FLUSH_TLB);
	CHECK_EQ(rc, 0, "remap_flush_tlb_ok");
	CHECK_EQ(rd(scratch), 0xBBBBBBBB, "remap_flush_tlb_visible");

	rc = HYPERVISOR_update_va_mapping(sva, ma_a | 3, UVMF_FLUSH_TLB | UVMF_INVLPG);
	CHECK_EQ(rc, 0, "remap_both_flags_ok");
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(rd(scratch), 0xAAAAAAAA, "remap_both_flags_visible");
#endif

	/* The low 12 bits of the VA are ignored (va >> 12 selects the PTE). */
	rc = HYPERVISOR_update_va_mapping(sva + 0x123, ma_b | 3, UVMF_INVLPG);
	CHECK_EQ(rc, 0, "unaligned_va_ok");
	CHECK_EQ(rd(scratch), 0xBBBBBBBB, "unaligned_va_maps_page");

	rc = HYPERVISOR_update_va_mapping(sva, ma_a | 3, 0);
	CHECK_EQ(rc, 0, "no_flush_flags_ok");
	HYPERVISOR_update_va_mapping(sva, ma_a | 3, UVMF_INVLPG);

	/* Writes through the new mapping reach the frame. */
	*(volatile u32 *)scratch = 0x12345678;
	CHECK_EQ(rd(page_a), 0x12345678, "write_through_alias_reaches_frame");

	/* Error paths. */
	CHECK_EQ(HYPERVISOR_update_va_mapping(HYPERVISOR_VIRT_START, ma_a | 3, UVMF_INVLPG), -EINVAL,
		 "va_0xfc000000_einval");
	CHECK_EQ(HYPERVISOR_update_va_mapping(0xFFFFF000u, ma_a | 3, UVMF_INVLPG), -EINVAL,
		 "va_0xfffff000_einval");
	CHECK_EQ(HYPERVISOR_update_va_mapping(0x10000000, ma_a | 3, UVMF_INVLPG), -EINVAL,
		 "va_without_l2_entry_einval");
	CHECK_EQ(HYPERVISOR_update_va_mapping(sva, ma_b | 3 | _PAGE_GLOBAL, UVMF_INVLPG), -EINVAL,
		 "pte_global_bit_einval");
	CHECK_EQ(HYPERVISOR_update_va_mapping(sva, ma_b | 3 | _PAGE_PAT, UVMF_INVLPG), -EINVAL,
		 "pte_pat_bit_einval");
	CHECK_EQ(HYPERVISOR_update_va_mapping(sva, ma_l2 | 3, UVMF_INVLPG), -EINVAL,
		 "l2_page_writable_einval");
	CHECK_EQ(HYPERVISOR_update_va_mapping(sva, ma_l1 | 3, UVMF_INVLPG), -EINVAL,
		 "l1_page_writable_einval");
	CHECK_EQ(rd(scratch), 0x12345678, "failed_updates_leave_pte");

	/* Page-table pages may be mapped read-only. */
	rc = HYPERVISOR_update_va_mapping(sva, ma_l2 | 1, UVMF_INVLPG);
	CHECK_EQ(rc, 0, "l2_page_readonly_ok");
	CHECK(memcmp(scratch, (void *)si->pt_base, 4032) == 0, "l2_readonly_alias_matches");
	probe_addr = sva;
	v = trap_catch(p_write, 0);
	CHECK(v == 14 && last_trap.cr2 == sva && last_trap.error_code == 3,
	      "readonly_alias_write_faults");

	/* A read-only mapping of an ordinary page. */
	rc = HYPERVISOR_update_va_mapping(sva, ma_b | 1, UVMF_INVLPG);
	CHECK_EQ(rc, 0, "readonly_mapping_ok");
	CHECK_EQ(rd(scratch), 0xBBBBBBBB, "readonly_mapping_readable");

	/* Unmap: PTE 0, then the VA faults (not present, read). */
	rc = HYPERVISOR_update_va_mapping(sva, 0, UVMF_INVLPG);
	CHECK_EQ(rc, 0, "unmap_ok");
	probe_addr = sva;
	v = trap_catch(p_read, 0);
	CHECK_EQ(v, 14, "unmapped_read_faults");
	CHECK_EQ(last_trap.cr2, sva, "unmapped_read_cr2");
	CHECK_EQ(last_trap.error_code, 0, "unmapped_read_error_code");

	/* A not-present PTE may carry other bits. */
	CHECK_EQ(HYPERVISOR_update_va_mapping(sva, 0xABCDE000u, UVMF_INVLPG), 0,
		 "not_present_pte_any_value_ok");

	/* Restore the scratch page's own frame. */
	rc = HYPERVISOR_update_va_mapping(sva, ma_scratch | 3, UVMF_INVLPG);
	CHECK_EQ(rc, 0, "restore_ok");
	CHECK_EQ(rd(scratch), 0x11111111, "restore_visible");

	/* The M2P (read-only at 0xFC000000) maps our MFNs back to PFNs. */
	CHECK_EQ(machine_to_phys_mapping[ma_a >> PAGE_SHIFT], virt_to_pfn(page_a), "m2p_page_a");
	CHECK_EQ(machine_to_phys_mapping[ma_scratch >> PAGE_SHIFT], virt_to_pfn(scratch),
		 "m2p_scratch");

	/* shared_info mapping survives. */
	CHECK_EQ(vcpu0()->evtchn_upcall_mask, 1, "shared_info_still_mapped");

	/* update_va_mapping_otherdomain (22) is for privileged domains only: -EPERM, before the
	 * domain id is looked at. */
	CHECK_EQ_UNPRIV(HYPERVISOR_update_va_mapping_otherdomain(sva, ma_scratch | 3, UVMF_INVLPG, 0),
		 -EPERM, "otherdomain_unprivileged_eperm");
	CHECK_EQ_UNPRIV(HYPERVISOR_update_va_mapping_otherdomain(sva, ma_scratch | 3, UVMF_INVLPG, 999),
		 -EPERM, "otherdomain_unprivileged_unknown_domid_eperm");
	CHECK_EQ(rd(scratch), 0x11111111, "otherdomain_refused_leaves_mapping");

	checks_done();
}
