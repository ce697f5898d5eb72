/*
 * The shadow LDT's flush (test/hostile-ldtflush.test.ts). Xen maps our LDT's pages lazily into
 * the per-domain shadow-LDT area (descriptor_tables.ts mapLdtShadowPage) and drops them all
 * (invalidateShadowLdt, which flushes the TLB) when the LDT changes (SET_LDT), when a read-only
 * mapping of an LDT page goes, or when CR3 changes. A TLB entry for a shadow-LDT page that
 * outlived its mapping would let a selector load read a frame that is no LDT page any more.
 *
 * Two LDTs of two pages each (1024 entries): SET_LDT re-maps page 0 itself (with an invlpg), so
 * the descriptors aimed at live in page 1, whose TLB entry only the flush drops.
 *   513: A: ring-1 data over data_a, 4 KiB;  B: ring-1 data over data_b, 4 bytes
 *   514: A: ring-1 data, present;            B: not present
 * Each round, A in force (from a clean TLB): both load, page 1's TLB entry warmed; B in force:
 * fs:0 reads B's base, fs:8 is beyond its limit (#GP(0)), 514 is #NP(514); A again: A's rules.
 * Then A's page 1 warmed again, B in force, and A's page 1, no LDT page now, made writable and
 * given whole-space descriptors: B's rules still hold.
 * Last, with A in force and its page 1 warmed, that page's read-only mapping is dropped (Xen
 * drops the shadow LDT), the frame mapped writable and forged: the load must #PF at our own
 * LDT address (a writable frame cannot be an LDT page), never read the forged descriptor.
 */
#include "desc.h"
#include "hostile.h"

#define ROUNDS 8
#define NENTS 1024
#define I_DATA 513
#define I_NP 514
#define S_DATA SEL_LDT(I_DATA, 1)
#define S_NP SEL_LDT(I_NP, 1)
#define MAGIC_A0 0xA0A0A0A0u
#define MAGIC_A8 0xA8A8A8A8u
#define MAGIC_B0 0xB0B0B0B0u
#define MAGIC_F 0xF0F0F0F0u

static u8 ldt_a[2 * 4096] BSS_PAGE;
static u8 ldt_b[2 * 4096] BSS_PAGE;
static u8 data_a[4096] BSS_PAGE;
static u8 data_b[4096] BSS_PAGE;
static u8 data_f[4096] BSS_PAGE;

#define A1 (ldt_a + 4096)

/* A's page-1 descriptors as first written (also restored after the forgeries). */
static void put_a1(void)
{
	desc_put(ldt_a, I_DATA, mkseg((u32)data_a, 4095, ACC_R1_DATA, FLG_BYTE));
	desc_put(ldt_a, I_NP, mkseg((u32)data_a, 4095, ACC_R1_DATA, FLG_BYTE));
}

/* Whole-space ring-1 data descriptors over data_f in A's page 1 (mapped writable), their
 * accessed bit set: a load then only reads the descriptor (no write that would walk). */
static void forge_a1(void)
{
	desc_put(ldt_a, I_DATA, mkseg((u32)data_f, 0xFFFFF, ACC_R1_DATA | 1, FLG_G));
	desc_put(ldt_a, I_NP, mkseg((u32)data_f, 0xFFFFF, ACC_R1_DATA | 1, FLG_G));
}

/* Through A: 513 reads data_a at 0 and 8, 514 loads. */
static int a_holds(void)
{
	int ok = fs_load_read(S_DATA, 0) == -1 && probe_val == MAGIC_A0;
	ok &= fs_load_read(S_DATA, 8) == -1 && probe_val == MAGIC_A8;
	ok &= fs_load_read(S_NP, 0) == -1 && probe_val == MAGIC_A0;
	return ok;
}

/* Through B: 513 reads data_b at 0, faults #GP(0) at 8; 514 faults #NP(514). */
static int b_holds(void)
{
	int ok = fs_load_read(S_DATA, 0) == -1 && probe_val == MAGIC_B0;
	ok &= fs_load_read(S_DATA, 8) == 13 && last_trap.error_code == 0;
	ok &= fs_load_read(S_NP, 0) == 11 && last_trap.error_code == (S_NP & ~3u);
	return ok;
}

