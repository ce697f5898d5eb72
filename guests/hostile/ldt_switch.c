/*
 * The shadow LDT across a switch of domains (test/hostile-ldtflush.test.ts). Every domain's
 * shadow LDT lies at the same address of Xen's per-domain area, each mapping its own frames,
 * so no translation of it may outlive a switch: only the CR3 load's flush drops them (no
 * invalidateShadowLdt runs then). Two copies of this guest run side by side, mode=1 and mode=2,
 * each with a 2-page LDT whose descriptor 513 (page 1) covers a page of its own, 4 KiB for
 * mode 1 and 8 bytes for mode 2; each round, page 1 warmed, each reads its own descriptor (lsl,
 * a load reading its own marker, fs:8 within or beyond the limit) and yields to the other.
 */
#include "desc.h"
#include "hostile.h"

#define ROUNDS 40
#define S_DATA SEL_LDT(513, 1)

static u8 ldt[2 * 4096] BSS_PAGE;
static u8 dpage[4096] BSS_PAGE;

void start_kernel(start_info_t *si)
{
	u32 mode, lim, mark, r, ok = 0;
	hostile_init(si, "ldt_switch");
	mode = cmdline_u32(si, "mode", 1);
	lim = mode == 1 ? 4095 : 7;
	mark = 0x1D700000u + mode;
	*(volatile u32 *)dpage = mark;
	*(volatile u32 *)(dpage + 8) = mark + 8;
	memset(ldt, 0, sizeof(ldt));
	/* Pre-accessed: a load only reads the descriptor, through whatever translation is kept. */
	desc_put(ldt, 513, mkseg((u32)dpage, lim, ACC_R1_DATA | 1, FLG_BYTE));
	CHECK_EQ(remap(ldt, 1) | remap(ldt + 4096, 1), 0, "ldt_read_only");
	CHECK_EQ(set_ldt((u32)ldt, 1024), 0, "set_ldt");
	for (r = 0; r < ROUNDS; r++) {
		ok += seg_limit(S_DATA) == lim;
		ok += fs_load_read(S_DATA, 0) == -1 && probe_val == mark;
		ok += fs_load_read(S_DATA, 8) == (mode == 1 ? -1 : 13);
		HYPERVISOR_sched_op(SCHEDOP_yield);
	}
	CHECK_EQ(ok, 3 * ROUNDS, "own_descriptor_every_round");
	checks_done();
}
