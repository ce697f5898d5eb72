/*
 * Conformance: the failsafe callback (semantics.md §4.4). Every return to the guest reloads
 * DS/ES/FS/GS from their selectors; when one no longer loads (its GDT/LDT descriptor made
 * not-present by update_descriptor, its GDT replaced by set_gdt, its LDT removed by SET_LDT),
 * Xen bounces to the failsafe callback with DS ES FS GS below EIP and null data segments.
 * The library's handler records the frame and resumes with FLAT_KERNEL_DS everywhere.
 */
#include "desc.h"

static u8 gdt_a[4096] BSS_PAGE;
static u8 gdt_b[4096] BSS_PAGE;
static u8 ldt_pg[4096] BSS_PAGE;
static u8 kdata[4096] BSS_PAGE;
static u32 frames[16];

#define MAGIC_K 0xFA150001u
#define MAGIC_K2 0xFA150002u

static long upd(const void *table, u32 index, struct desc d)
{
	return HYPERVISOR_update_descriptor(virt_to_mach(table) + index * 8, d.lo, d.hi);
}

static u32 get_ds(void)
{
	u32 s;
	__asm__ __volatile__("movl %%ds, %0" : "=r"(s));
	return s & 0xFFFF;
}

static u32 get_fs(void)
{
	u32 s;
	__asm__ __volatile__("movl %%fs, %0" : "=r"(s));
	return s & 0xFFFF;
}

static void set_ds(u32 s)
{
	__asm__ __volatile__("movl %0, %%ds" ::"r"(s) : "memory");
}

static void set_fs(u32 s)
{
	__asm__ __volatile__("movl %0, %%fs" ::"r"(s) : "memory");
}

static u32 fs_read0(void)
{
	u32 v;
	__asm__ __volatile__("movl %%fs:0, %0" : "=r"(v)::"memory");
	return v;
}

