/*
 * Conformance: multicall (hypercall 13), abi.md §2.1 (MAR: 32-byte entries,
 * result in args[5] at offset 24, sub-call number masked with 31; JUL: result
 * at offset 4, args from 8).
 */
#include "lib.h"

#ifdef XEN_ABI_JUL
/* JUL update_va_mapping: va, pte_lo, pte_hi, flags. 26 is mmuext_op: take 28. */
#define UVM_ARGS(va, pte, fl) (va), (pte), 0, (fl), 0
#define UNKNOWN_OP 28
#define CONSOLE_SUBCALL_RESULT 0
#else
#define UVM_ARGS(va, pte, fl) (va), (pte), (fl), 0, 0
#define UNKNOWN_OP 26
#define CONSOLE_SUBCALL_RESULT (sizeof(msg) - 1)
#endif

static multicall_entry_t mc[8];
static u8 two_pages[8192] BSS_PAGE;
static u8 scratch[4096] BSS_PAGE;
static u8 page_b[4096] BSS_PAGE;
static const char msg[] = "multicall: console_io sub-call\n";

static void entry(multicall_entry_t *e, u32 op, u32 a0, u32 a1, u32 a2, u32 a3, u32 a4)
{
	e->op = op;
	e->args[0] = a0;
	e->args[1] = a1;
	e->args[2] = a2;
	e->args[3] = a3;
	e->args[4] = a4;
	MC_RES(e) = 0x5A5A5A5A; /* result slot, must be overwritten */
	MC_SPARE(e) = 0xDEADBEEF; /* spare, must be left alone */
}

void start_kernel(start_info_t *si)
{
	multicall_entry_t *tail;
	u32 page2_ma;
	long rc;

	conf_init(si, "multicall");

	memset(mc, 0, sizeof(mc));
	entry(&mc[0], __HYPERVISOR_xen_version, 0, 0, 0, 0, 0);
	entry(&mc[1], __HYPERVISOR_xen_version, 7, 0, 0, 0, 0);
	entry(&mc[2], __HYPERVISOR_console_io, CONSOLEIO_write, sizeof(msg) - 1, (u32)msg, 0, 0);
	entry(&mc[3], UNKNOWN_OP, 0, 0, 0, 0, 0);
	entry(&mc[4], __HYPERVISOR_multicall, (u32)&mc[0], 1, 0, 0, 0);
	entry(&mc[5], __HYPERVISOR_xen_version + 32, 0, 0, 0, 0, 0);
	entry(&mc[6], __HYPERVISOR_sched_op, 0x1FF, 0, 0, 0, 0);
	rc = HYPERVISOR_multicall(mc, 7);
	CHECK_EQ(rc, 0, "batch_returns_0");
	CHECK_EQ(MC_RES(&mc[0]), XEN_VERSION_VALUE, "result_in_args5_xen_version");
	CHECK_EQ(MC_RES(&mc[1]), -ENOSYS, "subcall_error_in_result_slot");
	CHECK_EQ(MC_RES(&mc[2]), CONSOLE_SUBCALL_RESULT, "console_io_subcall_count");
	CHECK_EQ(MC_RES(&mc[3]), -ENOSYS, "unknown_op_26_enosys");
	CHECK_EQ(MC_RES(&mc[4]), -EINVAL, "nested_multicall_einval");
	CHECK_EQ(MC_RES(&mc[5]), XEN_VERSION_VALUE, "op_masked_with_31");
	CHECK_EQ(MC_RES(&mc[6]), -ENOSYS, "sched_op_subcall_enosys");
	CHECK(MC_SPARE(&mc[0]) == 0xDEADBEEF && MC_SPARE(&mc[4]) == 0xDEADBEEF && MC_SPARE(&mc[6]) == 0xDEADBEEF,
	      "spare_word_untouched");
	CHECK(mc[0].op == __HYPERVISOR_xen_version && mc[0].args[0] == 0 &&
		      mc[2].args[1] == sizeof(msg) - 1 && mc[2].args[2] == (u32)msg,
	      "op_and_args_untouched");

	CHECK_EQ(HYPERVISOR_multicall(mc, 0), 0, "zero_calls_returns_0");

	/* update_va_mapping as a sub-call behaves like the direct hypercall. */
	memset(page_b, 0xBB, sizeof(page_b));
	memset(scratch, 0x11, sizeof(scratch));
	entry(&mc[0], __HYPERVISOR_update_va_mapping,
	      UVM_ARGS((u32)scratch, virt_to_mach(page_b) | 3, UVMF_INVLPG));
	entry(&mc[1], __HYPERVISOR_update_va_mapping,
	      UVM_ARGS(HYPERVISOR_VIRT_START, virt_to_mach(page_b) | 3, UVMF_INVLPG));
	entry(&mc[2], __HYPERVISOR_update_va_mapping,
	      UVM_ARGS((u32)scratch, virt_to_mach(scratch) | 3, UVMF_INVLPG));
	rc = HYPERVISOR_multicall(mc, 2);
	CHECK_EQ(rc, 0, "uvm_batch_returns_0");
	CHECK_EQ(MC_RES(&mc[0]), 0, "uvm_subcall_ok");
	CHECK_EQ(*(volatile u32 *)scratch, 0xBBBBBBBB, "uvm_subcall_took_effect");
	CHECK_EQ(MC_RES(&mc[1]), -EINVAL, "uvm_subcall_bad_va_einval");
	rc = HYPERVISOR_multicall(&mc[2], 1);
	CHECK(rc == 0 && MC_RES(&mc[2]) == 0 && *(volatile u32 *)scratch == 0x11111111,
	      "uvm_subcall_restore");

	/* Bad list pointers. */
	CHECK_EQ(HYPERVISOR_multicall((multicall_entry_t *)HYPERVISOR_VIRT_START, 1), -EFAULT,
		 "hypervisor_va_efault");
	CHECK_EQ(HYPERVISOR_multicall((multicall_entry_t *)(HYPERVISOR_VIRT_START - 32), 2), -EFAULT,
		 "range_past_virt_start_efault");
	CHECK_EQ(HYPERVISOR_multicall((multicall_entry_t *)0x10000000, 1), -EFAULT,
		 "unmapped_efault");

	/* The range is checked before anything runs. */
	entry(&mc[0], __HYPERVISOR_xen_version, 0, 0, 0, 0, 0);
	CHECK_EQ(HYPERVISOR_multicall(mc, 0x08000000), -EFAULT, "huge_count_efault");
	CHECK_EQ(MC_RES(&mc[0]), 0x5A5A5A5A, "huge_count_nothing_executed");

	/* A list that runs into an unmapped page: -EFAULT, earlier entries executed. */
	page2_ma = virt_to_mach(two_pages + 4096);
	tail = (multicall_entry_t *)(two_pages + 4096) - 1;
	entry(tail, __HYPERVISOR_xen_version, 0, 0, 0, 0, 0);
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)two_pages + 4096, 0, UVMF_INVLPG), 0,
		 "setup_unmap_page");
	CHECK_EQ(HYPERVISOR_multicall(tail, 2), -EFAULT, "list_into_unmapped_page_efault");
	CHECK_EQ(MC_RES(tail), XEN_VERSION_VALUE, "entries_before_fault_executed");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)two_pages + 4096, page2_ma | 3, UVMF_INVLPG), 0,
		 "setup_remap_page");

	checks_done();
}
