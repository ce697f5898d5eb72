/*
 * Conformance: set_debugreg (8) / get_debugreg (9) (semantics.md §4.10, abi.md §2.13.6)
 * and debug exceptions reaching the guest (§4.1, abi.md §2.2.2): single step (EFLAGS.TF,
 * DR6.BS), instruction breakpoints (DR0-DR3 enabled in DR7), DR6 saved for get_debugreg(6),
 * spurious #DB with DR7 = 0 swallowed.
 */
#include "probe.h"

#define TF 0x100
#define RF 0x10000
#define DR6_BS 0x4000

/* pushf / set TF / popf: the trap comes after the instruction following popf. */
PROBE(p_step, "", "pushfl\n orl $0x100, (%esp)\n popfl\n nop\n.globl p_step_nop2\np_step_nop2: nop");
/* The same, clearing TF again after a few instructions (for the swallowed case). */
PROBE(p_step_off, "",
      "pushfl\n orl $0x100, (%esp)\n popfl\n nop\n nop\n pushfl\n andl $~0x100, (%esp)\n popfl");
PROBE(p_bp, "", "nop\n.globl p_bp_target\np_bp_target: nop\n nop");

extern char p_step_nop2[], p_bp_target[];

extern char u_step[], u_step_after[], u_bp[];
__asm__(".pushsection .user.text,\"ax\"\n"
	".globl u_step, u_step_after, u_bp\n"
	"u_step: pushfl\n orl $0x100, (%esp)\n popfl\n nop\n"
	"u_step_after: ud2\n"
	"u_bp: nop\n ud2\n"
	".popsection\n");

static volatile u32 db_hook_hits;
static volatile u8 mask_in_handler;

/* Resume after an instruction breakpoint with RF set in the frame. */
static int db_resume_rf(struct trap_frame *f)
{
	db_hook_hits++;
	mask_in_handler = vcpu0()->evtchn_upcall_mask;
	f->eflags |= RF;
	return 1;
}

static void set_ok(u32 reg, u32 val, u32 want, const char *name)
{
	char n[96];
	snprintf(n, sizeof(n), "%s_returns_0", name);
	CHECK_EQ(HYPERVISOR_set_debugreg(reg, val), 0, n);
	snprintf(n, sizeof(n), "%s_reads_back", name);
	CHECK_EQ(HYPERVISOR_get_debugreg(reg), want, n);
}

static void set_err(u32 reg, u32 val, long err, const char *name)
{
	char n[96];
	u32 before = reg <= 7 ? (u32)HYPERVISOR_get_debugreg(reg) : 0;
	snprintf(n, sizeof(n), "%s_error", name);
	CHECK_EQ(HYPERVISOR_set_debugreg(reg, val), err, n);
	if (reg <= 7) {
		snprintf(n, sizeof(n), "%s_value_unchanged", name);
		CHECK_EQ(HYPERVISOR_get_debugreg(reg), before, n);
	}
}

