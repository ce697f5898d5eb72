/*
 * The switch-in reload of the data segments, kept per vcpu (src/xen/switch_segments.ts;
 * test/hostile-segkeep.test.ts). Xen reloads DS, ES, FS and GS from their selectors whenever a
 * vcpu comes back onto the CPU; tsxen skips that reload when the descriptor words, the walk to
 * them and the vcpu's caches are what the last reload read. Two of us run side by side (seed=1
 * and seed=2), yielding to each other, with the same selectors in FS and GS but descriptors of
 * our own whose bases differ between the two (a page permutation by seed): a cache kept from
 * the other domain, or from before a change, reads another page's marker.
 *
 * Between yields each of us rewrites its descriptor (base moved, limit shrunk, accessed bit
 * set, not present), switches its GDT to another frame and back (the GDT mapping's PTE),
 * swaps its selectors with no hypercall, and moves to an LDT selector and off it; after each
 * change and after every yield FS and GS (never reloaded by us in between) must read the
 * markers of the pages the descriptors in force name, a limit must fault where it ends, and a
 * descriptor made unusable must give exactly one failsafe callback.
 */
#include "desc.h"
#include "hostile.h"

#define NPAGES 8
#define YIELDS 6
#define X SEL_GDT(1, 1)
#define Y SEL_GDT(2, 1)
#define L SEL_LDT(1, 1)

static u8 gdt_a[4096] BSS_PAGE;
static u8 gdt_b[4096] BSS_PAGE;
static u8 ldt[4096] BSS_PAGE;
static u8 ldt2[4096] BSS_PAGE;
static u8 pages[NPAGES][4096] BSS_PAGE;
static u32 frames[16];
static u32 seed;

/* Our i'th page (a permutation by seed, so the two of us never name the same VA). */
static u32 page(u32 i)
{
	return (u32)pages[(i + seed * 3) % (NPAGES - 1)];
}

static u32 marker(u32 va)
{
	return 0x5E600000u | (seed << 12) | ((va >> 12) & 0xFFF);
}

static u32 fs_read(u32 off)
{
	u32 v;
	__asm__ __volatile__("movl %%fs:(%1), %0" : "=r"(v) : "r"(off) : "memory");
	return v;
}

static u32 gs_read(u32 off)
{
	u32 v;
	__asm__ __volatile__("movl %%gs:(%1), %0" : "=r"(v) : "r"(off) : "memory");
	return v;
}

static void load_fs_gs(u32 fs, u32 gs)
{
	__asm__ __volatile__("movl %0, %%fs\n\tmovl %1, %%gs" ::"r"(fs), "r"(gs) : "memory");
}

/* %fs:probe_off into probe_val, FS as it stands (no reload), under trap_catch. */
volatile u32 fs_off, fs_val;
PROBE(fs_probe, "movl fs_off, %eax", "movl %fs:(%eax), %ecx; movl %ecx, fs_val");

static long upd(u8 *table, u32 i, u32 base, u32 limit, u32 access)
{
	struct desc d = mkseg(base, limit, access, FLG_G);
	return HYPERVISOR_update_descriptor(virt_to_mach(table) + i * 8, d.lo, d.hi);
}

static long use_gdt(u8 *table)
{
	frames[0] = virt_to_mfn(table);
	return HYPERVISOR_set_gdt(frames, 512);
}

/*
 * FS and GS read the markers of fs_va and gs_va at offset 0 (and FS's second page at 0x1000
 * unless its limit is one page: then that read faults #GP), now and after each of YIELDS
 * yields; fails counts the reads that did not.
 */
static void expect(const char *name, u32 fs_va, u32 gs_va, int fs_two_pages)
{
	u32 i, bad = 0;
	int v;
	for (i = 0; i <= YIELDS; i++) {
		if (i != 0)
			HYPERVISOR_sched_op(SCHEDOP_yield);
		bad += fs_read(0) != marker(fs_va);
		bad += gs_read(0) != marker(gs_va);
		fs_off = 0x1000;
		v = trap_catch(fs_probe, 0);
		if (fs_two_pages)
			bad += v != -1 || fs_val != marker(fs_va + 0x1000);
		else
			bad += v != 13 || last_trap.error_code != 0;
	}
	CHECK_EQ(bad, 0, name);
}

