/*
 * Conformance: privileged instructions emulated on #GP(0) (semantics.md §4.5, §4.8,
 * abi.md §2.2.2): port I/O under the virtual IOPL and the guest I/O bitmap, cli/sti,
 * and the ring-1-only clts, wbinvd, mov to/from CR0/CR2/CR3, rdmsr, wrmsr.
 * Whatever is not emulated is reflected as #GP with error code 0 at the instruction.
 */
#include "probe.h"

#define PHYSDEVOP_SET_IOPL 6
#define PHYSDEVOP_SET_IOBITMAP 7
#define CR0_TS 8
#define MSR_TSC 0x10

static volatile u32 out0, out1, out2, out3;
static u8 io_buf[64] __attribute__((aligned(16)));

/* A probe that may clobber the callee-saved registers: saved around it (on a trap,
 * trap_catch's longjmp restores them). */
#define SAVED "pushl %ebx\n pushl %esi\n pushl %edi\n pushl %ebp\n"
#define RESTORE "\n popl %ebp\n popl %edi\n popl %esi\n popl %ebx"
#define PROBE_S(name, setup, insn) PROBE(name, SAVED setup, insn RESTORE)

/* ---- probes run at ring 1 ---- */
PROBE_S(p_inb_imm, "movl $0x12345678, %eax", "inb $0x80, %al\n movl %eax, out0");
PROBE_S(p_inw_imm, "movl $0x12345678, %eax", "inw $0x80, %ax\n movl %eax, out0");
PROBE_S(p_inl_imm, "movl $0x12345678, %eax", "inl $0x80, %eax\n movl %eax, out0");
PROBE_S(p_inb_dx, "movl $0x12345678, %eax\n movl $0x3f8, %edx", "inb %dx, %al\n movl %eax, out0");
PROBE_S(p_inw_dx, "movl $0x12345678, %eax\n movl $0x3f8, %edx", "inw %dx, %ax\n movl %eax, out0");
PROBE_S(p_inl_dx, "movl $0x12345678, %eax\n movl $0x3f8, %edx", "inl %dx, %eax\n movl %eax, out0");
PROBE_S(p_outb_imm, "movl $0x41, %eax", "outb %al, $0x80");
PROBE_S(p_outl_imm, "movl $0x41, %eax", "outl %eax, $0x80");
PROBE_S(p_outb_dx, "movl $0x41, %eax\n movl $0x3f8, %edx", "outb %al, %dx");
PROBE_S(p_outw_dx, "movl $0x41, %eax\n movl $0x3f8, %edx", "outw %ax, %dx");
PROBE_S(p_outl_dx, "movl $0x41, %eax\n movl $0x3f8, %edx", "outl %eax, %dx");
PROBE_S(p_in_port81, "movl $0, %eax", "inb $0x81, %al\n movl %eax, out0");
PROBE_S(p_in_port87w, "movl $0, %eax\n movl $0x87, %edx", "inw %dx, %ax\n movl %eax, out0");
PROBE_S(p_in_port3fe, "movl $0, %eax\n movl $0x3fe, %edx", "inw %dx, %ax\n movl %eax, out0");
PROBE_S(p_in_port3fd, "movl $0, %eax\n movl $0x3fd, %edx", "inw %dx, %ax\n movl %eax, out0");
/* Seven prefixes are accepted; an eighth fills Xen's prefix window and the access fails. */
PROBE_S(p_in_7pfx, "movl $0, %eax",
      ".byte 0x3e,0x3e,0x3e,0x3e,0x3e,0x3e,0x3e, 0xe4, 0x80\n movl %eax, out0");
PROBE_S(p_in_8pfx, "movl $0, %eax",
      ".byte 0x3e,0x3e,0x3e,0x3e,0x3e,0x3e,0x3e,0x3e, 0xe4, 0x80\n movl %eax, out0");
PROBE_S(p_in_66_66, "movl $0x12345678, %eax", ".byte 0x66, 0x66, 0xe5, 0x80\n movl %eax, out0");
PROBE_S(p_insb, "movl $io_buf, %edi\n movl $0x80, %edx", "insb\n movl %edi, out0");
PROBE_S(p_insl, "movl $io_buf, %edi\n movl $0x80, %edx", "insl\n movl %edi, out0");
PROBE_S(p_outsb, "movl $io_buf, %esi\n movl $0x80, %edx", "outsb\n movl %esi, out0");
PROBE_S(p_outsl, "movl $io_buf, %esi\n movl $0x80, %edx", "outsl\n movl %esi, out0");
PROBE_S(p_rep_insw, "movl $io_buf, %edi\n movl $0x80, %edx\n movl $3, %ecx",
      "rep insw\n movl %edi, out0\n movl %ecx, out1");
