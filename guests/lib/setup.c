/* tsxen guest library: start_info, address translation, shared_info, ring-3 pages. */
#include "lib.h"

start_info_t *start_info;
shared_info_t *HYPERVISOR_shared_info;
/* Page-aligned placeholder page; update_va_mapping points it at shared_info. */
u8 shared_info_page[4096] BSS_PAGE;
/* Ring-3 stack: lives in the US-mapped .user region. */
u8 user_stack[4096] __attribute__((section(".user.data"), aligned(4096)));

void lib_init(start_info_t *si)
{
	start_info = si;
	/* Xen's construct_dom0 never sets dom0's ring-1 stack (kernel_sp 0), where the domU
	 * builder gives start_info + 2 pages: ask for the same, so a trap from ring 3 has a
	 * stack on either side (run as dom0 on real Xen, issue 17). */
	if (si->flags & SIF_INITDOMAIN)
		HYPERVISOR_stack_switch(FLAT_KERNEL_DS, (u32)si + 2 * PAGE_SIZE);
}

u32 virt_to_pfn(const void *va)
{
	return ((u32)va - (u32)_text) >> PAGE_SHIFT;
}

u32 virt_to_mfn(const void *va)
{
	const u32 *mfn_list = (const u32 *)start_info->mfn_list;
	return mfn_list[virt_to_pfn(va)];
}

u32 virt_to_mach(const void *va)
{
	return (virt_to_mfn(va) << PAGE_SHIFT) | ((u32)va & (PAGE_SIZE - 1));
}

long map_shared_info(void)
{
	long rc = HYPERVISOR_update_va_mapping((u32)shared_info_page,
					       start_info->shared_info | _PAGE_PRESENT |
						       _PAGE_RW | _PAGE_USER,
					       UVMF_INVLPG);
	if (rc == 0)
		HYPERVISOR_shared_info = (shared_info_t *)shared_info_page;
	return rc;
}

long user_pages_init(void)
{
	u32 va;
	for (va = (u32)_user_start; va < (u32)_user_end; va += PAGE_SIZE) {
		long rc = HYPERVISOR_update_va_mapping(
			va, (virt_to_mfn((void *)va) << PAGE_SHIFT) | _PAGE_PRESENT | _PAGE_RW |
				    _PAGE_USER,
			UVMF_INVLPG);
		if (rc)
			return rc;
	}
	return 0;
}

long callbacks_init(void)
{
	return HYPERVISOR_set_callbacks(FLAT_KERNEL_CS, (u32)hypervisor_callback, FLAT_KERNEL_CS,
					(u32)failsafe_callback);
}

void guest_halt(u32 reason)
{
	for (;;)
		HYPERVISOR_shutdown(reason);
}

void conf_init(start_info_t *si, const char *suite)
{
	long rc;
	lib_init(si);
	printk("tsxen conformance: %s\n", suite);
	rc = map_shared_info();
	if (rc) {
		check_fail("setup_map_shared_info", "update_va_mapping returned %d", (int)rc);
		checks_done();
	}
	rc = traps_init();
	if (rc) {
		check_fail("setup_trap_table", "set_trap_table returned %d", (int)rc);
		checks_done();
	}
	rc = callbacks_init();
	if (rc) {
		check_fail("setup_callbacks", "set_callbacks returned %d", (int)rc);
		checks_done();
	}
}