void start_kernel(start_info_t *si)
{
	u32 i, a_ok = 0, b_ok = 0, forged_ok = 0;
	long flush_rc = 0;
	u32 a1_mfn;
	hostile_init(si, "ldt_flush");

	*(volatile u32 *)data_a = MAGIC_A0;
	*(volatile u32 *)(data_a + 8) = MAGIC_A8;
	*(volatile u32 *)data_b = MAGIC_B0;
	*(volatile u32 *)(data_b + 8) = MAGIC_B0 + 8;
	*(volatile u32 *)data_f = MAGIC_F;
	*(volatile u32 *)(data_f + 8) = MAGIC_F + 8;
	memset(ldt_a, 0, sizeof(ldt_a));
	memset(ldt_b, 0, sizeof(ldt_b));
	put_a1();
	desc_put(ldt_b, I_DATA, mkseg((u32)data_b, 3, ACC_R1_DATA, FLG_BYTE));
	desc_put(ldt_b, I_NP, mkseg((u32)data_b, 4095, ACC_R1_DATA & 0x7F, FLG_BYTE));
	a1_mfn = virt_to_mfn(A1);
	CHECK_EQ(remap(ldt_a, 1) | remap(A1, 1), 0, "ldt_a_read_only");
	CHECK_EQ(remap(ldt_b, 1) | remap(ldt_b + 4096, 1), 0, "ldt_b_read_only");

	for (i = 0; i < ROUNDS; i++) {
		/* A in force, from a clean TLB: its page 1 shadowed and in the TLB after these loads. */
		CHECK_EQ(set_ldt((u32)ldt_a, NENTS), 0, "set_ldt_a_round");
		flush_rc |= mmuext(0, MMUEXT_TLB_FLUSH);
		a_ok += a_holds();
		/* B in force: A's page-1 translation must be gone. */
		CHECK_EQ(set_ldt((u32)ldt_b, NENTS), 0, "set_ldt_b_round");
		b_ok += b_holds();
		/* And back: B's page-1 translation must be gone. */
		CHECK_EQ(set_ldt((u32)ldt_a, NENTS), 0, "set_ldt_a_back");
		a_ok += a_holds();
		/* A's page 1 warmed again from a clean TLB, then B in force and B's page 1 not read
		 * before the forgery: A's frame is no LDT page now, so it may be mapped writable. */
		CHECK_EQ(set_ldt((u32)ldt_b, NENTS) | set_ldt((u32)ldt_a, NENTS), 0, "set_ldt_a_again");
		flush_rc |= mmuext(0, MMUEXT_TLB_FLUSH);
		a_ok += a_holds();
		CHECK_EQ(set_ldt((u32)ldt_b, NENTS), 0, "set_ldt_b_again");
		CHECK_EQ(remap(A1, 3), 0, "a1_writable_after_switch");
		forge_a1();
		forged_ok += b_holds();
		put_a1();
		CHECK_EQ(remap(A1, 1), 0, "a1_read_only_again");
	}
	CHECK_EQ(flush_rc, 0, "tlb_flushes");
	CHECK_EQ(a_ok, 3 * ROUNDS, "ldt_a_descriptors_read");
	CHECK_EQ(b_ok, ROUNDS, "ldt_b_descriptors_read_not_a_stale_translation");
	CHECK_EQ(forged_ok, ROUNDS, "forged_old_frame_never_read");

	/* A smaller LDT over the same frames: 513 lies beyond its limit (#GP(513)). */
	CHECK_EQ(set_ldt((u32)ldt_a, 512), 0, "set_ldt_a_512");
	CHECK_EQ(fs_load_read(S_DATA, 0), 13, "beyond_ldt_limit_gp");
	CHECK_EQ(last_trap.error_code, S_DATA & ~3u, "beyond_ldt_limit_gp_code");

	/* A in force, page 1 warmed; then its read-only mapping goes (Xen drops the shadow LDT
	 * with it), the frame is mapped writable and forged. */
	CHECK_EQ(set_ldt((u32)ldt_a, NENTS), 0, "set_ldt_a_last");
	CHECK(a_holds(), "ldt_a_before_unmap");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)A1, 0, UVMF_INVLPG), 0, "a1_unmapped_in_use");
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)A1, (a1_mfn << PAGE_SHIFT) | 3, UVMF_INVLPG), 0,
		 "a1_mapped_writable_in_use");
	forge_a1();
	CHECK_EQ(fs_load_read(S_DATA, 0), 14, "forged_in_use_page_faults");
	CHECK_EQ(last_trap.cr2, (u32)ldt_a + I_DATA * 8, "forged_in_use_page_cr2_our_ldt");
	CHECK_EQ(last_trap.error_code, 0, "forged_in_use_page_error_code");
	CHECK_EQ(fs_load_read(S_NP, 0), 14, "forged_in_use_page_faults_514");
	CHECK_EQ(last_trap.cr2, (u32)ldt_a + I_NP * 8, "forged_in_use_page_cr2_514");
	/* Read-only and as before again: A holds. */
	put_a1();
	CHECK_EQ(remap(A1, 1), 0, "a1_read_only_at_last");
	CHECK(a_holds(), "ldt_a_after_remap");
	checks_done();
}
