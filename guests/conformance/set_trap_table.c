/*
 * Conformance: set_trap_table (hypercall 0, abi.md §1.3, §2.2, §3.3) and the
 * exception / software-interrupt bounce frames it leads to (abi.md §2.2.2-3).
 */
#include "probe.h"

PROBE(p_int40, "", "int $0x40");
PROBE(p_int41, "", "int $0x41");
PROBE(p_int42, "", "int $0x42");
PROBE(p_int43, "", "int $0x43");
PROBE(p_int44, "", "int $0x44");
PROBE(p_int46, "", "int $0x46");
PROBE(p_int47, "", "int $0x47");
PROBE(p_int48, "", "int $0x48");
PROBE(p_int49, "", "int $0x49");
PROBE(p_int3, "", "int3");
PROBE(p_int_3, "", ".byte 0xcd, 0x03");
PROBE(p_into, "movl $0x7fffffff, %eax\n addl $1, %eax", "into");
PROBE(p_div0, "xorl %ecx, %ecx\n movl $1, %eax\n xorl %edx, %edx", "divl %ecx");
PROBE(p_ud2, "", "ud2");
PROBE(p_read, "movl probe_addr, %eax", "movl (%eax), %ecx");
PROBE(p_write, "movl probe_addr, %eax", "movl %ecx, (%eax)");
PROBE(p_hlt, "", "hlt");
PROBE(p_lds, "movl $0x0808, %eax", "movl %eax, %ds");

static u8 two_pages[8192] BSS_PAGE;
static volatile u8 mask_in_handler;

static int record_mask(struct trap_frame *f)
{
	mask_in_handler = vcpu0()->evtchn_upcall_mask;
	return 0; /* let trap_catch take it */
}

static long set_one(u32 vector, u32 flags, u32 cs, u32 addr)
{
	trap_info_t t[2];
	memset(t, 0, sizeof(t));
	t[0].vector = (u8)vector;
	t[0].flags = (u8)flags;
	t[0].cs = (u16)cs;
	t[0].address = addr;
	return HYPERVISOR_set_trap_table(t);
}

static void check_softint(void (*probe)(void *), u32 vector, const char *after, const char *name)
{
	char n[80];
	int v = trap_catch(probe, 0);
	snprintf(n, sizeof(n), "%s_delivered", name);
	CHECK_EQ(v, vector, n);
	snprintf(n, sizeof(n), "%s_eip_after_insn", name);
	CHECK_EQ(last_trap.eip, (u32)after, n);
	snprintf(n, sizeof(n), "%s_frame_eip_cs_eflags", name);
	CHECK_EQ(last_trap_entry_esp, probe_esp - 12, n);
}

static void check_gp(void (*probe)(void *), const char *insn, u32 err, const char *name)
{
	char n[80];
	int v = trap_catch(probe, 0);
	snprintf(n, sizeof(n), "%s_gp", name);
	CHECK_EQ(v, 13, n);
	snprintf(n, sizeof(n), "%s_gp_error_code", name);
	CHECK_EQ(last_trap.error_code, err, n);
	snprintf(n, sizeof(n), "%s_gp_eip_at_insn", name);
	CHECK_EQ(last_trap.eip, (u32)insn, n);
	snprintf(n, sizeof(n), "%s_gp_frame_has_error_code", name);
	CHECK_EQ(last_trap_entry_esp, probe_esp - 16, n);
}

