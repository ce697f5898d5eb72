/*
 * The switch's debug-register hand-over (CpuContext.dr, src/cpu/context.ts; test/hostile-drhandover):
 * while a vcpu runs, the CPU's DR0-7 are its context's own array, handed over at a switch
 * rather than copied. Two of us (seed=1, seed=2) run the same image, so a breakpoint on one of
 * our code addresses is one on the other's too. Each round we set DR0-3, DR6 and DR7 to
 * values of our own (unmapped addresses, enables, data and instruction types), and in turns of
 * eight rounds (one of us at a time, but for a round of drift at a turn's edge) aim one slot
 * of them at p_bp_target; then we yield and run p_bp. The armed one of us must take #DB there
 * with its own slot's bit in DR6 and its own other DR6 bits; the other must run through: a
 * hand-over that left one domain's registers on the CPU for the other fires its breakpoint in
 * the wrong domain, or misses it in the right one.
 * get_debugreg must give back what we set after every yield.
 */
#include "hostile.h"

#define ROUNDS 64
#define YIELDS 2

#define DR6_FORCED_ONES 0xFFFF0FF0u
#define DR6_BS_BIT12 0x1000u
#define DR7_BIT10 0x400u

PROBE(p_bp, "", "nop\n.globl p_bp_target\np_bp_target: nop\n nop");
extern char p_bp_target[];

static u32 seed;

static u32 mix(u32 round, u32 k)
{
	return (round + 1) * 2654435761u ^ (seed * 40503u) ^ (k * 0x9E3779B9u);
}

/* A DR7 R/W-LEN field that set_debugreg accepts (never 2: I/O, or LEN 2). */
static u32 field(u32 x)
{
	return (x & 3) == 2 ? 3 : x & 3;
}

void start_kernel(start_info_t *si)
{
	u32 r, i, dr[8], armed = 0, hits = 0;
	u32 bad_set = 0, bad_read = 0, bad_bp = 0, bad_dr6 = 0;
	int v;
	hostile_init(si, "dr_handover");
	seed = cmdline_u32(si, "seed", 1);

	for (r = 0; r < ROUNDS; r++) {
		int arm = (((r >> 3) + seed) & 1) == 0;
		u32 slot = mix(r, 9) >> 30;
		u32 x = mix(r, 7);
		/* Enables for slots 0-2 (local/global bits from x), fields of any accepted type. */
		dr[7] = (x & 0x3F) | DR7_BIT10;
		for (i = 0; i < 4; i++)
			dr[7] |= (field(x >> (8 + 2 * i)) | field(x >> (16 + 2 * i)) << 2) << (16 + 4 * i);
		for (i = 0; i < 4; i++)
			dr[i] = 0x10000000u | (mix(r, i) & 0x0FFFFFFCu); /* never mapped here */
		if (arm) {
			/* The armed slot: an instruction breakpoint (R/W 00, LEN 00), locally enabled. */
			dr[slot] = (u32)p_bp_target;
			dr[7] &= ~(3u << (2 * slot)) & ~(0xFu << (16 + 4 * slot));
			dr[7] |= 1u << (2 * slot);
			armed++;
		} else {
			/* Unarmed: slot 3 off too (its address never runs anyway). */
			dr[7] &= ~(3u << 6);
		}
		dr[6] = ((mix(r, 6) & ~DR6_BS_BIT12) | DR6_FORCED_ONES) & ~0xFu;
		for (i = 0; i < 8; i++)
			if (i != 4 && i != 5)
				bad_set += HYPERVISOR_set_debugreg(i, dr[i]) != 0;
		for (i = 0; i < YIELDS; i++)
			HYPERVISOR_sched_op(SCHEDOP_yield);
		for (i = 0; i < 8; i++)
			if (i != 4 && i != 5)
				bad_read += (u32)HYPERVISOR_get_debugreg(i) != dr[i];
		v = trap_catch(p_bp, 0);
		if (arm) {
			hits += v == 1;
			bad_bp += v != 1 || last_trap.eip != (u32)p_bp_target;
			bad_dr6 += (u32)HYPERVISOR_get_debugreg(6) != (dr[6] | 1u << slot);
		} else {
			bad_bp += v != -1;
			bad_dr6 += (u32)HYPERVISOR_get_debugreg(6) != dr[6];
		}
	}
	bad_set += HYPERVISOR_set_debugreg(7, 0) != 0;
	CHECK_EQ(bad_set, 0, "set_debugreg_accepted");
	CHECK_EQ(bad_read, 0, "debugregs_after_yields");
	CHECK_EQ(bad_bp, 0, "own_breakpoints_only");
	CHECK_EQ(bad_dr6, 0, "own_dr6_after_yields");
	CHECK_EQ(hits, ROUNDS / 2, "armed_rounds_hit");
	CHECK_EQ(armed + r, ROUNDS / 2 + ROUNDS, "rounds");
	checks_done();
}
