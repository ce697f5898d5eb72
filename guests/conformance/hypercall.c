/*
 * Conformance: hypercall dispatch (abi.md §1.1): number masking, unused slots,
 * register preservation, and int $0x82 from ring 3 (#GP 0x412 or a soft-int
 * bounce when the guest gave vector 0x82 DPL 3).
 */
#include "lib.h"

extern char user_int82[], user_int82_after[];
__asm__(".pushsection .user.text,\"ax\"\n"
	".globl user_int82, user_int82_after\n"
	"user_int82:\n"
	"	int $0x82\n"
	"user_int82_after:\n"
	"	ud2\n"
	".popsection\n");

static u8 trap_stack[8192] __attribute__((aligned(16)));
#define TRAP_STACK_TOP ((u32)trap_stack + sizeof(trap_stack))

static void set_fs_gs(u32 sel)
{
	__asm__ __volatile__("movl %0, %%fs\n\tmovl %0, %%gs" ::"r"(sel));
}

static void probe_preserved(u32 nr, u32 ebx, u32 expect_eax, const char *prefix)
{
	struct hc_regs in, before, after;
	char name[96];
	memset(&in, 0, sizeof(in));
	memset(&before, 0, sizeof(before));
	memset(&after, 0, sizeof(after));
	in.eax = nr;
	in.ebx = ebx;
	in.ecx = 0xC1C1C1C1;
	in.edx = 0xD2D2D2D2;
	in.esi = 0x51515151;
	in.edi = 0xD1D1D1D1;
	in.ebp = 0xB0B0B0B0;
	/* CF PF AF ZF SF DF OF set (IF stays as the CPU has it). */
	in.eflags = 0x0ED7 | 0x200;
	set_fs_gs(FLAT_USER_DS);
	hc_probe(&in, &before, &after);
	set_fs_gs(FLAT_KERNEL_DS);

snprintf(name, sizeof(name), "%s_eax_result", prefix);
	CHECK_EQ(after.eax, expect_eax, name);
	snprintf(name, sizeof(name), "%s_ebx_preserved", prefix);
	CHECK_EQ(after.ebx, in.ebx, name);
	snprintf(name, sizeof(name), "%s_ecx_preserved", prefix);
	CHECK_EQ(after.ecx, in.ecx, name);
	snprintf(name, sizeof(name), "%s_edx_preserved", prefix);
	CHECK_EQ(after.edx, in.edx, name);
	snprintf(name, sizeof(name), "%s_esi_preserved", prefix);
	CHECK_EQ(after.esi, in.esi, name);
	snprintf(name, sizeof(name), "%s_edi_preserved", prefix);
	CHECK_EQ(after.edi, in.edi, name);
	snprintf(name, sizeof(name), "%s_ebp_preserved", prefix);
	CHECK_EQ(after.ebp, in.ebp, name);
	snprintf(name, sizeof(name), "%s_esp_preserved", prefix);
	CHECK_EQ(after.esp, before.esp, name);
	snprintf(name, sizeof(name), "%s_eflags_preserved", prefix);
	CHECK_EQ(after.eflags, before.eflags, name);
	snprintf(name, sizeof(name), "%s_segments_preserved", prefix);
	CHECK((after.cs & 0xFFFF) == FLAT_KERNEL_CS && (after.ss & 0xFFFF) == FLAT_KERNEL_SS &&
		      (after.ds & 0xFFFF) == (before.ds & 0xFFFF) &&
		      (after.es & 0xFFFF) == (before.es & 0xFFFF) &&
		      (after.fs & 0xFFFF) == FLAT_USER_DS && (after.gs & 0xFFFF) == FLAT_USER_DS,
	      name);
}