void start_kernel(start_info_t *si)
{
	u32 r, before;
	int v;

	conf_init(si, "debugreg");
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");

	/* Initial state: all zero, except DR6: the builder's DOM0_SETDOMAININFO loads the zero
	 * debugregs through set_debugreg, which forces DR6's reserved bits to one
	 * (semantics.md §8.3 step 5). */
	for (r = 0; r < 8; r++) {
		char n[40];
		snprintf(n, sizeof(n), "initial_dr%u_%s", r, r == 6 ? "reserved_ones" : "zero");
		CHECK_EQ(HYPERVISOR_get_debugreg(r), r == 6 ? 0xffff0ff0u : 0, n);
	}

	/* DR0-DR3: addresses up to PAGE_OFFSET - 4. */
	set_ok(0, 0xC0001000, 0xC0001000, "dr0_kernel_address");
	set_ok(1, 0, 0, "dr1_zero");
	set_ok(2, 0xFC3FFFFC, 0xFC3FFFFC, "dr2_max_address");
	set_ok(3, 0x12345677, 0x12345677, "dr3_unaligned_ok");
	set_err(0, 0xFC3FFFFD, -EPERM, "dr0_above_max");
	set_err(1, 0xFC400000, -EPERM, "dr1_page_offset");
	set_err(2, 0xFFFFFFFF, -EPERM, "dr2_all_ones");
	/* The limit is PAGE_OFFSET - 4, not HYPERVISOR_VIRT_START: the M2P area is allowed. */
	set_ok(3, HYPERVISOR_VIRT_START, HYPERVISOR_VIRT_START, "dr3_hypervisor_virt_start_allowed");

	/* DR4, DR5 and beyond 7: -EINVAL; get_debugreg allows 0..7. */
	set_err(4, 0, -EINVAL, "dr4_set");
	set_err(5, 0, -EINVAL, "dr5_set");
	set_err(8, 0, -EINVAL, "dr8_set");
	set_err(0xFFFFFFFF, 0, -EINVAL, "dr_minus1_set");
	CHECK_EQ(HYPERVISOR_get_debugreg(4), 0, "dr4_get_stored_zero");
	CHECK_EQ(HYPERVISOR_get_debugreg(5), 0, "dr5_get_stored_zero");
	CHECK_EQ(HYPERVISOR_get_debugreg(8), -EINVAL, "dr8_get_einval");
	CHECK_EQ(HYPERVISOR_get_debugreg(0xFFFFFFFF), -EINVAL, "dr_minus1_get_einval");

	/* DR6: bits 4-11 and 16-31 forced to 1, bit 12 forced to 0. */
	set_ok(6, 0, 0xFFFF0FF0, "dr6_zero_forced_ones");
	set_ok(6, 0xFFFFFFFF, 0xFFFFEFFF, "dr6_ones_bit12_cleared");
	set_ok(6, 0x4001, 0xFFFF4FF1, "dr6_bs_b0_kept");

	/* DR7: 0 stays 0; else bits 11,12,14,15 cleared, bit 10 set. */
	set_ok(7, 0, 0, "dr7_zero_not_forced");
	set_ok(7, 1, 0x401, "dr7_l0_bit10_forced");
	set_ok(7, 0xD800 | 2, 0x402, "dr7_reserved_zeros_forced");
	set_ok(7, 0x400, 0x400, "dr7_only_bit10");
	set_ok(7, 0x00010003, 0x00010403, "dr7_rw0_write_ok");
	set_ok(7, 0x00030003, 0x00030403, "dr7_rw0_readwrite_ok");
	set_ok(7, 0xD0000003, 0xD0000403, "dr7_len3_rw1_ok");
	set_err(7, 0x2000 | 1, -EPERM, "dr7_gd");
	set_err(7, 0x00020001, -EPERM, "dr7_rw0_io");
	set_err(7, 0x00080001, -EPERM, "dr7_len0_2");
	set_err(7, 0x00200004, -EPERM, "dr7_rw1_io");
	set_err(7, 0x80000040, -EPERM, "dr7_len3_2");
	set_err(7, 0x20000000, -EPERM, "dr7_rw3_io_no_enables");
	set_ok(7, 0, 0, "dr7_disable");

	/* ---- single step: #DB after the instruction following popf, DR6.BS ---- */
	CHECK_EQ(HYPERVISOR_set_debugreg(6, 0), 0, "setup_dr6_clear");
	v = trap_catch(p_step, 0);
	CHECK_EQ(v, 1, "single_step_db_vector1");
	CHECK_EQ(last_trap.eip, (u32)p_step_nop2, "single_step_eip_after_insn");
	CHECK_EQ(last_trap_entry_esp, probe_esp - 12, "single_step_no_error_code");
	CHECK(last_trap.eflags & TF, "single_step_frame_eflags_tf");
	CHECK_EQ(HYPERVISOR_get_debugreg(6), 0xFFFF0FF0 | DR6_BS, "single_step_dr6_bs");
	{
		u32 f;
		__asm__ __volatile__("pushfl; popl %0" : "=r"(f));
		CHECK((f & TF) == 0, "single_step_handler_runs_without_tf");
	}

	/* Ring 3 single step, bounced on the ring-1 stack. */
	CHECK_EQ(HYPERVISOR_set_debugreg(6, 0), 0, "setup_dr6_clear_ring3");
	v = run_user((u32)u_step, USER_STACK_TOP, 0);
	CHECK_EQ(v, 1, "ring3_single_step_db");
	CHECK(last_trap.eip == (u32)u_step_after && (last_trap.cs & 3) == 3, "ring3_single_step_frame");
	CHECK_EQ(HYPERVISOR_get_debugreg(6), 0xFFFF0FF0 | DR6_BS, "ring3_single_step_dr6_bs");

	/* The #DB bounce ignores the trap's IF flag. */
	CHECK_EQ(trap_set(1, TI_IF), 0, "setup_vector1_if_flag");
	vcpu0()->evtchn_upcall_pending = 0;
	events_enable();
	v = trap_catch(p_step, 0);
	mask_in_handler = vcpu0()->evtchn_upcall_mask;
	events_disable();
	CHECK(v == 1 && mask_in_handler == 0, "db_bounce_ignores_if_flag");
	CHECK_EQ(trap_set(1, 0), 0, "restore_vector1");

	/* Spurious: a B0-B3 bit in DR6 while DR7 is 0 -> swallowed, DR6 not saved. */
	CHECK_EQ(HYPERVISOR_set_debugreg(6, 1), 0, "setup_dr6_b0");
	before = trap_counts[1];
	v = trap_catch(p_step_off, 0);
	CHECK(v == -1 && trap_counts[1] == before, "spurious_db_dr7_zero_swallowed");
	CHECK_EQ(HYPERVISOR_get_debugreg(6), 0xFFFF0FF1, "spurious_db_dr6_not_saved");

	/* ---- instruction breakpoint: DR0 + DR7.L0, R/W 00: a fault before the instruction ---- */
	CHECK_EQ(HYPERVISOR_set_debugreg(6, 0), 0, "setup_bp_dr6_clear");
	CHECK_EQ(HYPERVISOR_set_debugreg(0, (u32)p_bp_target), 0, "setup_bp_dr0");
	CHECK_EQ(HYPERVISOR_set_debugreg(7, 1), 0, "setup_bp_dr7_l0");
	v = trap_catch(p_bp, 0);
	CHECK_EQ(v, 1, "insn_breakpoint_db");
	CHECK_EQ(last_trap.eip, (u32)p_bp_target, "insn_breakpoint_eip_at_insn");
	CHECK_EQ(HYPERVISOR_get_debugreg(6) & 0xF, 1, "insn_breakpoint_dr6_b0");
	CHECK((HYPERVISOR_get_debugreg(6) & DR6_BS) == 0, "insn_breakpoint_dr6_no_bs");

	/* Resuming with RF set executes the instruction without a second #DB. */
	trap_hooks[1] = db_resume_rf;
	db_hook_hits = 0;
	v = trap_catch(p_bp, 0);
	CHECK(v == -1 && db_hook_hits == 1, "insn_breakpoint_rf_resumes_once");

	/* G1 with DR1 works the same; a disabled DR0 does not fire. */
	CHECK_EQ(HYPERVISOR_set_debugreg(1, (u32)p_bp_target), 0, "setup_bp_dr1");
	CHECK_EQ(HYPERVISOR_set_debugreg(6, 0), 0, "setup_bp_dr6_clear_g1");
	CHECK_EQ(HYPERVISOR_set_debugreg(7, 0x8), 0, "setup_bp_dr7_g1");
	db_hook_hits = 0;
	v = trap_catch(p_bp, 0);
	CHECK(v == -1 && db_hook_hits == 1, "insn_breakpoint_g1_fires_once");
	CHECK_EQ(HYPERVISOR_get_debugreg(6) & 0xF, 2, "insn_breakpoint_g1_dr6_b1");

	/* A breakpoint in ring-3 code. */
	trap_hooks[1] = 0;
	CHECK_EQ(HYPERVISOR_set_debugreg(2, (u32)u_bp), 0, "setup_bp_dr2_user");
	CHECK_EQ(HYPERVISOR_set_debugreg(7, 0x10), 0, "setup_bp_dr7_l2");
	v = run_user((u32)u_bp, USER_STACK_TOP, 0);
	CHECK(v == 1 && last_trap.eip == (u32)u_bp && (last_trap.cs & 3) == 3, "ring3_insn_breakpoint");
	CHECK_EQ(HYPERVISOR_get_debugreg(6) & 0xF, 4, "ring3_insn_breakpoint_dr6_b2");

	/* DR7 = 0 disables them. */
	CHECK_EQ(HYPERVISOR_set_debugreg(7, 0), 0, "bp_disable");
	before = trap_counts[1];
	CHECK(trap_catch(p_bp, 0) == -1 && trap_counts[1] == before, "bp_disabled_no_db");
	CHECK_EQ(run_user((u32)u_bp, USER_STACK_TOP, 0), 6, "ring3_bp_disabled_no_db");

	checks_done();
}
