/*
 * Conformance: stack_switch (hypercall 3, abi.md §1.3, §2.2.3, §4.5): the ring-1
 * stack Xen uses for bounces that interrupt ring 3.
 */
#include "lib.h"

extern char user_ud2[];
__asm__(".pushsection .user.text,\"ax\"\n"
	".globl user_ud2\n"
	"user_ud2:\n"
	"	ud2\n"
	".popsection\n");

static u8 stack_a[8192] __attribute__((aligned(16)));
static u8 stack_b[8192] __attribute__((aligned(16)));
#define TOP_A ((u32)stack_a + sizeof(stack_a))
#define TOP_B ((u32)stack_b + sizeof(stack_b))

static void user_trap(u32 expect_frame_top, const char *name)
{
	char n[80];
	int v = run_user((u32)user_ud2, USER_STACK_TOP, 0);
	snprintf(n, sizeof(n), "%s_ud_from_ring3", name);
	CHECK_EQ(v, 6, n);
	snprintf(n, sizeof(n), "%s_frame_location", name);
	CHECK_EQ(last_trap_entry_esp, expect_frame_top - 20, n);
	snprintf(n, sizeof(n), "%s_frame_ss_esp", name);
	CHECK((last_trap.ss & 0xFFFF) == FLAT_USER_SS && last_trap.esp == USER_STACK_TOP, n);
	snprintf(n, sizeof(n), "%s_frame_cs_eip", name);
	CHECK((last_trap.cs & 0xFFFF) == FLAT_USER_CS && last_trap.eip == (u32)user_ud2, n);
}

void start_kernel(start_info_t *si)
{
	conf_init(si, "stack_switch");
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");

	/* Initial kernel_ss:kernel_esp = 0x0821 : start_info + 8 KB (abi.md §4.5). */
#ifdef XEN_ABI_JUL
	user_trap((u32)si + 3 * 4096, "initial"); /* JUL: start_info + 3 pages (abi.md §4.5) */
#else
	user_trap((u32)si + 8192, "initial");
#endif

	CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, TOP_A), 0, "switch_to_a");
	user_trap(TOP_A, "stack_a");

	CHECK_EQ(HYPERVISOR_stack_switch(0x0820, TOP_B), -EPERM, "ss_rpl0_eperm");
	CHECK_EQ(HYPERVISOR_stack_switch(0x0822, TOP_B), -EPERM, "ss_rpl2_eperm");
	CHECK_EQ(HYPERVISOR_stack_switch(FLAT_USER_SS, TOP_B), -EPERM, "ss_rpl3_eperm");
	user_trap(TOP_A, "after_eperm_still_a");

	/* Only the RPL is checked, and ESP not at all. */
	CHECK_EQ(HYPERVISOR_stack_switch((1 << 3) | 1, TOP_B), 0, "any_rpl1_selector_ok");
	CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, 0xFFFFFFF0u), 0, "esp_not_validated");

	CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, TOP_B), 0, "switch_to_b");
	user_trap(TOP_B, "stack_b");

	/* Switching back takes effect again. */
	CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, TOP_A), 0, "switch_back_to_a");
	user_trap(TOP_A, "stack_a_again");

	checks_done();
}
