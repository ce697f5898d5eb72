/*
 * Conformance: vm_assist (hypercall 21), abi.md §2.13.5, semantics.md §9.3, and the 4 GiB
 * segment fix-up it enables (VMASST_TYPE_4gb_segments, _notify: semantics.md §3.5). A 4 GiB
 * ring-3 data segment is truncated by Xen to end at 0xFC400000; a ring-3 access through it at
 * a "negative" offset (beyond the limit) faults with #GP(0) unless the assist is on, when Xen
 * flips the segment to expand-down in our LDT and restarts the instruction (and, with _notify,
 * first bounces vector 15 with the instruction length as error code).
 */
#include "desc.h"

#define VMASST_CMD_enable 0
#define VMASST_CMD_disable 1
#define VMASST_TYPE_4gb_segments 0
#define VMASST_TYPE_4gb_segments_notify 1
#define VMASST_TYPE_writable_pagetables 2

#define SEG_EC (1u << 10)
#define MAGIC_NEG 0x4A5B0001u
#define MAGIC_POS 0x4A5B0002u
/* 64 8b 4b fc = movl %fs:-4(%ebx),%ecx: prefix, opcode, ModRM, disp8. */
#define NEG_INSN_LEN 4

static u8 ldt_page[4096] BSS_PAGE;
static u8 udata[4096] __attribute__((section(".user.data"), aligned(4096)));

/* Ring 3: FS := EAX; ECX := FS:[EBX-4] (offset 0xFFFFFFFC) or FS:[EBX]; int3 back. */
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl u_fs_neg, u_fs_neg_insn, u_fs_pos\n"
	"u_fs_neg:\n"
	"	movl %eax, %fs\n"
	"u_fs_neg_insn:\n"
	"	movl %fs:-4(%ebx), %ecx\n"
	"	int3\n"
	"u_fs_pos:\n"
	"	movl %eax, %fs\n"
	"	movl %fs:(%ebx), %ecx\n"
	"	int3\n"
	".popsection\n");
extern char u_fs_neg[], u_fs_neg_insn[], u_fs_pos[];

/* Vector 15 (the _notify bounce, with an error code): record it and return to restart. */
volatile u32 v15_count, v15_error, v15_eip;
__asm__(".pushsection .text\n"
	".globl v15_handler\n"
	"v15_handler:\n"
	"	popl v15_error\n"
	"	pushl %eax\n"
	"	movl 4(%esp), %eax\n"
	"	movl %eax, v15_eip\n"
	"	popl %eax\n"
	"	incl v15_count\n"
	"	iret\n"
	".popsection\n");
extern char v15_handler[];

#define SEL SEL_LDT(1, 3)

static u32 ldt_ec(void)
{
	return desc_get(ldt_page, 1).hi & SEG_EC;
}

static void bitmap_checks(void)
{
	u32 t;
	for (t = 0; t <= 2; t++) {
		char n[48];
		snprintf(n, sizeof(n), "enable_type%u_ok", (unsigned)t);
		CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, t), 0, n);
		snprintf(n, sizeof(n), "disable_type%u_ok", (unsigned)t);
		CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_disable, t), 0, n);
	}
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, 3), -EINVAL, "type3_einval");
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_disable, 0xFFFFFFFF), -EINVAL, "type_huge_einval");
	CHECK_EQ(HYPERVISOR_vm_assist(2, 0), -ENOSYS, "cmd2_enosys");
	CHECK_EQ(HYPERVISOR_vm_assist(2, 3), -EINVAL, "type_checked_before_cmd");
}