void start_kernel(start_info_t *si)
{
	u32 i, fsafe;
	hostile_init(si, "seg_keep");
	seed = cmdline_u32(si, "seed", 1);
	for (i = 0; i < NPAGES; i++)
		((volatile u32 *)pages[i])[0] = marker((u32)pages[i]);

	/* Two GDT frames of ours: A names pages 0 and 1, B pages 3 and 4 (two pages each). */
	memset(gdt_a, 0, sizeof(gdt_a));
	memset(gdt_b, 0, sizeof(gdt_b));
	desc_put(gdt_a, 1, mkseg(page(0), 1, ACC_R1_DATA, FLG_G));
	desc_put(gdt_a, 2, mkseg(page(1), 1, ACC_R1_DATA, FLG_G));
	desc_put(gdt_b, 1, mkseg(page(3), 1, ACC_R1_DATA, FLG_G));
	desc_put(gdt_b, 2, mkseg(page(4), 1, ACC_R1_DATA, FLG_G));
	CHECK_EQ(remap(gdt_a, 1), 0, "gdt_a_read_only");
	CHECK_EQ(remap(gdt_b, 1), 0, "gdt_b_read_only");
	CHECK_EQ(use_gdt(gdt_a), 0, "set_gdt_a");
	load_fs_gs(X, Y);
	expect("gdt_a_loaded", page(0), page(1), 1);

	/* The descriptor under FS rewritten: its base moved, then its limit shrunk to one page. */
	CHECK_EQ(upd(gdt_a, 1, page(2), 1, ACC_R1_DATA), 0, "fs_base_moved");
	expect("fs_base_moved_seen", page(2), page(1), 1);
	CHECK_EQ(upd(gdt_a, 1, page(2), 0, ACC_R1_DATA), 0, "fs_limit_shrunk");
	expect("fs_limit_shrunk_seen", page(2), page(1), 0);
	/* The accessed bit set (the others were written clear and set by the reload): the same. */
	CHECK_EQ(upd(gdt_a, 1, page(2), 0, ACC_R1_DATA | 1u), 0, "fs_accessed_set");
	expect("fs_accessed_set_seen", page(2), page(1), 0);

	/* Another GDT frame behind the same selectors (the GDT mapping's PTE), then back. */
	CHECK_EQ(use_gdt(gdt_b), 0, "set_gdt_b");
	expect("gdt_b_seen", page(3), page(4), 1);
	CHECK_EQ(use_gdt(gdt_a), 0, "set_gdt_a_again");
	expect("gdt_a_again_seen", page(2), page(1), 0);

	/* The selectors swapped by the guest alone (no hypercall between them and the yields). */
	load_fs_gs(Y, X);
	expect("selectors_swapped", page(1), page(2), 1);

	/* The descriptor under FS made not present: the reload at the hypercall's return fails,
	 * one failsafe callback (which loads flat selectors), and none at the switch-ins after. */
	fsafe = failsafe_count;
	CHECK_EQ(upd(gdt_a, 2, page(1), 1, ACC_R1_DATA & 0x7F), 0, "fs_not_present");
	CHECK_EQ(failsafe_count - fsafe, 1, "fs_not_present_failsafe");
	CHECK_EQ(last_failsafe.fs & 0xFFFF, Y, "failsafe_frame_fs");
	for (i = 0; i < YIELDS; i++)
		HYPERVISOR_sched_op(SCHEDOP_yield);
	CHECK_EQ(failsafe_count - fsafe, 1, "no_failsafe_after");
	CHECK_EQ(fs_read((u32)pages[0]), marker((u32)pages[0]), "flat_fs_after_failsafe");
	CHECK_EQ(upd(gdt_a, 2, page(5), 1, ACC_R1_DATA), 0, "gs_desc_back");
	load_fs_gs(X, Y);
	expect("both_back", page(2), page(5), 0);

	/* An LDT selector in FS (the reload maps the shadow LDT), its descriptor moved, then the
	 * LDT dropped under it: one failsafe. */
	memset(ldt, 0, sizeof(ldt));
	desc_put(ldt, 1, mkseg(page(4), 1, ACC_R1_DATA, FLG_G));
	CHECK_EQ(remap(ldt, 1), 0, "ldt_read_only");
	CHECK_EQ(set_ldt((u32)ldt, 8), 0, "ldt_set");
	load_fs_gs(L, Y);
	expect("ldt_fs_seen", page(4), page(5), 1);
	CHECK_EQ(upd(ldt, 1, page(6), 0, ACC_R1_DATA), 0, "ldt_desc_moved");
	expect("ldt_desc_moved_seen", page(6), page(5), 0);
	/* The LDT's page remapped (update_va_mapping: no reload at its return) to a frame whose
	 * entry names another page: FS keeps its cache until the next reload, the switch-in's. */
	memset(ldt2, 0, sizeof(ldt2));
	desc_put(ldt2, 1, mkseg(page(3), 1, ACC_R1_DATA, FLG_G));
	CHECK_EQ(remap(ldt2, 1), 0, "ldt2_read_only");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)ldt, (virt_to_mfn(ldt2) << PAGE_SHIFT) | 1,
					      UVMF_INVLPG),
		 0, "ldt_page_remapped");
	CHECK_EQ(fs_read(0), marker(page(6)), "ldt_remap_cache_until_reload");
	HYPERVISOR_sched_op(SCHEDOP_yield);
	expect("ldt_remapped_seen", page(3), page(5), 1);
	fsafe = failsafe_count;
	CHECK_EQ(set_ldt(0, 0), 0, "ldt_off");
	CHECK_EQ(failsafe_count - fsafe, 1, "ldt_off_failsafe");
	for (i = 0; i < YIELDS; i++)
		HYPERVISOR_sched_op(SCHEDOP_yield);
	CHECK_EQ(failsafe_count - fsafe, 1, "no_failsafe_after_ldt");

	/* Last: FS and GS on one selector, many switches, then checked once more. */
	load_fs_gs(X, X);
	for (i = 0; i < 50; i++)
		HYPERVISOR_sched_op(SCHEDOP_yield);
	expect("one_selector_many_switches", page(2), page(2), 0);
	restore_data_segs();
	checks_done();
}
