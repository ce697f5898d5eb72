/*
 * The inline iret (src/cpu/segments.ts iretCommon; test/hostile-iret.test.ts). tsxen runs a
 * ring-1 iret to ring 1 or ring 3 without its full path when the frame and the descriptors it
 * names pass the full path's checks through the TLB. This guest warms that path with thousands
 * of irets to ring 3 through descriptors of its own, then irets through frames that must fault
 * exactly as the full path faults: a CS or SS naming Xen's ring-0 descriptors (with RPL 0 and
 * 3), the kernel's ring-1 CS with RPL 3, selectors beyond the GDT's limit and in an absent LDT,
 * its own ring-1 descriptors at RPL 3, and its own descriptors rewritten between two irets (not
 * present, then of ring 1, accessed bits set so that only those checks refuse them: a check
 * kept from the last iret would let the second through); and a frame straddling from its stack
 * page into a page it has just made not present (#PF at that page). After each refused frame
 * an ordinary iret must still work.
 *
 * mode=1: after the warm irets, a ring-1 iret frame straddling into Xen's area. The flat ring-1
 * SS reaches over the read-only M2P at XEN_EDGE, so only the frame's page bounds keep the inline
 * path off it: EIP, CS and EFLAGS lie in our last page below XEN_EDGE (a frame of ours mapped
 * read-only there), the outer ESP and SS in the M2P. The next machine frame, also ours, holds a
 * decoy ESP and SS that would make the iret succeed were they read instead (a frame read past its
 * page). The full path reads the M2P's words and faults; the fault's bounce frame lands on our
 * read-only page below ESP, so Xen crashes us: test/hostile-iret expects that crash.
 */
#include "desc.h"
#include "hostile.h"

#define WARM 3000u
#define UC SEL_GDT(1, 3) /* our ring-3 code */
#define UD SEL_GDT(2, 3) /* our ring-3 data */

static u8 gdt[4096] BSS_PAGE;
static u8 stk[2 * 4096] BSS_PAGE; /* a ring-1 stack page, then one made not present */
static u32 frames[16];
static u8 edge[2 * 4096] BSS_PAGE; /* seen read-only below XEN_EDGE; the next frame, the decoy */

#define XEN_EDGE 0xFC000000u
#define EDGE_SLOT ((XEN_EDGE >> 22) - 1u) /* the L2 slot below Xen's first */

static long upd(u32 i, u32 limit, u32 access)
{
	struct desc d = mkseg(0, limit, access, FLG_G);
	return HYPERVISOR_update_descriptor(virt_to_mach(gdt) + i * 8, d.lo, d.hi);
}

/* iret with ESP at iret_esp (a frame written there), under trap_catch. */
static volatile u32 iret_esp;
__asm__(".pushsection .text\n"
	".globl iret_at\n"
	"iret_at:\n"
	"	movl iret_esp, %esp\n"
	"	movl $0x13, %eax\n" /* UD, for u_load_eax_ds */
	"	iret\n"
	".popsection\n");
extern void iret_at(void *);

/* The same, reading the frame's first word first (its page in the TLB, as a warm stack is). */
__asm__(".pushsection .text\n"
	".globl iret_touched_at\n"
	"iret_touched_at:\n"
	"	movl iret_esp, %esp\n"
	"	movl (%esp), %ecx\n"
	"	movl $0x13, %eax\n"
	"	iret\n"
	".popsection\n");
extern void iret_touched_at(void *);

static int to_user(u32 cs, u32 ss);