PROBE_S(p_rep_insb_std, "movl $io_buf+9, %edi\n movl $0x80, %edx\n movl $4, %ecx\n std",
      "rep insb\n cld\n movl %edi, out0\n movl %ecx, out1");
PROBE_S(p_rep_outsl, "movl $io_buf, %esi\n movl $0x80, %edx\n movl $5, %ecx",
      "rep outsl\n movl %esi, out0\n movl %ecx, out1");
PROBE_S(p_rep_insb_ecx0, "movl $io_buf, %edi\n movl $0x80, %edx\n xorl %ecx, %ecx",
      "rep insb\n movl %edi, out0\n movl %ecx, out1");
PROBE_S(p_insb_to, "movl probe_addr, %edi\n movl $0x80, %edx", "insb");
PROBE_S(p_outsb_from, "movl probe_addr, %esi\n movl $0x80, %edx", "outsb");
PROBE_S(p_cli, "", "cli\n pushfl\n popl out0");
PROBE_S(p_sti, "", "sti\n pushfl\n popl out0");
PROBE_S(p_clts, "", "clts");
PROBE_S(p_wbinvd, "", "wbinvd");
PROBE_S(p_invd, "", "invd");
PROBE_S(p_rd_cr0, "movl $0x5a5a5a5a, %eax", "movl %cr0, %eax\n movl %eax, out0");
PROBE_S(p_rd_cr0_ebx, "movl $0x5a5a5a5a, %ebx", "movl %cr0, %ebx\n movl %ebx, out0");
PROBE_S(p_rd_cr2, "", "movl %cr2, %ecx\n movl %ecx, out0");
PROBE_S(p_rd_cr3, "", "movl %cr3, %edi\n movl %edi, out0");
PROBE_S(p_rd_cr4, "", "movl %cr4, %eax");
PROBE_S(p_rd_cr0_mem, "", ".byte 0x0f, 0x20, 0x00");
PROBE_S(p_wr_cr0, "movl out0, %eax", "movl %eax, %cr0");
PROBE_S(p_wr_cr2, "movl out0, %edx", "movl %edx, %cr2");
PROBE_S(p_wr_cr3, "movl out0, %esi", "movl %esi, %cr3");
PROBE_S(p_wr_cr4, "xorl %eax, %eax", "movl %eax, %cr4");
PROBE_S(p_wr_cr0_mem, "", ".byte 0x0f, 0x22, 0x00");
PROBE_S(p_rdmsr, "movl out0, %ecx\n movl $0x11111111, %eax\n movl $0x22222222, %edx",
      "rdmsr\n movl %eax, out1\n movl %edx, out2");
PROBE_S(p_wrmsr, "movl out0, %ecx\n movl $0x11111111, %eax\n movl $0x22222222, %edx", "wrmsr");
PROBE_S(p_hlt, "", "hlt");
PROBE_S(p_lgdt, "", "lgdt probe_addr");
PROBE_S(p_rd_dr7, "", "movl %dr7, %eax");
PROBE_S(p_jmp_far, "movl probe_addr, %eax", "jmp *%eax");
PROBE_S(p_read_unmapped, "movl $0x10000000, %eax", "movl (%eax), %eax");

/* ---- code run at ring 3 (each ends with ud2, so run_user returns vector 6 on success) ---- */
extern char u_inb[], u_outb[], u_cli[], u_sti[], u_clts[], u_rd_cr0[], u_rdmsr[], u_wbinvd[],
	u_hlt[], u_insb[];
__asm__(".pushsection .user.text,\"ax\"\n"
	".globl u_inb, u_outb, u_cli, u_sti, u_clts, u_rd_cr0, u_rdmsr, u_wbinvd, u_hlt, u_insb\n"
	"u_inb: movl $0x12345678, %eax\n inb $0x80, %al\n ud2\n"
	"u_outb: outb %al, $0x80\n ud2\n"
	"u_cli: cli\n ud2\n"
	"u_sti: sti\n ud2\n"
	"u_clts: clts\n ud2\n"
	"u_rd_cr0: movl %cr0, %eax\n ud2\n"
	"u_rdmsr: movl $0x10, %ecx\n rdmsr\n ud2\n"
	"u_wbinvd: wbinvd\n ud2\n"
	"u_hlt: hlt\n ud2\n"
	"u_insb: movl %esp, %edi\n subl $64, %edi\n movl $0x80, %edx\n insb\n ud2\n"
	".popsection\n");

