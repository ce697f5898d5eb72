/*
 * Bounce frames aimed at page tables: Xen writes a trap's frame (EIP, CS, EFLAGS and, from
 * ring 3, ESP and SS: values the guest chooses) on the guest's kernel stack. With that stack
 * inside a page table the guest maps read-only, the frame would become page-table entries
 * nobody checked. Xen must write the frame with the guest's rights, fail, and crash the
 * domain instead. By mode=<n>, the kernel stack (stack_switch, ESP unchecked) or the current
 * ring-1 stack lies in:
 *   1 our L2 (ring-3 trap; the pushed ESP is a superpage PDE over the victim's memory)
 *   2 our L2 (ring-1 int3 with ESP there)
 *   3 our self-mapping kernel L1, with the writable-page-table assist on (ring-3 trap; the
 *     pushed ESP is a PTE of the victim's frame)
 *   4 Xen's space above the M2P
 * Modes 5-7 are 1, 3 and 4 reached by the fast trap (set_fast_trap(0x80)): under real Xen the
 * hardware itself writes that frame through the gate, on the same stack. A ring-3 loop first
 * makes thousands of int 0x80 round trips on a good kernel stack (so the path is hot and, in
 * wasm, compiled); then the stack is turned and the same loop runs once more: its first int
 * 0x80 must crash us, the frame nowhere.
 * Modes 8-10 are the same three stacks under a warm ring-3 loop of page faults (a read of an
 * unmapped page, skipped by our handler): the bounce of a plain #PF, which Xen only propagates.
 * Modes 11-12 (fast trap) and 13-14 (#PF) turn the kernel stack to an unmapped page and to a
 * data page of ours remapped read-only; 15 (fast trap) and 16 (#PF) to our own L2 seen through
 * Xen's linear page tables, a supervisor page ring 1 could write but for SS's limit (the frame
 * would land in L2 slot SLOT as in mode 1, only by the segment's check kept out).
 * The test checks the L2 slots the frame would have hit are still empty.
 */
#include "desc.h"
#include "hostile.h"

#define SLOT 0x104u
#define WARM_PASSES 5000u
#define LINEAR_L2 0xFEFFB000u /* our L2 through Xen's linear page tables (slot 0x3FB) */

/* Ring 3: EAX passes of int 0x80, then int3 (vector 3 brings run_user back). */
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl u_int80_loop\n"
	"u_int80_loop:\n"
	"1:	int $0x80\n"
	"	decl %eax\n"
	"	jnz 1b\n"
	"	int3\n"
	".popsection\n");
extern char u_int80_loop[];

/* Ring 3: EAX passes of a read of an unmapped page (6 bytes, skipped by pf_hook), then int3. */
#define UNMAPPED 0xBFFFF000u
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl u_pf_loop, u_pf_at\n"
	"u_pf_loop:\n"
	"u_pf_at:	movl 0xBFFFF000, %ebx\n"
	"	decl %eax\n"
	"	jnz u_pf_loop\n"
	"	int3\n"
	".popsection\n");
extern char u_pf_loop[], u_pf_at[];

static volatile u32 int80_seen;

static int int80_hook(struct trap_frame *f)
{
	(void)f;
	int80_seen++;
	return 1;
}

static volatile u32 pf_seen;

static int pf_hook(struct trap_frame *f)
{
	if (f->eip != (u32)u_pf_at || f->cr2 != UNMAPPED || (f->cs & 3) != 3)
		return 0;
	pf_seen++;
	f->eip += 6;
	return 1;
}

/* WARM_PASSES ring-3 page faults bounced to us and skipped, on a good stack. */
static void warm_page_faults(void)
{
	trap_hooks[14] = pf_hook;
	CHECK_EQ(run_user((u32)u_pf_loop, USER_STACK_TOP, WARM_PASSES), 3, "warm_pf_loop_back_at_int3");
	CHECK_EQ(pf_seen, WARM_PASSES, "warm_pf_loop_passes");
}

/* The fast trap installed, then WARM_PASSES ring-3 round trips through it on a good stack. */
static void warm_fast_trap(void)
{
	trap_hooks[0x80] = int80_hook;
	CHECK_EQ(trap_set(0x80, 3) | HYPERVISOR_set_fast_trap(0x80), 0, "fast_trap_installed");
	CHECK_EQ(run_user((u32)u_int80_loop, USER_STACK_TOP, WARM_PASSES), 3, "warm_loop_back_at_int3");
	CHECK_EQ(int80_seen, WARM_PASSES, "warm_loop_passes");
}

static u8 ro_stack[PAGE_SIZE] BSS_PAGE;

