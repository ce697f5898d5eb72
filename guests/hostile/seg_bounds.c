/*
 * Segment limits under compiled code (test/hostile.test.ts 8h). In x86_32 PV, ring 1 may touch
 * supervisor pages, so Xen's area (0xFC400000 up: the linear page tables, the per-domain GDT
 * mapping) is kept from the guest kernel only by its segments' limits (check_descriptor ends
 * every guest segment at 0xFC3FFFFF). tsxen's wasm blocks leave a segment's checks out, or
 * keep only its upper bound, when the segment was flat or zero-based at compile time (an entry
 * guard re-checks it), and load segments and run a same-level iret inline. This guest warms
 * hot ring-1 loops over its own memory, then turns them on Xen's area, shrinks and moves the
 * segments they use (update_descriptor, with and without a reload), loads Xen's and refused
 * selectors in them, and irets to Xen's code selector, past CS's limit and with IOPL 3.
 * Each must end in the fault the hardware gives (#GP/#NP/#PF with the error code, at the
 * instruction) after exactly the passes before it, never a read or write of Xen's area.
 */
#include "desc.h"
#include "hostile.h"

#define N 6000u
#define LINEAR_PT 0xFEC00000u
#define LINEAR_L2 0xFEFFB000u
#define PERDOMAIN 0xFF400000u
#define SEG_END 0xFC400000u /* the first offset past every guest segment */

static u8 ldt[4096] BSS_PAGE;  /* our LDT (read-only once in use) */
static u8 gdt[4096] BSS_PAGE;  /* our GDT (the same) */
static u32 frames[16];
static u8 buf[8192] BSS_PAGE;  /* what the loops read and write */

/* The loops' arguments and results (globals: the loops are asm, run under trap_catch). */
volatile u32 lp_sel, lp_base, lp_idx, lp_n, lp_sum, lp_val, lp_cs0, lp_cs, lp_eip, lp_flags;
/* At the pass where ECX = lp_k (0: none), seg_read and seg_reload first make the hypercall
 * update_descriptor(lp_ma, lp_dlo, lp_dhi), its result in lp_rc. */
volatile u32 lp_k, lp_ma, lp_dlo, lp_dhi, lp_rc;

#define STR_(x) #x
#define STR(x) STR_(x)
#define MID_UPDATE                                                                         \
	"	cmpl lp_k, %ecx; jne 4f\n"                                                  \
	"	pushl %ebx; pushl %ecx; pushl %edx\n"                                       \
	"	movl $" STR(__HYPERVISOR_update_descriptor) ", %eax\n"                      \
	"	movl lp_ma, %ebx; movl lp_dlo, %ecx; movl lp_dhi, %edx; int $0x82\n"       \
	"	movl %eax, lp_rc; popl %edx; popl %ecx; popl %ebx\n"                        \
	"4:\n"

/*
 * seg_read:  ES := lp_sel; n passes of sum += ES:[lp_base + lp_idx*4]      (access at sr_acc)
 * seg_write: ES := lp_sel; n passes of ES:[lp_base + lp_idx*4] := pass     (access at sw_acc)
 * seg_byte:  ES := lp_sel; n passes of sum += byte ES:[lp_base + lp_idx]  (access at sb_acc)
 * seg_reload: n passes of { ES := lp_sel; sum += ES:[lp_base + lp_idx*4] } (mov at rl_mov,
 *            access at rl_acc): the segment load inside the hot loop.
 * seg_iret:  n passes of a same-level iret to lp_cs0:next with EFLAGS | lp_flags (at ir_iret);
 *            the last pass irets to lp_cs:lp_eip; the EFLAGS seen after it in lp_val.
 * All leave ECX = passes left (in the trap frame when they fault) and the sum in lp_sum.
 */
