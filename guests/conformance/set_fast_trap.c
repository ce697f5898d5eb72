/*
 * Conformance: set_fast_trap (hypercall 11: EBX vector), semantics.md §4.10. Vector 0 turns
 * it off; otherwise only 0x80 or 0x20..0x2F, and only when the vector's virtual IDT entry
 * does not ask for events to be masked (a trap gate cannot). Refusals return -1.
 */
#include "desc.h"

static volatile u32 int80_from_cpl, int80_seen;

static int int80_hook(struct trap_frame *f)
{
	int80_seen++;
	int80_from_cpl = f->cs & 3;
	return 1;
}

static void do_int80(void *unused)
{
	__asm__ __volatile__("int $0x80" ::: "memory");
}

#ifdef XEN_ABI_JUL
/* July 2005 removed set_fast_trap: hypercall 11 is -ENOSYS whatever the vector. */
void start_kernel(start_info_t *si)
{
	(void)int80_hook;
	(void)do_int80;
	conf_init(si, "set_fast_trap");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0), -ENOSYS, "jul_vector_0_enosys");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x80), -ENOSYS, "jul_vector_0x80_enosys");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x20), -ENOSYS, "jul_vector_0x20_enosys");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x1F), -ENOSYS, "jul_vector_0x1f_enosys");
	CHECK_EQ(hypercall1(11 + 32, 0x80), -ENOSYS, "jul_nr_43_aliases_11_enosys");
	checks_done();
}
#else
void start_kernel(start_info_t *si)
{
	int v;

	conf_init(si, "set_fast_trap");
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");
	trap_hooks[0x80] = int80_hook;

	CHECK_EQ(HYPERVISOR_set_fast_trap(0), 0, "vector_0_disables_ok");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x1F), -1, "vector_0x1f_refused");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x30), -1, "vector_0x30_refused");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x81), -1, "vector_0x81_refused");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x82), -1, "vector_0x82_refused");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x180), -1, "vector_0x180_refused");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x20), 0, "vector_0x20_ok");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x2F), 0, "vector_0x2f_ok");

	CHECK_EQ(trap_set(0x80, 3 | TI_IF), 0, "setup_int80_masking_events");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x80), -1, "vector_with_events_masked_refused");

	CHECK_EQ(trap_set(0x80, 3), 0, "setup_int80_dpl3");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x80), 0, "vector_0x80_ok");
	v = trap_catch(do_int80, 0);
	CHECK_EQ(v, -1, "fast_trap_ring1_returns");
	CHECK_EQ(int80_seen, 1, "fast_trap_ring1_reaches_handler");
	v = run_user((u32)u_int80, USER_STACK_TOP, 0);
	CHECK_EQ(v, 3, "fast_trap_ring3_returns_to_ring3");
	CHECK_EQ(int80_seen, 2, "fast_trap_ring3_reaches_handler");
	CHECK_EQ(int80_from_cpl, 3, "fast_trap_ring3_frame_cs");

	/* set_trap_table does not update the installed gate (§4.9): ring 3 still gets through. */
	CHECK_EQ(trap_set(0x80, 0), 0, "setup_int80_dpl0_table_only");
	v = run_user((u32)u_int80, USER_STACK_TOP, 0);
	CHECK_EQ(v, 3, "installed_gate_kept_after_set_trap_table");
	CHECK_EQ(int80_seen, 3, "installed_gate_reaches_handler");

	/* With DPL 0, ring 3 may not raise it: #GP (vector << 3 | 2). */
	CHECK_EQ(trap_set(0x80, 0), 0, "setup_int80_dpl0");
	CHECK_EQ(HYPERVISOR_set_fast_trap(0x80), 0, "vector_0x80_dpl0_ok");
	v = run_user((u32)u_int80, USER_STACK_TOP, 0);
	CHECK_EQ(v, 13, "fast_trap_dpl0_from_ring3_gp");
	CHECK_EQ(last_trap.error_code, (0x80 << 3) | 2, "fast_trap_dpl0_from_ring3_gp_code");
	CHECK_EQ(int80_seen, 3, "fast_trap_dpl0_handler_not_run");

	CHECK_EQ(HYPERVISOR_set_fast_trap(0), 0, "disable_ok");
	CHECK_EQ(trap_set(0x80, 3), 0, "setup_int80_dpl3_again");
	v = trap_catch(do_int80, 0);
	CHECK(v == -1 && int80_seen == 4, "int80_after_disable_through_xen");
	checks_done();
}
#endif