static u8 iobitmap[0x400 / 8 + 2];

static void expect_gp(void (*probe)(void *), const char *insn, const char *name)
{
	char n[96];
	int v = trap_catch(probe, 0);
	snprintf(n, sizeof(n), "%s_gp", name);
	CHECK_EQ(v, 13, n);
	snprintf(n, sizeof(n), "%s_gp_error_0", name);
	CHECK_EQ(last_trap.error_code, 0, n);
	snprintf(n, sizeof(n), "%s_gp_eip_at_insn", name);
	CHECK_EQ(last_trap.eip, (u32)insn, n);
}

static void expect_ok(void (*probe)(void *), const char *name)
{
	char n[96];
	int v = trap_catch(probe, 0);
	snprintf(n, sizeof(n), "%s_emulated", name);
	if (v == -1)
		check_pass(n);
	else
		check_fail(n, "trap %d at eip=%08x err=%x", v, last_trap.eip, last_trap.error_code);
}

static void expect_user(const char *start, int want, const char *name)
{
	char n[96];
	int v = run_user((u32)start, USER_STACK_TOP, 0);
	snprintf(n, sizeof(n), "%s_ring3_vector", name);
	CHECK_EQ(v, want, n);
	if (want == 13) {
		snprintf(n, sizeof(n), "%s_ring3_gp_error_0", name);
		CHECK_EQ(last_trap.error_code, 0, n);
		snprintf(n, sizeof(n), "%s_ring3_gp_eip_at_insn", name);
		CHECK((last_trap.cs & 3) == 3 && last_trap.eip >= (u32)start &&
			      last_trap.eip < (u32)start + 16,
		      n);
	}
}

/* physdev_op_t: the union is word 2 (MAR, after a pad) or word 1 (JUL). */
#ifdef XEN_ABI_JUL
#define PD_U 1
#define PD_IOBMP_PORTS (PD_U + 1)
#else
#define PD_U 2
#define PD_IOBMP_PORTS (PD_U + 2)
#endif

static long physdev_set_iopl(u32 iopl)
{
	u32 op[10];
	memset(op, 0, sizeof(op));
	op[0] = PHYSDEVOP_SET_IOPL;
	op[PD_U] = iopl;
	return HYPERVISOR_physdev_op(op);
}

static long physdev_set_iobitmap(const void *bitmap, u32 nr_ports)
{
	u32 op[10];
	memset(op, 0, sizeof(op));
	op[0] = PHYSDEVOP_SET_IOBITMAP;
	op[PD_U] = (u32)bitmap;
	op[PD_IOBMP_PORTS] = nr_ports;
	return HYPERVISOR_physdev_op(op);
}