void start_kernel(start_info_t *si)
{
	struct desc flat = mkseg(0, 0xFFFFF, ACC_R1_DATA, FLG_G);
	struct desc notp = mkseg(0, 0xFFFFF, ACC_R1_DATA & 0x7F, FLG_G);
	u32 n;
	long rc;

	conf_init(si, "failsafe");
	*(volatile u32 *)kdata = MAGIC_K;
	*(volatile u32 *)(kdata + 8) = MAGIC_K2;
	CHECK_EQ(failsafe_count, 0, "no_failsafe_at_start");

	/* ---- our own GDT: entry 1 a flat ring-1 data segment */
	memset(gdt_a, 0, sizeof(gdt_a));
	memset(gdt_b, 0, sizeof(gdt_b));
	desc_put(gdt_a, 1, flat);
	CHECK(remap(gdt_a, 1) == 0 && remap(gdt_b, 1) == 0, "setup_gdt_readonly");
	frames[0] = virt_to_mfn(gdt_a);
	rc = HYPERVISOR_set_gdt(frames, 512);
	CHECK_EQ(rc, 0, "setup_set_gdt");
	if (rc)
		checks_done();

	/* A hypercall that leaves the loaded descriptor valid: no failsafe. */
	set_ds(SEL_GDT(1, 1));
	rc = upd(gdt_a, 2, flat);
	n = failsafe_count;
	CHECK_EQ(rc, 0, "valid_update_ok");
	CHECK_EQ(n, 0, "valid_update_no_failsafe");
	CHECK_EQ(get_ds(), SEL_GDT(1, 1), "valid_update_ds_kept");

	/* DS's own GDT entry made not-present: the return to us fails over. */
	set_fs(FLAT_KERNEL_DS);
	rc = upd(gdt_a, 1, notp);
	n = failsafe_count;
	CHECK_EQ(rc, 0, "gdt_not_present_rc_kept");
	CHECK_EQ(n, 1, "gdt_not_present_failsafe");
	CHECK_EQ(last_failsafe.ds, SEL_GDT(1, 1), "gdt_frame_old_ds");
	CHECK_EQ(last_failsafe.es, FLAT_KERNEL_DS, "gdt_frame_old_es");
	CHECK_EQ(last_failsafe.fs, FLAT_KERNEL_DS, "gdt_frame_old_fs");
	CHECK_EQ(last_failsafe.cs & 0xFFFF, FLAT_KERNEL_CS, "gdt_frame_cs");
	CHECK_EQ(failsafe_live_fs, 0, "gdt_handler_fs_null");
	CHECK_EQ(failsafe_live_gs, 0, "gdt_handler_gs_null");
	CHECK_EQ(get_ds(), FLAT_KERNEL_DS, "gdt_recovered_ds");

	/* set_gdt to a table without that entry. */
	CHECK_EQ(upd(gdt_a, 1, flat), 0, "setup_gdt_entry_back");
	set_ds(SEL_GDT(1, 1));
	frames[0] = virt_to_mfn(gdt_b);
	rc = HYPERVISOR_set_gdt(frames, 512);
	n = failsafe_count;
	CHECK_EQ(rc, 0, "set_gdt_switch_ok");
	CHECK_EQ(n, 2, "set_gdt_switch_failsafe");
	CHECK_EQ(last_failsafe.ds, SEL_GDT(1, 1), "set_gdt_frame_old_ds");
	CHECK_EQ(get_ds(), FLAT_KERNEL_DS, "set_gdt_recovered_ds");

	/* ---- an LDT page: entry 1 a ring-1 segment over kdata, loaded into FS */
	memset(ldt_pg, 0, sizeof(ldt_pg));
	desc_put(ldt_pg, 1, mkseg((u32)kdata, 0, ACC_R1_DATA, FLG_G));
	CHECK_EQ(remap(ldt_pg, 1), 0, "setup_ldt_readonly");
	CHECK_EQ(set_ldt((u32)ldt_pg, 16), 0, "setup_set_ldt");
	set_fs(SEL_LDT(1, 1));
	CHECK_EQ(fs_read0(), MAGIC_K, "ldt_fs_loads");

	/* A rewritten (still valid) descriptor is reloaded on the way back: the new base. */
	set_fs(SEL_LDT(1, 1));
	rc = upd(ldt_pg, 1, mkseg((u32)kdata + 8, 0, ACC_R1_DATA, FLG_G));
	CHECK_EQ(rc, 0, "ldt_rebase_ok");
	CHECK_EQ(fs_read0(), MAGIC_K2, "ldt_rebase_reloaded");
	CHECK_EQ(failsafe_count, 2, "ldt_rebase_no_failsafe");

	/* Not present: failsafe with the LDT selector in the FS slot. */
	rc = upd(ldt_pg, 1, notp);
	n = failsafe_count;
	CHECK_EQ(rc, 0, "ldt_not_present_rc_kept");
	CHECK_EQ(n, 3, "ldt_not_present_failsafe");
	CHECK_EQ(last_failsafe.fs, SEL_LDT(1, 1), "ldt_frame_old_fs");
	CHECK_EQ(last_failsafe.ds, FLAT_KERNEL_DS, "ldt_frame_old_ds");
	CHECK_EQ(get_fs(), FLAT_KERNEL_DS, "ldt_recovered_fs");

	/* SET_LDT removing the LDT under a loaded selector. */
	CHECK_EQ(upd(ldt_pg, 1, mkseg((u32)kdata, 0, ACC_R1_DATA, FLG_G)), 0, "setup_ldt_entry_back");
	set_fs(SEL_LDT(1, 1));
	rc = set_ldt(0, 0);
	n = failsafe_count;
	CHECK_EQ(rc, 0, "set_ldt_none_ok");
	CHECK_EQ(n, 4, "set_ldt_none_failsafe");
	CHECK_EQ(last_failsafe.fs, SEL_LDT(1, 1), "set_ldt_frame_old_fs");
	CHECK_EQ(get_fs(), FLAT_KERNEL_DS, "set_ldt_recovered_fs");

	/* Recovered: ordinary work goes on. */
	CHECK_EQ(HYPERVISOR_xen_version(0) != 0, 1, "hypercalls_after_recovery");
	checks_done();
}