__asm__(".pushsection .text\n"
	".globl seg_read, seg_write, seg_byte, seg_reload, seg_iret\n"
	".globl sr_acc, sw_acc, sb_acc, rl_mov, rl_acc, ir_iret\n"
	"seg_read:\n"
	"	pushl %ebx; pushl %esi; pushl %edi\n"
	"	movl lp_sel, %eax; movl %eax, %es\n"
	"	movl lp_base, %ebx; movl lp_idx, %esi; movl lp_n, %ecx; xorl %edi, %edi\n"
	"1:\n" MID_UPDATE
	"sr_acc:\n"
	"	addl %es:(%ebx,%esi,4), %edi\n"
	"	movl %edi, lp_sum\n"
	"	decl %ecx; jnz 1b\n"
	"	popl %edi; popl %esi; popl %ebx; ret\n"
	"seg_write:\n"
	"	pushl %ebx; pushl %esi; pushl %edi\n"
	"	movl lp_sel, %eax; movl %eax, %es\n"
	"	movl lp_base, %ebx; movl lp_idx, %esi; movl lp_n, %ecx; xorl %edi, %edi\n"
	"1:\n"
	"sw_acc:\n"
	"	movl %ecx, %es:(%ebx,%esi,4)\n"
	"	incl %edi; movl %edi, lp_sum\n"
	"	decl %ecx; jnz 1b\n"
	"	popl %edi; popl %esi; popl %ebx; ret\n"
	"seg_byte:\n"
	"	pushl %ebx; pushl %esi; pushl %edi\n"
	"	movl lp_sel, %eax; movl %eax, %es\n"
	"	movl lp_base, %ebx; movl lp_idx, %esi; movl lp_n, %ecx; xorl %edi, %edi\n"
	"1:\n"
	"sb_acc:\n"
	"	movzbl %es:(%ebx,%esi), %eax\n"
	"	addl %eax, %edi; movl %edi, lp_sum\n"
	"	decl %ecx; jnz 1b\n"
	"	popl %edi; popl %esi; popl %ebx; ret\n"
	"seg_reload:\n"
	"	pushl %ebx; pushl %esi; pushl %edi\n"
	"	movl lp_sel, %edx\n"
	"	movl lp_base, %ebx; movl lp_idx, %esi; movl lp_n, %ecx; xorl %edi, %edi\n"
	"1:\n" MID_UPDATE
	"rl_mov:\n"
	"	movl %edx, %es\n"
	"rl_acc:\n"
	"	addl %es:(%ebx,%esi,4), %edi\n"
	"	movl %edi, lp_sum\n"
	"	decl %ecx; jnz 1b\n"
	"	popl %edi; popl %esi; popl %ebx; ret\n"
	"seg_iret:\n"
	"	pushl %ebx; pushl %esi\n"
	"	movl lp_cs0, %ebx; movl lp_flags, %esi; movl lp_n, %ecx\n"
	"1:\n"
	"	pushfl; orl %esi, (%esp)\n"
	"	cmpl $1, %ecx; jne 3f\n"
	"	pushl lp_cs; pushl lp_eip; jmp ir_iret\n"
	"3:	pushl %ebx; pushl $2f\n"
	"ir_iret:\n"
	"	iret\n"
	"2:	incl lp_sum\n"
	"	decl %ecx; jnz 1b\n"
	"	pushfl; popl lp_val\n"
	"	popl %esi; popl %ebx; ret\n"
	".popsection\n");
extern char sr_acc[], sw_acc[], sb_acc[], rl_mov[], rl_acc[], ir_iret[];
void seg_read(void *), seg_write(void *), seg_byte(void *), seg_reload(void *), seg_iret(void *);

/* Runs a loop with these arguments under trap_catch: -1 when it ran to its end, else the vector. */
static int run(void (*loop)(void *), u32 sel, u32 base, u32 idx, u32 n)
{
	lp_sel = sel;
	lp_base = base;
	lp_idx = idx;
	lp_n = n;
	lp_sum = 0;
	return trap_catch_flat(loop, 0);
}

/* The run faulted with vector v and error code err at eip, after `passes` full passes. */
static void check_fault(int got, int v, u32 err, const char *eip, u32 passes, const char *name)
{
	CHECK_EQ(got, v, name);
	CHECK_EQ(last_trap.error_code, err, name);
	CHECK_EQ(last_trap.eip, (u32)eip, name);
	CHECK_EQ(lp_n - last_trap.ecx, passes, name);
}

