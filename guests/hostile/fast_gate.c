/*
 * The fast trap gate (test/hostile.test.ts 7b). set_fast_trap(0x80) makes Xen write a real
 * trap gate from the virtual IDT entry as it is then (semantics.md §4.10): int 0x80 goes to
 * the guest handler without Xen, and the CPU checks the gate's target. set_trap_table checks
 * only the selector's RPL and addresses not at all, and the descriptor behind the selector can
 * change afterwards. This guest points the gate into Xen's area, at an unmapped page, and at a
 * code segment of its LDT that it then makes a data segment and then not present: each int
 * 0x80 must fault as the CPU faults (#GP(0) at the int for an offset beyond the segment, #GP
 * or #NP with the selector), bounced to us, never run Xen's bytes or crash anyone else.
 */
#include "desc.h"
#include "hostile.h"

static u8 ldt_page[PAGE_SIZE] BSS_PAGE;

#define XEN_TEXT 0xFC500000u /* beyond the ring-1 segments' limit (0xFC3FFFFF) */
#define UNMAPPED 0xBFFFF000u
#define LDT_CS SEL_LDT(1, 1)

static volatile u32 int80_seen, int80_cs;

static int int80_hook(struct trap_frame *f)
{
	int80_seen++;
	int80_cs = f->cs & 0xFFFF; /* the interrupted CS */
	return 1;
}

/* The address of the int 0x80 below, for the faults reported at it. */
extern char int80_at[];
static void do_int80(void *unused)
{
	__asm__ __volatile__(".globl int80_at\nint80_at: int $0x80" ::: "memory");
}

static long ldt_desc(struct desc d)
{
	return HYPERVISOR_update_descriptor(virt_to_mach(ldt_page) + 8, d.lo, d.hi);
}

/* int 0x80 at ring 1: the vector caught (-1: the handler ran and returned). */
static int int80(void)
{
	return trap_catch(do_int80, 0);
}

void start_kernel(start_info_t *si)
{
	mmu_update_t u;
	hostile_init(si, "fast_gate");
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");
	trap_hooks[0x80] = int80_hook;

	/* An offset in Xen's area: the gate is written (Xen checks no address), the int faults. */
	CHECK_EQ(fast_trap_gate(FLAT_KERNEL_CS, XEN_TEXT), 0, "gate_into_xen_installed");
	CHECK_EQ(int80(), 13, "gate_into_xen_gp");
	CHECK_EQ(last_trap.error_code, 0, "gate_into_xen_gp_code_0");
	CHECK_EQ(last_trap.eip, (u32)int80_at, "gate_into_xen_gp_at_the_int");
	CHECK_EQ(run_user((u32)u_int80, USER_STACK_TOP, 0), 13, "gate_into_xen_from_ring3_gp");
	CHECK(last_trap.eip == (u32)u_int80 && (last_trap.cs & 3) == 3, "gate_into_xen_from_ring3_at_the_int");
	CHECK_EQ(int80_seen, 0, "gate_into_xen_handler_not_run");

	/* An unmapped handler page: the frame is pushed, the fetch there takes #PF. */
	CHECK_EQ(fast_trap_gate(FLAT_KERNEL_CS, UNMAPPED), 0, "gate_unmapped_installed");
	CHECK_EQ(int80(), 14, "gate_unmapped_pf");
	CHECK_EQ(last_trap.cr2, UNMAPPED, "gate_unmapped_pf_cr2");
	CHECK_EQ(last_trap.eip, UNMAPPED, "gate_unmapped_pf_eip");

	/* A code segment of our LDT: it works, then it is made a data segment, then not present. */
	memset(ldt_page, 0, sizeof(ldt_page));
	desc_put(ldt_page, 1, mkseg(0, 0xFBFFF, ACC_R1_CODE, FLG_G));
	CHECK_EQ(remap(ldt_page, 1), 0, "setup_ldt_page_readonly");
	u.ptr = (u32)ldt_page | MMU_EXTENDED_COMMAND;
	u.val = MMUEXT_SET_LDT | (16 << MMUEXT_CMD_SHIFT);
	CHECK_EQ(HYPERVISOR_mmu_update(&u, 1, 0), 0, "setup_set_ldt");
	CHECK_EQ(fast_trap_gate(LDT_CS, trap_stub(0x80)), 0, "gate_ldt_code_installed");
	CHECK_EQ(int80(), -1, "gate_ldt_code_runs");
	CHECK_EQ(int80_seen, 1, "gate_ldt_code_handler_ran");

	CHECK_EQ(ldt_desc(mkseg(0, 0xFBFFF, ACC_R1_DATA, FLG_G)), 0, "ldt_code_made_data");
	CHECK_EQ(int80(), 13, "gate_to_data_segment_gp");
	CHECK_EQ(last_trap.error_code, LDT_CS & ~3u, "gate_to_data_segment_gp_selector");
	CHECK_EQ(last_trap.eip, (u32)int80_at, "gate_to_data_segment_gp_at_the_int");
	CHECK_EQ(run_user((u32)u_int80, USER_STACK_TOP, 0), 13, "gate_to_data_segment_from_ring3_gp");
	CHECK(last_trap.error_code == (LDT_CS & ~3u) && last_trap.eip == (u32)u_int80,
	      "gate_to_data_segment_from_ring3_gp_selector_at_the_int");

	CHECK_EQ(ldt_desc(mkseg(0, 0xFBFFF, ACC_R1_CODE & ~0x80u, FLG_G)), 0, "ldt_code_made_not_present");
	CHECK_EQ(int80(), 11, "gate_to_absent_segment_np");
	CHECK_EQ(last_trap.error_code, LDT_CS & ~3u, "gate_to_absent_segment_np_selector");
	CHECK_EQ(int80_seen, 1, "absent_segment_handler_not_run");
	CHECK_EQ(run_user((u32)u_int80, USER_STACK_TOP, 0), 11, "gate_to_absent_segment_from_ring3_np");
	CHECK_EQ(int80_seen, 1, "absent_segment_from_ring3_handler_not_run");

	CHECK_EQ(ldt_desc(mkseg(0, 0xFBFFF, ACC_R1_CODE, FLG_G)), 0, "ldt_code_again");
	CHECK_EQ(int80(), -1, "gate_ldt_code_runs_again");
	CHECK_EQ(int80_seen, 2, "gate_ldt_code_handler_ran_again");
	checks_done();
}
