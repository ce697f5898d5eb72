/*
 * Code a hot loop calls into, remapped and rewritten under it (test/hostile.test.ts). tsxen
 * links compiled code across pages: a region leaving its page goes on in the region of the page
 * it lands in, found through the TLB and the frame's decoded instructions (src/cpu/blocks.ts).
 * This guest calls a function in its page `xpage` thousands of times a phase, so the call and
 * its return are linked, and between and inside the phases it points xpage at another frame
 * (update_va_mapping), writes the function's code, and tries to map the victim's frame there.
 * Each phase's sum of return values says which code each call ran: a stale link shows.
 */
#include "hostile.h"

#define N 6000u

static u8 xpage[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static u8 wpage[PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));

/*
 * n calls of the function at xpage, summed. At call `at` (before it), `what` happens: 1 writes
 * the function's immediate (0x1111 becomes 0x1133), 2 maps xpage to frame `mfn`.
 */
static u32 calls(u32 n, u32 at, u32 what, u32 mfn)
{
	volatile u8 *code = xpage;
	u32 (*fn)(void) = (u32(*)(void))xpage;
	u32 i, sum = 0;
	for (i = 0; i < n; i++) {
		if (i == at && what == 1)
			code[1] = 0x33;
		if (i == at && what == 2)
			CHECK_EQ(HYPERVISOR_update_va_mapping((u32)xpage, (mfn << PAGE_SHIFT) | PTE_RW, UVMF_INVLPG), 0,
				 "remap_mid_loop");
		sum += fn();
	}
	return sum;
}

static long map_at(void *va, u32 mfn, u32 flags)
{
	return HYPERVISOR_update_va_mapping((u32)va, (mfn << PAGE_SHIFT) | flags, UVMF_INVLPG);
}

void start_kernel(start_info_t *si)
{
	u32 vmfn, own, fb;
	hostile_init(si, "code_remap");
	vmfn = cmdline_u32(si, "vmfn", 0);
	own = virt_to_mfn(xpage);
	fb = spare_mfn(0);
	put_fn(xpage, 0x1111);
	/* Frame fb gets the other function, written through wpage. */
	CHECK_EQ(map_at(wpage, fb, PTE_RW), 0, "map_fb");
	put_fn(wpage, 0x2222);
	CHECK_EQ(map_at(wpage, virt_to_mfn(wpage), PTE_RW), 0, "unmap_fb");

	CHECK_EQ(calls(N, N, 0, 0), N * 0x1111u, "own_code");
	CHECK_EQ(map_at(xpage, fb, PTE_RW), 0, "remap_to_fb");
	CHECK_EQ(calls(N, N, 0, 0), N * 0x2222u, "remapped_code");
	CHECK_EQ(map_at(xpage, own, PTE_RW), 0, "remap_back");
	CHECK_EQ(calls(N, N, 0, 0), N * 0x1111u, "own_code_again");
	CHECK_EQ(calls(N, N / 2, 1, 0), (N / 2) * 0x1111u + (N / 2) * 0x1133u, "code_written_mid_loop");
	CHECK_EQ(calls(N, N / 2, 2, fb), (N / 2) * 0x1133u + (N / 2) * 0x2222u, "remapped_mid_loop");
	/* The victim's frame is not ours: no mapping, and the calls still run fb's code. */
	CHECK(map_at(xpage, vmfn, PTE_RO) != 0, "victim_frame_refused");
	CHECK_EQ(calls(N, N, 0, 0), N * 0x2222u, "still_fb_code");
	checks_done();
}