/* Warms a loop over our own buffer (three runs of N passes), checking each run's result. */
static void warm(void (*loop)(void *), u32 sel, u32 base, u32 idx, u32 want, const char *name)
{
	u32 i, ok = 1;
	for (i = 0; i < 3; i++)
		ok &= run(loop, sel, base, idx, N) == -1 && lp_sum == want;
	CHECK(ok, name);
}

static long upd(u8 *table, u32 i, struct desc d)
{
	return HYPERVISOR_update_descriptor(virt_to_mach(table) + i * 8, d.lo, d.hi);
}

/*
 * The loops over a segment of ours (entry 1 of table, selector sel): zero-based with a 1 MiB
 * limit and hot, then shrunk, moved, expand-down, not present, and restored under them.
 */
static void own_segment(u8 *table, u32 sel)
{
	u32 lim = ((u32)buf + 0x100000) >> 12;
	CHECK_EQ(upd(table, 1, mkseg(0, lim, ACC_R1_DATA, FLG_G)), 0, "seg_1mib");
	warm(seg_read, sel, (u32)buf, 1, N * 5, "own_read_warm");
	warm(seg_reload, sel, (u32)buf, 1, N * 5, "own_reload_warm");
	/* Shrunk to end below buf (both loops load ES before their first access, so both see it);
	 * still zero-based, so a block that kept only the upper bound must read it anew. */
	CHECK_EQ(upd(table, 1, mkseg(0, ((u32)buf >> 12) - 1, ACC_R1_DATA, FLG_G)), 0, "seg_shrunk");
	check_fault(run(seg_read, sel, (u32)buf, 1, N), 13, 0, sr_acc, 0, "shrunk_read");
	check_fault(run(seg_reload, sel, (u32)buf, 1, N), 13, 0, rl_acc, 0, "shrunk_reload");
	/* Moved: base at buf, limit two pages: idx 1025 reads buf's second page (7), not the
	 * address 4100; in seg_reload the segment changes inside the block, at its load. */
	CHECK_EQ(upd(table, 1, mkseg((u32)buf, 1, ACC_R1_DATA, FLG_G)), 0, "seg_moved");
	CHECK_EQ(run(seg_read, sel, 0, 1025, N), -1, "moved_read_runs");
	CHECK_EQ(lp_sum, N * 7, "moved_read_uses_base");
	check_fault(run(seg_read, sel, 0, 2048, N), 13, 0, sr_acc, 0, "moved_read_past_limit");
	CHECK_EQ(run(seg_reload, sel, 0, 1025, N), -1, "moved_reload_runs");
	CHECK_EQ(lp_sum, N * 7, "moved_reload_uses_base");
	/* Expand-down (offsets above the limit valid): offset 0 faults. */
	CHECK_EQ(upd(table, 1, mkseg(0, 0, ACC_R1_DATA_DOWN, FLG_G)), 0, "seg_expand_down");
	check_fault(run(seg_reload, sel, 0, 0, N), 13, 0, rl_acc, 0, "expand_down_offset_0");
	/* Not present: the load in the hot loop faults #NP with the selector. */
	CHECK_EQ(upd(table, 1, mkseg(0, lim, ACC_R1_DATA & 0x7F, FLG_G)), 0, "seg_not_present");
	check_fault(run(seg_reload, sel, (u32)buf, 1, N), 11, sel & ~3u, rl_mov, 0,
		    "not_present_load");
	/* Shrunk from inside the hot loops, at pass N/2 (ES holding sel): Xen's return to the
	 * guest reloads the data segments, so both loops fault at that pass's access. */
	lp_ma = virt_to_mach(table) + 8;
	lp_dlo = mkseg(0, ((u32)buf >> 12) - 1, ACC_R1_DATA, FLG_G).lo;
	lp_dhi = mkseg(0, ((u32)buf >> 12) - 1, ACC_R1_DATA, FLG_G).hi;
	CHECK_EQ(upd(table, 1, mkseg(0, lim, ACC_R1_DATA, FLG_G)), 0, "seg_big_again");
	lp_k = N / 2;
	check_fault(run(seg_reload, sel, (u32)buf, 1, N), 13, 0, rl_acc, N / 2, "midloop_shrink_reload");
	CHECK_EQ(lp_rc, 0, "midloop_update_reload");
	CHECK_EQ(upd(table, 1, mkseg(0, lim, ACC_R1_DATA, FLG_G)), 0, "seg_big_once_more");
	check_fault(run(seg_read, sel, (u32)buf, 1, N), 13, 0, sr_acc, N / 2, "midloop_shrink_read");
	CHECK_EQ(lp_rc, 0, "midloop_update_read");
	lp_k = 0;
	/* Back to 1 MiB: the same loop runs again. */
	CHECK_EQ(upd(table, 1, mkseg(0, lim, ACC_R1_DATA, FLG_G)), 0, "seg_restored");
	CHECK_EQ(run(seg_reload, sel, (u32)buf, 1, N), -1, "restored_runs");
	CHECK_EQ(lp_sum, N * 5, "restored_sum");
}

