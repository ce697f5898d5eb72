/*
 * set_gdt's TLB flush (test/hostile-gdtflush.test.ts). The fast trap's bounce inside the run
 * (traps.ts bounceInRun) reads the gate's code descriptor through the CPU's TLB, as the CPU's
 * own segment loads do: that is right only while no TLB entry outlives the per-domain GDT
 * mapping it was filled from. We switch between two GDT frames of our own whose descriptor 1
 * differs only in its limit: A's reaches the handler, B's ends at byte 0. With A in force the
 * int 0x80 runs the handler; with B it must fault #GP(0) at the int, never run the handler
 * through A's descriptor kept in a stale TLB entry. Before each set_gdt a segment load warms
 * the TLB entry of the GDT's first page (descriptor 1 shares it with Xen's flat selectors).
 * Then, B in force, A (no longer a GDT page) is made writable and given a DPL-0 code
 * descriptor of the whole space: still #GP(0), still no handler, still ring 1.
 */
#include "desc.h"
#include "hostile.h"

#define ROUNDS 8
#define X SEL_GDT(1, 1)

static u8 gdt_a[4096] BSS_PAGE;
static u8 gdt_b[4096] BSS_PAGE;
static u32 frames[16];
static volatile u32 int80_seen;

static int int80_hook(struct trap_frame *f)
{
	(void)f;
	int80_seen++;
	return 1;
}

extern char int80_at[];
static void do_int80(void *unused)
{
	__asm__ __volatile__(".globl int80_at\nint80_at: int $0x80" ::: "memory");
}

/* int 0x80 at ring 1: the vector caught (-1: the handler ran and returned). */
static int int80(void)
{
	return trap_catch(do_int80, 0);
}

/* A segment load: the CPU reads the GDT's first page through its TLB (and fills it). */
static void reload_ds(void)
{
	__asm__ __volatile__("movl %%ds, %%eax\n\tmovl %%eax, %%ds" ::: "eax", "memory");
}

static long use_gdt(u8 *table)
{
	frames[0] = virt_to_mfn(table);
	return HYPERVISOR_set_gdt(frames, 512);
}

static u32 cpl(void)
{
	u32 cs;
	__asm__ __volatile__("movl %%cs, %0" : "=r"(cs));
	return cs & 3;
}

void start_kernel(start_info_t *si)
{
	u32 i, ran = 0, faulted = 0, at_int = 0;
	hostile_init(si, "gdt_flush");
	trap_hooks[0x80] = int80_hook;

	memset(gdt_a, 0, sizeof(gdt_a));
	memset(gdt_b, 0, sizeof(gdt_b));
	desc_put(gdt_a, 1, mkseg(0, 0xFBFFF, ACC_R1_CODE, FLG_G));
	desc_put(gdt_b, 1, mkseg(0, 0, ACC_R1_CODE, FLG_BYTE));
	CHECK_EQ(remap(gdt_a, 1), 0, "gdt_a_read_only");
	CHECK_EQ(remap(gdt_b, 1), 0, "gdt_b_read_only");
	CHECK_EQ(use_gdt(gdt_a), 0, "set_gdt_a");

	CHECK_EQ(fast_trap_gate(X, trap_stub(0x80)), 0, "gate_through_x");

	for (i = 0; i < ROUNDS; i++) {
		int r;
		u32 seen = int80_seen;
		/* A in force: the handler runs, several times (warm), the TLB entry filled. */
		CHECK_EQ(use_gdt(gdt_a), 0, "set_gdt_a_round");
		reload_ds();
		ran += int80() == -1 && int80() == -1 && int80_seen == seen + 2;
		reload_ds();
		/* B in force: descriptor 1 ends at byte 0, the handler's offset lies beyond it. */
		CHECK_EQ(use_gdt(gdt_b), 0, "set_gdt_b_round");
		seen = int80_seen;
		r = int80();
		faulted += r == 13 && last_trap.error_code == 0 && int80_seen == seen;
		at_int += last_trap.eip == (u32)int80_at;
	}
	CHECK_EQ(ran, ROUNDS, "gdt_a_handler_runs");
	CHECK_EQ(faulted, ROUNDS, "gdt_b_gp0_no_handler");
	CHECK_EQ(at_int, ROUNDS, "gdt_b_gp_at_the_int");

	/* A is no GDT page now: writable, and given a DPL-0 code descriptor of the whole space. */
	CHECK_EQ(remap(gdt_a, 3), 0, "gdt_a_writable_after_switch");
	desc_put(gdt_a, 1, mkseg(0, 0xFFFFF, 0x9A, FLG_G));
	reload_ds();
	i = int80_seen;
	CHECK_EQ(int80(), 13, "dpl0_in_old_frame_gp");
	CHECK_EQ(last_trap.error_code, 0, "dpl0_in_old_frame_gp_code_0");
	CHECK_EQ(int80_seen, i, "dpl0_in_old_frame_handler_not_run");
	CHECK_EQ(cpl(), 1, "still_ring_1");
	/* Mapped writable, it cannot be a GDT frame again. */
	CHECK_EQ(use_gdt(gdt_a), -EINVAL, "writable_frame_refused_as_gdt");
	checks_done();
}