/* Every port instruction from ring 1 with the given outcome (#GP, or emulated as denied-by-admin). */
static void all_port_insns_denied(const char *pfx)
{
	char n[64];
#define DENY(p, tag)                                          \
	do {                                                  \
		snprintf(n, sizeof(n), "%s_%s", pfx, tag);    \
		expect_gp(p, p##_insn, n);                    \
	} while (0)
	DENY(p_inb_imm, "inb_imm");
	DENY(p_inw_imm, "inw_imm");
	DENY(p_inl_imm, "inl_imm");
	DENY(p_inb_dx, "inb_dx");
	DENY(p_inw_dx, "inw_dx");
	DENY(p_inl_dx, "inl_dx");
	DENY(p_outb_imm, "outb_imm");
	DENY(p_outl_imm, "outl_imm");
	DENY(p_outb_dx, "outb_dx");
	DENY(p_outw_dx, "outw_dx");
	DENY(p_outl_dx, "outl_dx");
	DENY(p_insb, "insb");
	DENY(p_insl, "insl");
	DENY(p_outsb, "outsb");
	DENY(p_outsl, "outsl");
	DENY(p_rep_insw, "rep_insw");
	DENY(p_rep_outsl, "rep_outsl");
	DENY(p_cli, "cli");
	DENY(p_sti, "sti");
#undef DENY
}

/* With port I/O allowed by the guest check: admin-denied reads give all ones, writes vanish. */
static void port_io_allowed(void)
{
	u32 i;
	int ok;

	expect_ok(p_inb_imm, "iopl1_inb_imm");
	CHECK_EQ(out0, 0x123456ff, "iopl1_inb_reads_ff_keeps_upper_eax");
	expect_ok(p_inw_imm, "iopl1_inw_imm");
	CHECK_EQ(out0, 0x1234ffff, "iopl1_inw_reads_ffff_keeps_upper_eax");
	expect_ok(p_inl_imm, "iopl1_inl_imm");
	CHECK_EQ(out0, 0xffffffff, "iopl1_inl_reads_all_ones");
	expect_ok(p_inb_dx, "iopl1_inb_dx");
	CHECK_EQ(out0, 0x123456ff, "iopl1_inb_dx_value");
	expect_ok(p_inw_dx, "iopl1_inw_dx");
	CHECK_EQ(out0, 0x1234ffff, "iopl1_inw_dx_value");
	expect_ok(p_inl_dx, "iopl1_inl_dx");
	CHECK_EQ(out0, 0xffffffff, "iopl1_inl_dx_value");
	expect_ok(p_in_66_66, "iopl1_double_66_is_32bit");
	CHECK_EQ(out0, 0xffffffff, "iopl1_double_66_value");
	expect_ok(p_outb_imm, "iopl1_outb_imm");
	expect_ok(p_outl_imm, "iopl1_outl_imm");
	expect_ok(p_outb_dx, "iopl1_outb_dx");
	expect_ok(p_outw_dx, "iopl1_outw_dx");
	expect_ok(p_outl_dx, "iopl1_outl_dx");
	expect_ok(p_in_7pfx, "iopl1_seven_prefixes");
	CHECK_EQ(out0, 0xff, "iopl1_seven_prefixes_value");
	expect_gp(p_in_8pfx, p_in_8pfx_insn, "iopl1_eight_prefixes");

	memset(io_buf, 0, sizeof(io_buf));
	expect_ok(p_insb, "iopl1_insb");
	CHECK(io_buf[0] == 0xff && io_buf[1] == 0 && out0 == (u32)io_buf + 1, "iopl1_insb_stores_ff_edi_plus_1");
	memset(io_buf, 0, sizeof(io_buf));
	expect_ok(p_insl, "iopl1_insl");
	CHECK(*(u32 *)io_buf == 0xffffffff && io_buf[4] == 0 && out0 == (u32)io_buf + 4,
	      "iopl1_insl_stores_dword_edi_plus_4");
	expect_ok(p_outsb, "iopl1_outsb");
	CHECK_EQ(out0, (u32)io_buf + 1, "iopl1_outsb_esi_plus_1");
	expect_ok(p_outsl, "iopl1_outsl");
	CHECK_EQ(out0, (u32)io_buf + 4, "iopl1_outsl_esi_plus_4");

	memset(io_buf, 0, sizeof(io_buf));
	expect_ok(p_rep_insw, "iopl1_rep_insw");
	ok = out0 == (u32)io_buf + 6 && out1 == 0 && io_buf[6] == 0;
	for (i = 0; i < 6; i++)
		ok = ok && io_buf[i] == 0xff;
	CHECK(ok, "iopl1_rep_insw_three_words_ecx_0");

	memset(io_buf, 0, sizeof(io_buf));
	expect_ok(p_rep_insb_std, "iopl1_rep_insb_df");
	ok = out0 == (u32)io_buf + 5 && out1 == 0 && io_buf[5] == 0 && io_buf[10] == 0;
	for (i = 6; i <= 9; i++)
		ok = ok && io_buf[i] == 0xff;
	CHECK(ok, "iopl1_rep_insb_df_goes_down");

	expect_ok(p_rep_outsl, "iopl1_rep_outsl");
	CHECK(out0 == (u32)io_buf + 20 && out1 == 0, "iopl1_rep_outsl_esi_ecx");

	/* A fault on the data: #PF at the data address (Xen 3.0's fix), user read 4 / write 6. */
	probe_addr = start_info->pt_base;
	CHECK_EQ(trap_catch(p_insb_to, 0), 14, "iopl1_insb_to_readonly_pf");
	CHECK_EQ(last_trap.error_code, 6, "iopl1_insb_to_readonly_error_6");
	CHECK_EQ(last_trap.cr2, start_info->pt_base, "iopl1_insb_to_readonly_cr2_is_edi");
	CHECK_EQ(last_trap.eip, (u32)p_insb_to_insn, "iopl1_insb_to_readonly_eip_at_insn");
	probe_addr = 0x10000000;
	CHECK_EQ(trap_catch(p_outsb_from, 0), 14, "iopl1_outsb_from_unmapped_pf");
	CHECK_EQ(last_trap.error_code, 4, "iopl1_outsb_from_unmapped_error_4");
	CHECK_EQ(last_trap.cr2, 0x10000000, "iopl1_outsb_from_unmapped_cr2_is_esi");

	/* cli / sti: no-ops — neither EFLAGS.IF nor the upcall mask changes. */
	events_disable();
	{
		u32 f;
		__asm__ __volatile__("pushfl; popl %0" : "=r"(f));
		expect_ok(p_cli, "iopl1_cli");
		CHECK((out0 & 0x200) == (f & 0x200) && (f & 0x200) && vcpu0()->evtchn_upcall_mask == 1, "iopl1_cli_is_noop");
		expect_ok(p_sti, "iopl1_sti");
		CHECK((out0 & 0x200) == (f & 0x200) && vcpu0()->evtchn_upcall_mask == 1, "iopl1_sti_is_noop");
	}

	/* Ring 3 still needs IOPL 3. */
	expect_user(u_inb, 13, "iopl1_inb");
	expect_user(u_cli, 13, "iopl1_cli");
}

static void iobitmap_checks(void)
{
	long rc;
	memset(iobitmap, 0xff, sizeof(iobitmap));
	iobitmap[0x80 / 8] &= (u8)~(1 << (0x80 & 7)); /* port 0x80 */
	iobitmap[0x87 / 8] &= (u8)~(1 << (0x87 & 7)); /* ports 0x87, 0x88 */
	iobitmap[0x88 / 8] &= (u8)~(1 << (0x88 & 7));
	iobitmap[0x3fd / 8] &= (u8)~(3 << (0x3fd & 7)); /* ports 0x3fd..0x3ff */
	iobitmap[0x3fe / 8] &= (u8)~(3 << (0x3fe & 7));
	rc = physdev_set_iobitmap(iobitmap, 0x400);
	if (rc != 0) {
		printk("NOTE physdev SET_IOBITMAP returned %ld: guest I/O bitmap paths not checked\n", rc);
		return;
	}
	expect_ok(p_inb_imm, "bitmap_port80_allowed");
	CHECK_EQ(out0, 0x123456ff, "bitmap_port80_reads_ff");
	expect_gp(p_in_port81, p_in_port81_insn, "bitmap_port81_denied");
	expect_ok(p_in_port87w, "bitmap_word_across_bytes_allowed");
	expect_ok(p_in_port3fd, "bitmap_port3fd_word_below_limit");
	expect_gp(p_in_port3fe, p_in_port3fe_insn, "bitmap_limit_must_exceed_port_plus_size");
	/* cli/sti look at the IOPL only. */
	expect_gp(p_cli, p_cli_insn, "bitmap_cli_still_denied");
	expect_user(u_inb, 6, "bitmap_inb");
	CHECK_EQ(last_trap.eax, 0x123456ff, "bitmap_inb_ring3_reads_ff");
	CHECK_EQ(physdev_set_iobitmap(iobitmap, 0), 0, "bitmap_disable");
	expect_gp(p_inb_imm, p_inb_imm_insn, "bitmap_disabled_port80");
}

void start_kernel(start_info_t *si)
{
	long rc;
	u32 cr0;
	u64 t0;
	int v;

	conf_init(si, "priv_emulation");
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");

	/* ---- virtual IOPL 0, no bitmap: every port access and cli/sti is #GP(0) ---- */
	all_port_insns_denied("iopl0");
	/* rep with ECX = 0 is done before any check. */
	expect_ok(p_rep_insb_ecx0, "iopl0_rep_insb_ecx0");
	CHECK(out0 == (u32)io_buf && out1 == 0, "iopl0_rep_insb_ecx0_is_noop");
	expect_user(u_inb, 13, "iopl0_inb");
	expect_user(u_outb, 13, "iopl0_outb");
	expect_user(u_insb, 13, "iopl0_insb");
	expect_user(u_cli, 13, "iopl0_cli");
	expect_user(u_sti, 13, "iopl0_sti");

	/* ---- ring-1-only two-byte opcodes ---- */
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(1), 0, "setup_fpu_taskswitch_1");
	expect_ok(p_rd_cr0, "rd_cr0");
	cr0 = out0;
	CHECK(cr0 & CR0_TS, "rd_cr0_shows_virtual_ts_set");
	CHECK((cr0 & 0x80010001) == 0x80010001, "rd_cr0_pg_wp_pe");
	expect_ok(p_clts, "clts");
	expect_ok(p_rd_cr0_ebx, "rd_cr0_ebx");
	CHECK_EQ(out0, cr0 & ~CR0_TS, "clts_clears_virtual_ts");
	out0 = CR0_TS; /* every other bit clear: ignored */
	expect_ok(p_wr_cr0, "wr_cr0_ts");
	expect_ok(p_rd_cr0, "rd_cr0_after_wr");
	CHECK_EQ(out0, cr0, "wr_cr0_sets_only_ts");
	out0 = cr0 & ~CR0_TS;
	expect_ok(p_wr_cr0, "wr_cr0_no_ts");
	expect_ok(p_rd_cr0, "rd_cr0_after_wr_no_ts");
	CHECK_EQ(out0, cr0 & ~CR0_TS, "wr_cr0_clears_ts");
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(1), 0, "fpu_taskswitch_1_again");
	expect_ok(p_rd_cr0, "rd_cr0_after_hypercall");
	CHECK(out0 & CR0_TS, "fpu_taskswitch_1_visible_in_cr0");
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(0), 0, "fpu_taskswitch_0");
	expect_ok(p_rd_cr0, "rd_cr0_after_hypercall_0");
	CHECK((out0 & CR0_TS) == 0, "fpu_taskswitch_0_visible_in_cr0");

	v = trap_catch(p_read_unmapped, 0);
	CHECK_EQ(v, 14, "setup_page_fault");
	expect_ok(p_rd_cr2, "rd_cr2");
	CHECK_EQ(out0, 0x10000000, "rd_cr2_is_last_fault_address");
	out0 = 0x12345678;
	expect_ok(p_wr_cr2, "wr_cr2");
	expect_ok(p_rd_cr2, "rd_cr2_after_wr");
	CHECK_EQ(out0, 0x12345678, "wr_cr2_sets_virtual_cr2");

	expect_ok(p_rd_cr3, "rd_cr3");
	CHECK_EQ(out0, virt_to_mach((void *)si->pt_base), "rd_cr3_is_base_pointer_ma");
	out0 = virt_to_mach((void *)si->pt_base);
	expect_ok(p_wr_cr3, "wr_cr3_same_base");
	expect_ok(p_rd_cr3, "rd_cr3_after_wr");
	CHECK_EQ(out0, virt_to_mach((void *)si->pt_base), "wr_cr3_same_base_kept");
	out0 = 0x1000; /* not RAM: new_guest_cr3 fails, silently */
	expect_ok(p_wr_cr3, "wr_cr3_bad_frame_ignored");
	expect_ok(p_rd_cr3, "rd_cr3_after_bad");
	CHECK_EQ(out0, virt_to_mach((void *)si->pt_base), "wr_cr3_bad_frame_keeps_base");
	out0 = virt_to_mach(io_buf); /* a writable page cannot become an L2: ignored */
	expect_ok(p_wr_cr3, "wr_cr3_not_l2_ignored");
	expect_ok(p_rd_cr3, "rd_cr3_after_not_l2");
	CHECK_EQ(out0, virt_to_mach((void *)si->pt_base), "wr_cr3_not_l2_keeps_base");

	expect_gp(p_rd_cr4, p_rd_cr4_insn, "rd_cr4");
	expect_gp(p_wr_cr4, p_wr_cr4_insn, "wr_cr4");
	expect_gp(p_rd_cr0_mem, p_rd_cr0_mem_insn, "rd_cr0_memory_form");
	expect_gp(p_wr_cr0_mem, p_wr_cr0_mem_insn, "wr_cr0_memory_form");
	expect_ok(p_wbinvd, "wbinvd");

	out0 = MSR_TSC;
	t0 = rdtsc();
	expect_ok(p_rdmsr, "rdmsr_tsc");
	CHECK(((u64)out2 << 32 | out1) >= t0 && ((u64)out2 << 32 | out1) - t0 < 10000000,
	      "rdmsr_tsc_value");
	out0 = 0x12345;
	expect_gp(p_rdmsr, p_rdmsr_insn, "rdmsr_unknown_msr");
	out0 = 0x12345;
	expect_ok(p_wrmsr, "wrmsr_unprivileged_ignored");
	out0 = MSR_TSC;
	expect_ok(p_wrmsr, "wrmsr_tsc_unprivileged_ignored");

	expect_gp(p_hlt, p_hlt_insn, "hlt");
	expect_gp(p_lgdt, p_lgdt_insn, "lgdt");
	expect_gp(p_invd, p_invd_insn, "invd");
	expect_gp(p_rd_dr7, p_rd_dr7_insn, "mov_from_dr7");

	/* Ring 3: the 0F group is ring-1 only. */
	expect_user(u_clts, 13, "clts");
	expect_user(u_rd_cr0, 13, "rd_cr0");
	expect_user(u_rdmsr, 13, "rdmsr");
	expect_user(u_wbinvd, 13, "wbinvd");
	expect_user(u_hlt, 13, "hlt");

	/* A jump beyond the CS limit faults at the jump, which is not emulated. */
	probe_addr = 0xFC500000;
	/* QEMU blind spot: TCG does not enforce segment limits (docs/realxen-table.md). */
	expect_gp(p_jmp_far, p_jmp_far_insn, "jmp_beyond_cs_limit");

	/* The read-only M2P (0xFC000000) lies inside the ring-1 CS limit but above
	 * HYPERVISOR_VIRT_START, where Xen's get_user stops: make an M2P entry read "cli" and
	 * run it.  The CPU raises #GP(0); the emulator's fetch fails and a #PF with error code
	 * 4 (user read) is reflected at that address, which also becomes the virtual CR2. */
	{
		mmu_update_t u;
		u32 mfn = virt_to_mfn(io_buf), done = 0;
		u32 m2p_va = 0xFC000000 + mfn * 4;
		u.ptr = (mfn << 12) | MMU_MACHPHYS_UPDATE;
		u.val = 0xFA; /* cli; then 00 00 00 */
		CHECK_EQ(HYPERVISOR_mmu_update(&u, 1, &done), 0, "setup_m2p_entry_cli");
		probe_addr = m2p_va;
		v = trap_catch(p_jmp_far, 0);
		CHECK_EQ(v, 14, "fetch_above_virt_start_pf");
		CHECK_EQ(last_trap.error_code, 4, "fetch_fault_error_4");
		CHECK_EQ(last_trap.cr2, m2p_va, "fetch_fault_cr2_is_eip");
		CHECK_EQ(last_trap.eip, m2p_va, "fetch_fault_eip_at_insn");
		expect_ok(p_rd_cr2, "rd_cr2_after_fetch_fault");
		CHECK_EQ(out0, m2p_va, "fetch_fault_sets_virtual_cr2");
		u.val = virt_to_pfn(io_buf);
		CHECK_EQ(HYPERVISOR_mmu_update(&u, 1, &done), 0, "setup_m2p_entry_restore");
	}

	/* ---- virtual IOPL (physdev SET_IOPL) ---- */
	rc = physdev_set_iopl(1);
	if (rc != 0) {
		printk("NOTE physdev SET_IOPL returned %ld: IOPL-permitted paths not checked\n", rc);
	} else {
		port_io_allowed();
		CHECK_EQ(physdev_set_iopl(3), 0, "set_iopl_3");
		expect_user(u_inb, 6, "iopl3_inb");
		CHECK_EQ(last_trap.eax, 0x123456ff, "iopl3_inb_ring3_reads_ff");
		expect_user(u_outb, 6, "iopl3_outb");
		expect_user(u_cli, 6, "iopl3_cli");
		expect_user(u_sti, 6, "iopl3_sti");
		expect_user(u_clts, 13, "iopl3_clts_still_ring1_only");
		CHECK_EQ(physdev_set_iopl(0), 0, "set_iopl_0");
		expect_gp(p_inb_imm, p_inb_imm_insn, "iopl0_again_inb");
		iobitmap_checks();
	}

	checks_done();
}