void start_kernel(start_info_t *si)
{
	trap_info_t list[4];
	trap_info_t *tail;
	u32 page2_ma;
	int v;

	conf_init(si, "set_trap_table");

	CHECK_EQ(traps_init(), 0, "install_exception_table");

	memset(list, 0, sizeof(list));
	CHECK_EQ(HYPERVISOR_set_trap_table(list), 0, "empty_list_returns_0");

	/* A bad cs stops the list with -EPERM; entries before it stay installed. */
	memset(list, 0, sizeof(list));
	list[0] = (trap_info_t){ 0x40, 1, FLAT_KERNEL_CS, trap_stub(0x40) };
	list[1] = (trap_info_t){ 0x41, 1, XEN_RING0_CS, trap_stub(0x41) };
	list[2] = (trap_info_t){ 0x42, 1, FLAT_KERNEL_CS, trap_stub(0x42) };
	CHECK_EQ(HYPERVISOR_set_trap_table(list), -EPERM, "bad_cs_eperm");
	check_softint(p_int40, 0x40, p_int40_after, "entry_before_bad_cs_installed");
	check_gp(p_int41, p_int41_insn, (0x41 << 3) | 2, "bad_cs_entry_not_installed");
	check_gp(p_int42, p_int42_insn, (0x42 << 3) | 2, "entry_after_bad_cs_not_installed");

	/* VALID_CODESEL (abi.md §3.3). */
	CHECK_EQ(set_one(0x4E, 0, FLAT_KERNEL_DS, trap_stub(0x4E)), -EPERM, "cs_0x0821_reserved_eperm");
	CHECK_EQ(set_one(0x4E, 0, FLAT_USER_CS, trap_stub(0x4E)), -EPERM, "cs_0x082b_rpl3_eperm");
	CHECK_EQ(set_one(0x4E, 0, 0x0818, trap_stub(0x4E)), -EPERM, "cs_0x0818_rpl0_eperm");
	CHECK_EQ(set_one(0x4E, 0, (LAST_RESERVED_GDT_ENTRY << 3) | 1, trap_stub(0x4E)), -EPERM,
		 "cs_index_295_eperm");
	CHECK_EQ(set_one(0x4E, 0, (FIRST_RESERVED_GDT_ENTRY << 3) | 1, trap_stub(0x4E)), -EPERM,
		 "cs_index_256_eperm");
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(set_one(0x4E, 0, ((LAST_RESERVED_GDT_ENTRY + 1) << 3) | 1, trap_stub(0x4E)), 0,
		 "cs_index_296_ok");
#endif
	CHECK_EQ(set_one(0x4E, 0, (255 << 3) | 1, trap_stub(0x4E)), 0, "cs_index_255_ok");
	CHECK_EQ(set_one(0x4F, 0, (1 << 3) | 4 | 1, trap_stub(0x4F)), 0, "cs_ldt_selector_ok");

	/* Bad pointers. */
	CHECK_EQ(HYPERVISOR_set_trap_table((trap_info_t *)HYPERVISOR_VIRT_START), -EFAULT,
		 "hypervisor_va_efault");
	CHECK_EQ(HYPERVISOR_set_trap_table((trap_info_t *)(HYPERVISOR_VIRT_START - 4)), -EFAULT,
		 "straddling_virt_start_efault");
	CHECK_EQ(HYPERVISOR_set_trap_table((trap_info_t *)0x10000000), -EFAULT, "unmapped_efault");

	/* A list that runs into an unmapped page: -EFAULT, earlier entries stay. */
	page2_ma = virt_to_mach(two_pages + 4096);
	tail = (trap_info_t *)(two_pages + 4096) - 1;
	*tail = (trap_info_t){ 0x43, 1, FLAT_KERNEL_CS, trap_stub(0x43) };
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)two_pages + 4096, 0, UVMF_INVLPG), 0,
		 "setup_unmap_page");
	CHECK_EQ(HYPERVISOR_set_trap_table(tail), -EFAULT, "list_into_unmapped_page_efault");
	check_softint(p_int43, 0x43, p_int43_after, "entry_before_fault_installed");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)two_pages + 4096, page2_ma | 3, UVMF_INVLPG), 0,
		 "setup_remap_page");

	/* Later entries override earlier ones for the same vector. */
	memset(list, 0, sizeof(list));
	list[0] = (trap_info_t){ 0x44, 1, FLAT_KERNEL_CS, trap_stub(0x45) };
	list[1] = (trap_info_t){ 0x44, 1, FLAT_KERNEL_CS, trap_stub(0x44) };
	CHECK_EQ(HYPERVISOR_set_trap_table(list), 0, "duplicate_vector_ok");
	check_softint(p_int44, 0x44, p_int44_after, "duplicate_vector_last_wins");

	/* Flag bit 2 ("IF") masks events on delivery; without it the mask is untouched. */
	CHECK_EQ(set_one(0x46, 1 | TI_IF, FLAT_KERNEL_CS, trap_stub(0x46)), 0, "set_if_flagged_vector");
	CHECK_EQ(set_one(0x47, 1, FLAT_KERNEL_CS, trap_stub(0x47)), 0, "set_plain_vector");
	trap_hooks[0x46] = record_mask;
	trap_hooks[0x47] = record_mask;
	vcpu0()->evtchn_upcall_pending = 0;
	mask_in_handler = 0xFF;
	events_enable();
	v = trap_catch(p_int46, 0);
	events_disable();
	CHECK(v == 0x46 && mask_in_handler == 1, "if_flag_sets_upcall_mask");
	mask_in_handler = 0xFF;
	events_enable();
	v = trap_catch(p_int47, 0);
	events_disable();
	CHECK(v == 0x47 && mask_in_handler == 0, "no_if_flag_leaves_upcall_mask");

	/* DPL: int n from ring 1 needs DPL >= 1, else #GP((n << 3) | 2). */
	CHECK_EQ(set_one(0x48, 1, FLAT_KERNEL_CS, trap_stub(0x48)), 0, "set_dpl1_vector");
	CHECK_EQ(set_one(0x49, 0, FLAT_KERNEL_CS, trap_stub(0x49)), 0, "set_dpl0_vector");
	check_softint(p_int48, 0x48, p_int48_after, "int_dpl1_from_ring1");
	CHECK_EQ(last_trap.cs & 0xFFFF, FLAT_KERNEL_CS, "int_dpl1_frame_cs");
	check_gp(p_int49, p_int49_insn, (0x49 << 3) | 2, "int_dpl0_from_ring1");

	/* int3 / int $3 / into reach vectors 3 / 4 whatever their DPL. */
	CHECK_EQ(trap_set(3, 0), 0, "set_vector3_dpl0");
	CHECK_EQ(trap_set(4, 0), 0, "set_vector4_dpl0");
	check_softint(p_int3, 3, p_int3_after, "int3");
	check_softint(p_int_3, 3, p_int_3_after, "int_3");
	check_softint(p_into, 4, p_into_after, "into");

	/* Faults: EIP at the faulting instruction; error code only where the CPU has one. */
	v = trap_catch(p_div0, 0);
	CHECK_EQ(v, 0, "divide_error_vector0");
	CHECK_EQ(last_trap.eip, (u32)p_div0_insn, "divide_error_eip");
	CHECK_EQ(last_trap_entry_esp, probe_esp - 12, "divide_error_no_error_code");

	v = trap_catch(p_ud2, 0);
	CHECK_EQ(v, 6, "invalid_opcode_vector6");
	CHECK_EQ(last_trap.eip, (u32)p_ud2_insn, "invalid_opcode_eip");
	CHECK_EQ(last_trap_entry_esp, probe_esp - 12, "invalid_opcode_no_error_code");

	/* #PF: CR2 is pushed below the error code (frame CR2, err, EIP, CS, EFLAGS). */
	probe_addr = 0x10000000;
	v = trap_catch(p_read, 0);
	CHECK_EQ(v, 14, "pf_read_unmapped_vector14");
	CHECK_EQ(last_trap.cr2, 0x10000000, "pf_read_unmapped_cr2_below_error_code");
	CHECK_EQ(last_trap.error_code, 0, "pf_read_unmapped_error_code_0");
	CHECK_EQ(last_trap.eip, (u32)p_read_insn, "pf_read_unmapped_eip");
	CHECK_EQ(last_trap.cs & 0xFFFF, FLAT_KERNEL_CS, "pf_read_unmapped_cs");
	CHECK_EQ(last_trap_entry_esp, probe_esp - 20, "pf_frame_is_5_words");

	probe_addr = 0x10000000;
	v = trap_catch(p_write, 0);
	CHECK(v == 14 && last_trap.cr2 == 0x10000000, "pf_write_unmapped");
	CHECK_EQ(last_trap.error_code, 2, "pf_write_unmapped_error_code_2");

	probe_addr = si->pt_base + 8; /* page tables are mapped read-only */
	v = trap_catch(p_write, 0);
	CHECK(v == 14 && last_trap.cr2 == si->pt_base + 8, "pf_write_readonly_pagetable");
	CHECK_EQ(last_trap.error_code, 3, "pf_write_readonly_error_code_3");

	check_gp(p_hlt, p_hlt_insn, 0, "hlt");
	check_gp(p_lds, p_lds_insn, 0x0808, "load_ds_ring0_selector");

	checks_done();
}