/*
 * The kernel stack turned as modes 1, 3 and 4 turn it (kind 1: our L2, 2: our self-mapping L1
 * under the assist, 3: Xen's space; 4: an unmapped page, 5: a page of ours made read-only,
 * 6: our L2 through the linear page tables),
 * then `loop` runs from ring 3: its first trap must crash us.
 */
static void turn_stack_then_run(u32 kind, u32 loop, start_info_t *si, u32 vmfn)
{
	u32 esp = si->pt_base + (SLOT + 2) * 4, user_esp = ((vmfn & ~1023u) << PAGE_SHIFT) | 0xE7;
	if (kind == 1) {
		CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, esp), 0, "kernel_stack_in_l2");
	} else if (kind == 2) {
		CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables), 0,
			 "assist_on");
		esp = si->pt_base + PAGE_SIZE + 0x800;
		CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, esp), 0, "kernel_stack_in_l1");
		user_esp = (vmfn << PAGE_SHIFT) | 0x67;
	} else if (kind == 3) {
		CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, 0xFC800000u), 0, "kernel_stack_in_xen");
	} else if (kind == 6) {
		esp = LINEAR_L2 + (SLOT + 2) * 4;
		CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, esp), 0, "kernel_stack_in_linear_l2");
	} else if (kind == 4) {
		CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, UNMAPPED + 0x800), 0, "kernel_stack_unmapped");
	} else {
		ro_stack[0] = 1;
		CHECK_EQ(remap(ro_stack, 1), 0, "stack_page_read_only");
		CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, (u32)ro_stack + 0x800), 0, "kernel_stack_read_only");
	}
	expect_crash("fault while writing a bounce frame");
	run_user(loop, user_esp, WARM_PASSES);
}

void start_kernel(start_info_t *si)
{
	u32 mode, vmfn, esp, user_esp;
	hostile_init(si, "bounce");
	mode = cmdline_u32(si, "mode", 0);
	vmfn = cmdline_u32(si, "vmfn", 0);
	CHECK_EQ(user_pages_init(), 0, "user_pages");
	CHECK_EQ(cur_l2()[SLOT], 0, "slot_empty");
	/* The frame from ring 3 is SS, ESP, EFLAGS, CS, EIP from the top down: ESP lands at
	 * kernel ESP - 8, i.e. at L2 slot SLOT when the kernel stack ends at slot SLOT + 2. */
	esp = si->pt_base + (SLOT + 2) * 4;
	user_esp = ((vmfn & ~1023u) << PAGE_SHIFT) | 0xE7;
	switch (mode) {
	case 1:
		CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, esp), 0, "kernel_stack_in_l2");
		expect_crash("fault while writing a bounce frame");
		run_user((u32)u_load_eax_ds, user_esp, FLAT_USER_DS);
		break;
	case 2:
		expect_crash("fault while writing a bounce frame");
		__asm__ __volatile__("movl %%esp, %%ebx\n\tmovl %0, %%esp\n\tint3\n\tmovl %%ebx, %%esp" ::"r"(esp)
				     : "ebx", "memory");
		break;
	case 3: {
		u32 kl1 = si->pt_base + PAGE_SIZE;
		CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables), 0,
			 "assist_on");
		CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, kl1 + 0x800), 0, "kernel_stack_in_l1");
		expect_crash("fault while writing a bounce frame");
		run_user((u32)u_load_eax_ds, (vmfn << PAGE_SHIFT) | 0x67, FLAT_USER_DS);
		break;
	}
	case 4:
		CHECK_EQ(HYPERVISOR_stack_switch(FLAT_KERNEL_SS, 0xFC800000u), 0, "kernel_stack_in_xen");
		expect_crash("fault while writing a bounce frame");
		run_user((u32)u_load_eax_ds, user_esp, FLAT_USER_DS);
		break;
	case 5:
	case 6:
	case 7:
		warm_fast_trap();
		turn_stack_then_run(mode - 4, (u32)u_int80_loop, si, vmfn);
		break;
	case 8:
	case 9:
	case 10:
		warm_page_faults();
		turn_stack_then_run(mode - 7, (u32)u_pf_loop, si, vmfn);
		break;
	case 11:
	case 12:
		warm_fast_trap();
		turn_stack_then_run(mode - 7, (u32)u_int80_loop, si, vmfn);
		break;
	case 13:
	case 14:
		warm_page_faults();
		turn_stack_then_run(mode - 9, (u32)u_pf_loop, si, vmfn);
		break;
	case 15:
		warm_fast_trap();
		turn_stack_then_run(6, (u32)u_int80_loop, si, vmfn);
		break;
	case 16:
		warm_page_faults();
		turn_stack_then_run(6, (u32)u_pf_loop, si, vmfn);
		break;
	default:
		check_fail("mode", "unknown mode %u", mode);
	}
	CHECK_EQ(cur_l2()[SLOT], 0, "slot_still_empty");
	checks_done();
}