/* mode=1: the frame straddling into Xen's area (see the top); its iret must crash us. */
static void xen_edge_frame(void)
{
	volatile u32 *f = (volatile u32 *)(edge + 4096 - 12), *decoy = (volatile u32 *)(edge + 4096);
	volatile const u32 *m2p = (volatile const u32 *)XEN_EDGE;
	u32 l1 = spare_mfn(0), ss;
	int v;
	CHECK_EQ(virt_to_mfn(edge + 4096), virt_to_mfn(edge) + 1, "edge_frames_adjacent");
	f[0] = (u32)u_load_eax_ds;
	f[1] = UC;
	f[2] = 0x202;
	decoy[0] = USER_STACK_TOP;
	decoy[1] = UD;
	CHECK_EQ(fill_frame(l1, 0), 0, "edge_l1_zeroed");
	CHECK_EQ(mmu1(cur_l2_ma() + EDGE_SLOT * 4, (l1 << PAGE_SHIFT) | PTE_RW), 0, "edge_l1_in_l2");
	CHECK_EQ(HYPERVISOR_update_va_mapping(XEN_EDGE - 4096, (virt_to_mfn(edge) << PAGE_SHIFT) | PTE_RO,
					      UVMF_INVLPG),
		 0, "edge_page_read_only");
	CHECK_EQ(*(volatile u32 *)(XEN_EDGE - 12), (u32)u_load_eax_ds, "edge_page_holds_frame");
	/* The full path's outer SS is the M2P's second word: no usable ring-3 stack selector. */
	ss = m2p[1] & 0xffff;
	printk("M2P[0..1] %x %x\n", m2p[0], m2p[1]);
	CHECK(ss != UD && ss != FLAT_USER_SS, "m2p_word_not_a_stack");
	/* The GDT's page back in the TLB after the flushes above, as the warm irets had it. */
	CHECK_EQ((u32)to_user(UC, UD), 3u, "ordinary_iret_before");
	iret_esp = XEN_EDGE - 12;
	expect_crash("fault while writing a bounce frame");
	v = trap_catch(iret_touched_at, 0);
	restore_data_segs();
	check_fail("xen_edge_frame_crashed", "the iret came back with vector %d", v);
}

/* An iret to ring 3 through cs, ss; the vector that came back (3: the user code's int3). */
static int to_user(u32 cs, u32 ss)
{
	return run_user_sel(u_load_eax_ds, USER_STACK_TOP, cs, ss, UD);
}

/* The iret through cs, ss faults with vector and error. */
static void refused(const char *name, u32 cs, u32 ss, int vector, u32 error)
{
	CHECK_EQ((u32)to_user(cs, ss), (u32)vector, name);
	CHECK_EQ(last_trap.error_code, error, name);
}

/* The same, then an ordinary iret works. */
static void expect(const char *name, u32 cs, u32 ss, int vector, u32 error)
{
	refused(name, cs, ss, vector, error);
	CHECK_EQ((u32)to_user(UC, UD), 3u, "ordinary_iret_after");
}