void start_kernel(start_info_t *si)
{
	static mmu_update_t no_reqs[1];
	static u32 done;
	trap_info_t bad[2];
	int v;
	u32 nr;
	char name[64];

	conf_init(si, "hypercall");

	/* Unused slots. 25 is set_segment_base (x86_64 only). */
	for (nr = 25; nr <= 31; nr++) {
#ifdef XEN_ABI_JUL
		if (nr == 26) /* mmuext_op at JUL */
			continue;
#endif
		snprintf(name, sizeof(name), "nr_%u_enosys", nr);
		CHECK_EQ(hypercall5(nr, 0, 0, 0, 0, 0), -ENOSYS, name);
	}
	CHECK_EQ(hypercall5(0xFFFFFFFFu, 0, 0, 0, 0, 0), -ENOSYS, "nr_0xffffffff_masks_to_31_enosys");

	/* Masking with 31. */
	CHECK_EQ(hypercall1(49, 0), XEN_VERSION_VALUE, "nr_49_aliases_xen_version");
	CHECK_EQ(hypercall1(0x80000011u, 0), XEN_VERSION_VALUE, "nr_0x80000011_aliases_xen_version");
	memset(bad, 0, sizeof(bad));
	bad[0].vector = 0x47;
	bad[0].cs = XEN_RING0_CS; /* invalid: set_trap_table says -EPERM */
	bad[0].address = trap_stub(0x47);
	CHECK_EQ(hypercall1(32, bad), -EPERM, "nr_32_aliases_set_trap_table");
	done = 0xDEADBEEF;
#ifndef XEN_ABI_JUL /* MAR-specific: abi.md §5 */
	CHECK_EQ(hypercall3(33, no_reqs, 0, &done), 0, "nr_33_aliases_mmu_update");
#endif
#ifndef XEN_ABI_JUL /* JUL: ESI is mmu_update's foreigndom */
	CHECK_EQ(done, 0, "nr_33_mmu_update_wrote_done");
#endif
	(void)done;
	CHECK_EQ(HYPERVISOR_mmu_update(no_reqs, 0x10000, 0), -EINVAL,
		 "mmu_update_count_0x10000_einval");

	/* Registers other than EAX are preserved. */
	probe_preserved(__HYPERVISOR_xen_version, 0, XEN_VERSION_VALUE, "xen_version");
	probe_preserved(28, 0, (u32)-ENOSYS, "enosys");
	probe_preserved(__HYPERVISOR_sched_op, SCHEDOP_yield, 0, "yield");

	/* int $0x82 from ring 3. */
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");
	CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, TRAP_STACK_TOP), 0, "setup_stack_switch");

	v = run_user((u32)user_int82, USER_STACK_TOP, __HYPERVISOR_xen_version);
	CHECK_EQ(v, 13, "ring3_int82_gp");
	CHECK_EQ(last_trap.error_code, 0x412, "ring3_int82_gp_error_code_0x412");
	CHECK_EQ(last_trap.eip, (u32)user_int82, "ring3_int82_gp_eip_at_int");
	CHECK_EQ(last_trap.cs & 0xFFFF, FLAT_USER_CS, "ring3_int82_gp_cs");
	CHECK_EQ(last_trap.ss & 0xFFFF, FLAT_USER_SS, "ring3_int82_gp_ss");
	CHECK_EQ(last_trap.esp, USER_STACK_TOP, "ring3_int82_gp_esp");
	CHECK_EQ(last_trap.eax, __HYPERVISOR_xen_version, "ring3_int82_not_a_hypercall");
	CHECK_EQ(last_trap_entry_esp, TRAP_STACK_TOP - 24, "ring3_int82_gp_frame_on_kernel_stack");

	/* Guest vector 0x82 with DPL 3: bounced as a software interrupt, EIP past the int. */
	CHECK_EQ(trap_set(0x82, 3), 0, "set_vector_0x82_dpl3");
	CHECK_EQ(HYPERVISOR_xen_version(0), XEN_VERSION_VALUE, "ring1_int82_still_hypercall");
	v = run_user((u32)user_int82, USER_STACK_TOP, __HYPERVISOR_xen_version);
	CHECK_EQ(v, 0x82, "ring3_int82_dpl3_softint");
	CHECK_EQ(last_trap.eip, (u32)user_int82_after, "ring3_int82_dpl3_eip_after_int");
	CHECK_EQ(last_trap.eax, __HYPERVISOR_xen_version, "ring3_int82_dpl3_not_a_hypercall");
	CHECK_EQ(last_trap_entry_esp, TRAP_STACK_TOP - 20, "ring3_int82_dpl3_no_error_code");

	/* DPL 1 < CPL 3: #GP again. */
	CHECK_EQ(trap_set(0x82, 1), 0, "set_vector_0x82_dpl1");
	v = run_user((u32)user_int82, USER_STACK_TOP, __HYPERVISOR_xen_version);
	CHECK_EQ(v, 13, "ring3_int82_dpl1_gp");
	CHECK_EQ(last_trap.error_code, 0x412, "ring3_int82_dpl1_gp_error_code_0x412");

	checks_done();
}