void start_kernel(start_info_t *si)
{
	trap_info_t ti[2];
	struct desc d;
	u32 field;
	int v;

	conf_init(si, "vm_assist");
	bitmap_checks();

	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");
	((volatile u32 *)udata)[1] = MAGIC_NEG; /* at base - 4 */
	((volatile u32 *)udata)[2] = MAGIC_POS; /* at base */

	/* A 4 GiB ring-3 data segment based at udata + 8, in a one-page LDT. */
	memset(ldt_page, 0, sizeof(ldt_page));
	desc_put(ldt_page, 1, mkseg((u32)udata + 8, 0xFFFFF, ACC_R3_DATA, FLG_G));
	CHECK_EQ(remap(ldt_page, 1), 0, "setup_ldt_readonly");
	CHECK_EQ(set_ldt((u32)ldt_page, 16), 0, "setup_set_ldt");
	d = desc_get(ldt_page, 1);
	field = desc_limit_field(d);
	CHECK_EQ(field, ((0xFC400000u - ((u32)udata + 8)) >> 12) - 1, "segment_truncated_at_fc400000");

	memset(ti, 0, sizeof(ti));
	ti[0].vector = 15;
	ti[0].flags = 0;
	ti[0].cs = FLAT_KERNEL_CS;
	ti[0].address = (u32)v15_handler;
	CHECK_EQ(HYPERVISOR_set_trap_table(ti), 0, "setup_vector15");

	/* Assist off: the access beyond the truncated limit is a #GP(0) at the instruction. */
	/* QEMU blind spot: TCG does not enforce segment limits, so no #GP and no fix-up there
	 * (docs/realxen-table.md). */
	v = run_user((u32)u_fs_neg, USER_STACK_TOP, SEL);
	CHECK_EQ(v, 13, "off_negative_offset_gp");
	CHECK_EQ(last_trap.error_code, 0, "off_gp_error_0");
	CHECK_EQ(last_trap.eip, (u32)u_fs_neg_insn, "off_gp_eip_at_insn");
	CHECK_EQ(ldt_ec(), 0, "off_segment_unchanged");

	/* Assist on: the segment is flipped to expand-down and the access restarted. */
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_4gb_segments), 0, "enable_4gb");
	v = run_user((u32)u_fs_neg, USER_STACK_TOP, SEL);
	CHECK_EQ(v, 3, "on_negative_offset_succeeds");
	CHECK_EQ(last_trap.ecx, MAGIC_NEG, "on_negative_offset_reads_base_minus_4");
	CHECK_EQ(v15_count, 0, "on_no_notify_without_notify_assist");
	d = desc_get(ldt_page, 1);
	CHECK(d.hi & SEG_EC, "on_segment_flipped_expand_down");
	CHECK_EQ(desc_limit_field(d), ((0u - ((u32)udata & ~0xFFFu)) >> 12) - 1,
		 "on_expand_down_limit");

	/* A positive offset through the expand-down segment flips it back. */
	v = run_user((u32)u_fs_pos, USER_STACK_TOP, SEL);
	CHECK_EQ(v, 3, "on_positive_offset_succeeds");
	CHECK_EQ(last_trap.ecx, MAGIC_POS, "on_positive_offset_reads_base");
	d = desc_get(ldt_page, 1);
	CHECK_EQ(d.hi & SEG_EC, 0, "on_segment_flipped_back_expand_up");
	CHECK_EQ(desc_limit_field(d), field, "on_expand_up_limit_restored");

	/* _notify: vector 15 is bounced with the instruction length, then the restart. */
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_4gb_segments_notify), 0,
		 "enable_notify");
	v = run_user((u32)u_fs_neg, USER_STACK_TOP, SEL);
	CHECK_EQ(v, 3, "notify_negative_offset_succeeds");
	CHECK_EQ(last_trap.ecx, MAGIC_NEG, "notify_reads_base_minus_4");
	CHECK_EQ(v15_count, 1, "notify_vector15_once");
	CHECK_EQ(v15_error, NEG_INSN_LEN, "notify_error_code_insn_length");
	CHECK_EQ(v15_eip, (u32)u_fs_neg_insn, "notify_eip_at_insn");

	/* Off again: the (now expand-down) segment's positive offset faults. */
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_disable, VMASST_TYPE_4gb_segments_notify), 0,
		 "disable_notify");
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_disable, VMASST_TYPE_4gb_segments), 0,
		 "disable_4gb");
	v = run_user((u32)u_fs_pos, USER_STACK_TOP, SEL);
	CHECK_EQ(v, 13, "off_again_positive_offset_gp");
	CHECK_EQ(v15_count, 1, "off_again_no_notify");

	checks_done();
}
