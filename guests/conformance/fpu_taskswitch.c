/*
 * Conformance: fpu_taskswitch (hypercall 5) and #NM (semantics.md §4.7, abi.md §2.2.2):
 * the guest's virtual CR0.TS; with it set the first FPU instruction raises #NM to the
 * guest's vector 7 (no error code, IF flag not honoured) once, and the FPU state survives.
 */
#include "probe.h"

#define CR0_TS 8

static volatile u32 cr0_out;
static volatile u16 fpu_cw_out;
static double d_out;
static volatile u8 mask_in_handler;

PROBE(p_fld1, "", "fld1\n fstpl d_out");
PROBE(p_fnstcw, "", "fnstcw fpu_cw_out");
PROBE(p_rd_cr0, "", "movl %cr0, %eax\n movl %eax, cr0_out");
PROBE(p_wr_cr0_ts, "movl cr0_out, %eax\n orl $8, %eax", "movl %eax, %cr0");
PROBE(p_clts, "", "clts");

extern char u_fld1[];
__asm__(".pushsection .user.text,\"ax\"\n"
	".globl u_fld1\n"
	"u_fld1: fld1\n fstp %st(0)\n ud2\n"
	".popsection\n");

static int record_mask(struct trap_frame *f)
{
	mask_in_handler = vcpu0()->evtchn_upcall_mask;
	return 0; /* let trap_catch take it */
}

static u32 read_cr0(void)
{
	cr0_out = 0;
	trap_catch(p_rd_cr0, 0);
	return cr0_out;
}

static void nm_once(const char *name)
{
	char n[80];
	u32 before = trap_counts[7];
	int v = trap_catch(p_fld1, 0);
	snprintf(n, sizeof(n), "%s_nm_to_vector7", name);
	CHECK_EQ(v, 7, n);
	snprintf(n, sizeof(n), "%s_nm_eip_at_fpu_insn", name);
	CHECK_EQ(last_trap.eip, (u32)p_fld1_insn, n);
	snprintf(n, sizeof(n), "%s_nm_no_error_code", name);
	CHECK_EQ(last_trap_entry_esp, probe_esp - 12, n);
	snprintf(n, sizeof(n), "%s_nm_counted_once", name);
	CHECK_EQ(trap_counts[7], before + 1, n);
	snprintf(n, sizeof(n), "%s_virtual_ts_cleared_by_nm", name);
	CHECK((read_cr0() & CR0_TS) == 0, n);
	d_out = 0;
	v = trap_catch(p_fld1, 0);
	snprintf(n, sizeof(n), "%s_second_fpu_insn_no_nm", name);
	CHECK(v == -1 && d_out == 1.0 && trap_counts[7] == before + 1, n);
}

void start_kernel(start_info_t *si)
{
	double a = 0, b = 0, c = 0;
	u32 cr0;
	int v;
	long rc;

	conf_init(si, "fpu_taskswitch");
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");

	/* TS clear: no #NM. */
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(0), 0, "fpu_taskswitch_0_returns_0");
	d_out = 0;
	v = trap_catch(p_fld1, 0);
	CHECK(v == -1 && d_out == 1.0 && trap_counts[7] == 0, "ts_clear_no_nm");
	CHECK((read_cr0() & CR0_TS) == 0, "ts_clear_cr0_reads_clear");

	/* TS set: the first FPU instruction raises #NM once. */
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(1), 0, "fpu_taskswitch_1_returns_0");
	CHECK(read_cr0() & CR0_TS, "ts_set_cr0_reads_set");
	nm_once("taskswitch_1");

	/* Any non-zero argument sets TS. */
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(0x80000000u), 0, "fpu_taskswitch_high_bit_returns_0");
	nm_once("taskswitch_high_bit");

	/* fnstcw is an FPU instruction too; set then cleared TS gives no #NM. */
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(1), 0, "setup_ts_for_fnstcw");
	v = trap_catch(p_fnstcw, 0);
	CHECK_EQ(v, 7, "fnstcw_raises_nm");
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(1), 0, "setup_ts_then_clear");
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(0), 0, "clear_ts");
	v = trap_catch(p_fnstcw, 0);
	CHECK(v == -1 && trap_counts[7] == 3, "set_then_clear_no_nm");

	/* Emulated clts and mov to CR0 drive the same virtual TS. */
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(1), 0, "setup_ts_for_clts");
	CHECK_EQ(trap_catch(p_clts, 0), -1, "clts_emulated");
	d_out = 0;
	CHECK(trap_catch(p_fld1, 0) == -1 && d_out == 1.0, "clts_then_no_nm");
	cr0 = read_cr0();
	cr0_out = cr0;
	CHECK_EQ(trap_catch(p_wr_cr0_ts, 0), -1, "mov_cr0_ts_emulated");
	nm_once("mov_cr0_ts");

	/* The #NM bounce ignores the trap's IF flag: events stay unmasked. */
	CHECK_EQ(trap_set(7, TI_IF), 0, "setup_vector7_if_flag");
	trap_hooks[7] = record_mask;
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(1), 0, "setup_ts_for_if_flag");
	vcpu0()->evtchn_upcall_pending = 0;
	mask_in_handler = 0xFF;
	events_enable();
	v = trap_catch(p_fld1, 0);
	events_disable();
	CHECK(v == 7 && mask_in_handler == 0, "nm_bounce_ignores_if_flag");
	trap_hooks[7] = 0;
	CHECK_EQ(trap_set(7, 0), 0, "restore_vector7");

	/* From ring 3 too: #NM to the guest's vector 7 on the ring-1 stack. */
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(1), 0, "setup_ts_for_ring3");
	v = run_user((u32)u_fld1, USER_STACK_TOP, 0);
	CHECK_EQ(v, 7, "ring3_fpu_insn_nm");
	CHECK(last_trap.eip == (u32)u_fld1 && (last_trap.cs & 3) == 3, "ring3_nm_frame");
	v = run_user((u32)u_fld1, USER_STACK_TOP, 0);
	CHECK_EQ(v, 6, "ring3_second_run_no_nm");

	/* The FPU state survives fpu_taskswitch, #NM and other hypercalls. */
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(0), 0, "setup_state_ts_clear");
	__asm__ __volatile__("fninit\n fldpi\n fld1\n fldl2t" ::: "memory");
	CHECK_EQ(HYPERVISOR_fpu_taskswitch(1), 0, "state_taskswitch_1");
	rc = HYPERVISOR_sched_op(SCHEDOP_yield); /* 0, or the hypercall number if it switched */
	CHECK(rc == 0 || rc == __HYPERVISOR_sched_op, "state_yield");
	v = trap_catch(p_fnstcw, 0);
	CHECK_EQ(v, 7, "state_nm");
	CHECK_EQ(trap_catch(p_fnstcw, 0), -1, "state_fnstcw_after_nm");
	CHECK_EQ(fpu_cw_out, 0x037f, "state_control_word_kept");
	__asm__ __volatile__("fstpl %0\n fstpl %1\n fstpl %2" : "=m"(a), "=m"(b), "=m"(c)::"memory");
	CHECK(a > 3.3219 && a < 3.3220, "state_st0_log2_10");
	CHECK(b == 1.0, "state_st1_one");
	CHECK(c > 3.14159 && c < 3.14160, "state_st2_pi");

	checks_done();
}