void start_kernel(start_info_t *si)
{
	u32 l2slot = 5, l2before, ldt_sel = SEL_LDT(1, 1);
	volatile u32 *words = (volatile u32 *)buf;
	hostile_init(si, "seg_bounds");
	l2before = cur_l2()[l2slot];
	memset(buf, 0, sizeof(buf));
	words[1] = 5;
	words[1024 + 1] = 7; /* the second page: where a moved segment's base lands */

	/* 1. DS-like flat ring-1 segment (zero-based, limit 0xFC3FFFFF): reads, writes, bytes. */
	CHECK_EQ(seg_limit(FLAT_KERNEL_DS), SEG_END - 1, "kernel_ds_ends_below_xen");
	warm(seg_read, FLAT_KERNEL_DS, (u32)buf, 1, N * 5, "read_warm");
	/* The same compiled loop, its index now on Xen's linear page tables (our own L2 through
	 * the linear map), the per-domain GDT mapping, and the dword crossing the limit. */
	check_fault(run(seg_read, FLAT_KERNEL_DS, LINEAR_L2, l2slot, N), 13, 0, sr_acc, 0,
		    "read_own_l2_through_linear_map");
	check_fault(run(seg_read, FLAT_KERNEL_DS, LINEAR_PT, 0, N), 13, 0, sr_acc, 0,
		    "read_linear_page_tables");
	check_fault(run(seg_read, FLAT_KERNEL_DS, PERDOMAIN, 0, N), 13, 0, sr_acc, 0, "read_gdt_mapping");
	check_fault(run(seg_read, FLAT_KERNEL_DS, SEG_END - 3, 0, N), 13, 0, sr_acc, 0,
		    "read_dword_crossing_limit");
	/* The last dword inside the limit passes the segment: the M2P's unmapped tail, a #PF. */
	CHECK_EQ(run(seg_read, FLAT_KERNEL_DS, SEG_END - 4, 0, N), 14, "read_last_dword_pages");
	CHECK_EQ(last_trap.cr2, SEG_END - 4, "read_last_dword_cr2");
	warm(seg_write, FLAT_KERNEL_DS, (u32)buf, 2, N, "write_warm");
	CHECK_EQ(words[2], 1, "write_last_value");
	check_fault(run(seg_write, FLAT_KERNEL_DS, LINEAR_L2, l2slot, N), 13, 0, sw_acc, 0,
		    "write_own_l2_through_linear_map");
	CHECK_EQ(cur_l2()[l2slot], l2before, "own_l2_unchanged");
	check_fault(run(seg_write, FLAT_KERNEL_DS, PERDOMAIN, FIRST_RESERVED_GDT_ENTRY * 2 + 1, N), 13,
		    0, sw_acc, 0, "write_gdt_mapping");
	/* Inside the limit, the M2P is mapped read-only: a #PF (present, write). */
	CHECK_EQ(run(seg_write, FLAT_KERNEL_DS, HYPERVISOR_VIRT_START, 0, N), 14, "write_m2p");
	CHECK_EQ(last_trap.error_code, 3, "write_m2p_read_only");
	warm(seg_byte, FLAT_KERNEL_DS, (u32)buf, 4, N * 5, "byte_warm");
	check_fault(run(seg_byte, FLAT_KERNEL_DS, SEG_END, 0, N), 13, 0, sb_acc, 0, "byte_past_limit");
	CHECK_EQ(run(seg_byte, FLAT_KERNEL_DS, SEG_END - 1, 0, N), 14, "byte_at_limit_pages");
	CHECK_EQ(last_trap.cr2, SEG_END - 1, "byte_at_limit_cr2");

	/* 2. Our own segments, in the LDT and in a GDT of ours: hot, then shrunk and moved. */
	memset(ldt, 0, sizeof(ldt));
	CHECK_EQ(remap(ldt, 1), 0, "ldt_read_only");
	CHECK_EQ(set_ldt((u32)ldt, 8), 0, "ldt_set");
	own_segment(ldt, SEL_LDT(1, 1));
	memset(gdt, 0, sizeof(gdt));
	CHECK_EQ(remap(gdt, 1), 0, "gdt_read_only");
	frames[0] = virt_to_mfn(gdt);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, MIN_GDT_ENTRIES), 0, "gdt_set");
	own_segment(gdt, SEL_GDT(1, 1));

	/* 3. The hot reload loop given selectors ring 1 may not load: Xen's ring-0 data (RPL 1),
	 * Xen's code, past the GDT, an LDT entry past the LDT, a null selector then an access. */
	check_fault(run(seg_reload, XEN_RING0_DS | 1, (u32)buf, 1, N), 13, XEN_RING0_DS, rl_mov, 0,
		    "xen_ds_refused");
	check_fault(run(seg_reload, XEN_RING0_CS | 1, (u32)buf, 1, N), 13, XEN_RING0_CS, rl_mov, 0,
		    "xen_cs_refused");
	check_fault(run(seg_reload, SEL_GDT(8191, 1), (u32)buf, 1, N), 13, SEL_GDT(8191, 0), rl_mov, 0,
		    "past_gdt_refused");
	check_fault(run(seg_reload, SEL_LDT(200, 1), (u32)buf, 1, N), 13, SEL_LDT(200, 0), rl_mov, 0,
		    "past_ldt_refused");
	check_fault(run(seg_reload, 0, (u32)buf, 1, N), 13, 0, rl_acc, 0, "null_then_access");
	CHECK_EQ(set_ldt(0, 0), 0, "ldt_off");
	check_fault(run(seg_reload, ldt_sel, (u32)buf, 1, N), 13, ldt_sel & ~3u, rl_mov, 0,
		    "ldt_gone_refused");

	/* 4. A hot same-level iret: to Xen's code selector, past CS's limit, and asking IOPL 3. */
	lp_cs0 = lp_cs = FLAT_KERNEL_CS;
	lp_flags = 0;
	lp_eip = (u32)ir_iret + 1;
	warm(seg_iret, 0, 0, 0, N, "iret_warm");
	lp_cs = XEN_RING0_CS | 1;
	check_fault(run(seg_iret, 0, 0, 0, N), 13, XEN_RING0_CS, ir_iret, N - 1, "iret_to_xen_cs");
	lp_cs = FLAT_KERNEL_CS;
	lp_eip = SEG_END;
	check_fault(run(seg_iret, 0, 0, 0, N), 13, 0, ir_iret, N - 1, "iret_past_cs_limit");
	lp_eip = (u32)ir_iret + 1;
	lp_flags = 0x3000;
	CHECK_EQ(run(seg_iret, 0, 0, 0, N), -1, "iret_iopl3_runs");
	CHECK_EQ(lp_val & 0x3000, 0, "iret_iopl_unchanged");
	checks_done();
}
