/*
 * The switch's segment-cache skip (Cpu.segStamp, src/cpu/context.ts; test/hostile-segstamp):
 * a switch copies and compares the eight segment caches only when the CPU loaded a segment
 * since the incoming context was last on it. Two of us (seed=1, seed=2) run the same image,
 * so our GDT frames, descriptors and pages are word for word the same and a switch between us
 * would rightly copy nothing; each round we load DS, ES, FS and GS with selectors that differ
 * from the other's in what a stamp must still see: the selector alone (RPL), the DPL alone
 * (Xen's flat ring-1 and ring-3 descriptors: same base and limit), the accessed bit alone, or
 * the limit (a descriptor of our own), then yield. After every yield each selector must be
 * the one we loaded and FS's limit the one of its descriptor: a load that moved no stamp would
 * leave the other domain's selector, or its limit, in our registers.
 */
#include "desc.h"
#include "hostile.h"

#define ROUNDS 64
#define YIELDS 2
#define QUIET_YIELDS 2000

static u8 gdt[4096] BSS_PAGE;
static u8 pages[2][4096] BSS_PAGE;
static u32 frames[16];
static u32 seed;

/* DS and ES: flat selectors only (our C code runs on them), differing in RPL or DPL. */
static const u32 flat[] = {FLAT_RING1_DS, FLAT_RING3_DS, FLAT_RING3_DS - 2, FLAT_RING3_DS - 1};
/* FS and GS: our own descriptors over pages[]: entry 1 two pages, 2 one page (a limit apart),
 * 3 as 1 at DPL 3, 4 as 1 with its accessed bit set. */
static const u32 own[] = {SEL_GDT(1, 1), SEL_GDT(2, 1), SEL_GDT(3, 1), SEL_GDT(3, 3),
			  SEL_GDT(4, 1), FLAT_RING1_DS};

volatile u32 fs_off, fs_val;
PROBE(fs_probe, "movl fs_off, %eax", "movl %fs:(%eax), %ecx; movl %ecx, fs_val");

static void load(u32 ds, u32 es, u32 fs, u32 gs)
{
	__asm__ __volatile__("movl %0, %%ds\n\tmovl %1, %%es\n\tmovl %2, %%fs\n\tmovl %3, %%gs" ::"r"(
				     ds),
			     "r"(es), "r"(fs), "r"(gs)
			     : "memory");
}

static u32 sel(int which)
{
	u32 v;
	switch (which) {
	case 0:
		__asm__ __volatile__("movl %%ds, %0" : "=r"(v));
		break;
	case 1:
		__asm__ __volatile__("movl %%es, %0" : "=r"(v));
		break;
	case 2:
		__asm__ __volatile__("movl %%fs, %0" : "=r"(v));
		break;
	default:
		__asm__ __volatile__("movl %%gs, %0" : "=r"(v));
	}
	return v & 0xFFFF;
}

/* A mix of round and seed, so the two of us pick different selectors most rounds. */
static u32 pick(u32 round, u32 seg, u32 n)
{
	u32 x = (round + 1) * 2654435761u ^ (seed * 40503u) ^ (seg * 97u);
	return (x >> 11) % n;
}

void start_kernel(start_info_t *si)
{
	u32 r, i, want[4], bad_sel = 0, bad_limit = 0;
	int v;
	hostile_init(si, "seg_stamp");
	seed = cmdline_u32(si, "seed", 1);
	((volatile u32 *)pages[1])[0] = 0x5E57A000u;

	memset(gdt, 0, sizeof(gdt));
	desc_put(gdt, 1, mkseg((u32)pages, 1, ACC_R1_DATA, FLG_G));
	desc_put(gdt, 2, mkseg((u32)pages, 0, ACC_R1_DATA, FLG_G));
	desc_put(gdt, 3, mkseg((u32)pages, 1, ACC_R3_DATA, FLG_G));
	desc_put(gdt, 4, mkseg((u32)pages, 1, ACC_R1_DATA | 1u, FLG_G));
	CHECK_EQ(remap(gdt, 1), 0, "gdt_read_only");
	frames[0] = virt_to_mfn(gdt);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 512), 0, "set_gdt");

	for (r = 0; r < ROUNDS; r++) {
		want[0] = flat[pick(r, 0, 4)];
		want[1] = flat[pick(r, 1, 4)];
		want[2] = own[pick(r, 2, 6)];
		want[3] = own[pick(r, 3, 6)];
		load(want[0], want[1], want[2], want[3]);
		for (i = 0; i < YIELDS; i++)
			HYPERVISOR_sched_op(SCHEDOP_yield);
		for (i = 0; i < 4; i++)
			bad_sel += sel(i) != want[i];
		/* FS's second page: readable through entries 1, 3 and 4 and the flat one, #GP
		 * through entry 2 (one page). */
		fs_off = want[2] == FLAT_RING1_DS ? (u32)pages[1] : 0x1000;
		v = trap_catch(fs_probe, 0);
		if (want[2] == SEL_GDT(2, 1))
			bad_limit += v != 13;
		else
			bad_limit += v != -1 || fs_val != 0x5E57A000u;
	}
	restore_data_segs();
	CHECK_EQ(bad_sel, 0, "selectors_after_yields");
	CHECK_EQ(bad_limit, 0, "fs_limit_after_yields");
	CHECK_EQ(r, ROUNDS, "rounds");
	/* Yields with no segment load between them (the switch skips its compares): the test
	 * writes a saved context's segments here (hostile-segstamp's host-write case). */
	for (i = 0; i < QUIET_YIELDS; i++)
		HYPERVISOR_sched_op(SCHEDOP_yield);
	checks_done();
}