void start_kernel(start_info_t *si)
{
	u32 i, bad = 0, p, mode;
	volatile u32 *f;
	hostile_init(si, "iret_frames");
	mode = cmdline_u32(si, "mode", 0);
	traps_init();
	CHECK_EQ(user_pages_init(), 0, "user_pages");

	memset(gdt, 0, sizeof(gdt));
	desc_put(gdt, 1, mkseg(0, 0xFBFFF, ACC_R3_CODE | 1u, FLG_G));
	desc_put(gdt, 2, mkseg(0, 0xFBFFF, ACC_R3_DATA | 1u, FLG_G));
	desc_put(gdt, 3, mkseg(0, 0xFBFFF, ACC_R1_CODE | 1u, FLG_G));
	desc_put(gdt, 4, mkseg(0, 0xFBFFF, ACC_R1_DATA | 1u, FLG_G));
	CHECK_EQ(remap(gdt, 1), 0, "gdt_read_only");
	frames[0] = virt_to_mfn(gdt);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 512), 0, "set_gdt");

	for (i = 0; i < WARM; i++)
		bad += to_user(UC, UD) != 3;
	CHECK_EQ(bad, 0, "warm_irets");
	CHECK_EQ((u32)to_user(FLAT_RING3_CS, FLAT_RING3_DS), 3u, "xen_ring3_selectors");
	if (mode == 1) {
		xen_edge_frame();
		checks_done();
	}

	/* Xen's ring-0 descriptors, the kernel's ring-1 CS at ring 3, selectors outside the GDT. */
	expect("xen_cs_rpl3", 0x0808 | 3, UD, 13, 0x0808);
	expect("xen_cs_rpl0", 0x0808, UD, 13, 0x0808);
	expect("xen_cs_rpl1", 0x0808 | 1, FLAT_KERNEL_DS, 13, 0x0808);
	expect("xen_ss_rpl3", UC, 0x0810 | 3, 13, 0x0810);
	expect("kernel_cs_rpl3", FLAT_KERNEL_CS | 2, UD, 13, FLAT_KERNEL_CS & ~3u);
	expect("kernel_ss_rpl3", UC, FLAT_KERNEL_DS | 2, 13, FLAT_KERNEL_DS & ~3u);
	expect("own_ring1_cs_rpl3", SEL_GDT(3, 3), UD, 13, SEL_GDT(3, 0));
	expect("own_ring1_ss_rpl3", UC, SEL_GDT(4, 3), 13, SEL_GDT(4, 0));
	expect("cs_beyond_gdt", 0xFFF8 | 3, UD, 13, 0xFFF8);
	expect("cs_in_no_ldt", SEL_LDT(1, 3), UD, 13, SEL_LDT(1, 0));
	expect("ss_in_no_ldt", UC, SEL_LDT(2, 3), 13, SEL_LDT(2, 0));

	/* Our descriptors rewritten between two irets: each iret reads them afresh. */
	CHECK_EQ(upd(1, 0xFBFFF, (ACC_R3_CODE & ~0x80u) | 1u), 0, "cs_not_present");
	refused("cs_not_present_seen", UC, UD, 11, UC & ~3u);
	CHECK_EQ(upd(1, 0xFBFFF, ACC_R1_CODE | 1u), 0, "cs_ring1");
	refused("cs_ring1_seen", UC, UD, 13, UC & ~3u);
	CHECK_EQ(upd(1, 0xFBFFF, ACC_R3_CODE | 1u), 0, "cs_back");
	CHECK_EQ((u32)to_user(UC, UD), 3u, "cs_back_seen");
	CHECK_EQ(upd(2, 0xFBFFF, (ACC_R3_DATA & ~0x80u) | 1u), 0, "ss_not_present");
	refused("ss_not_present_seen", UC, UD, 12, UD & ~3u);
	CHECK_EQ(upd(2, 0xFBFFF, ACC_R1_DATA | 1u), 0, "ss_ring1");
	refused("ss_ring1_seen", UC, UD, 13, UD & ~3u);
	CHECK_EQ(upd(2, 0xFBFFF, ACC_R3_DATA | 1u), 0, "ss_back");
	CHECK_EQ((u32)to_user(UC, UD), 3u, "ss_back_seen");

	/* A frame at the end of our stack page running into the next, made not present. */
	p = (u32)stk + 4096;
	CHECK_EQ(remap(stk + 4096, 0), 0, "stack_page_gone");
	for (i = 0; i < 2; i++) {
		/* EIP and CS below the page end, EFLAGS, ESP and SS beyond it (then all below). */
		f = (volatile u32 *)(p - (i == 0 ? 8 : 20));
		f[0] = (u32)u_load_eax_ds;
		f[1] = UC;
		if (i != 0) {
			f[2] = 0x202;
			f[3] = USER_STACK_TOP;
			f[4] = UD;
		}
		iret_esp = (u32)f;
		if (i == 0) {
			CHECK_EQ((u32)trap_catch(iret_at, 0), 14u, "straddling_frame");
			CHECK_EQ(last_trap.cr2, p, "straddling_frame_cr2");
			CHECK_EQ(last_trap.error_code, 0u, "straddling_frame_error");
		} else {
			CHECK_EQ((u32)trap_catch(iret_at, 0), 3u, "frame_at_page_end");
			restore_data_segs();
		}
	}
	CHECK_EQ((u32)to_user(UC, UD), 3u, "ordinary_iret_last");
	checks_done();
}
