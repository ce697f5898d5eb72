/*
 * rep movsb aimed out of bounds from a hot loop (test/hostile.test.ts 8i). tsxen runs a string
 * instruction that no compiled block holds from the region it is in (Cpu.regionStep) and
 * copies a page-bounded chunk at a time straight on physical memory when both pages are in the
 * TLB (src/cpu/ops/string.ts), else element by element. This guest warms a ring-1 loop whose
 * body is `rep movsb` over its own memory, then walks the copy into a page not present, a page
 * made read-only, and a page it tried to point at the victim's frame; and aims it at the M2P
 * (read-only), Xen's linear page tables and its GDT mapping (behind the segment limit). Each
 * must fault as the hardware does at the exact element (ECX, EDI and CR2 of that byte, the
 * bytes before it copied, none after) after exactly the passes before it.
 */
#include "hostile.h"

#define N 6000u
#define LEN 48u
#define LINEAR_PT 0xFEC00000u
#define PERDOMAIN 0xFF400000u

static u8 area[3 * PAGE_SIZE] BSS_PAGE; /* the copies' destination; page 2 the one changed */
static u8 src[PAGE_SIZE] BSS_PAGE;

volatile u32 lp_src, lp_dst, lp_stride, lp_len, lp_n, lp_sum;

/*
 * rm_loop: lp_n passes of { ESI := lp_src; EDI := lp_dst + pass * lp_stride; ECX := lp_len;
 * rep movsb (at rm_acc) }, the passes counted in lp_sum. EBX = passes left (in the trap frame
 * when it faults). A push and pop before the copy move ESP inside the block before it.
 */
__asm__(".pushsection .text\n"
	".globl rm_loop, rm_acc\n"
	"rm_loop:\n"
	"	pushl %ebx; pushl %esi; pushl %edi; pushl %ebp\n"
	"	cld\n"
	"	movl lp_n, %ebx; xorl %ebp, %ebp; xorl %edx, %edx\n"
	"1:\n"
	"	movl lp_src, %esi\n"
	"	movl lp_dst, %edi\n"
	"	addl %ebp, %edi\n"
	"	addl lp_stride, %ebp\n"
	"	movl lp_len, %ecx\n"
	"	pushl %edx; popl %edx\n"
	"rm_acc:\n"
	"	rep movsb\n"
	"	incl %edx\n"
	"	movl %edx, lp_sum\n"
	"	decl %ebx; jnz 1b\n"
	"	popl %ebp; popl %edi; popl %esi; popl %ebx; ret\n"
	".popsection\n");
extern char rm_acc[];
void rm_loop(void *);

/* Runs the loop under trap_catch: -1 when it ran to its end, else the vector. */
static int run(u32 s, u32 d, u32 stride, u32 n)
{
	lp_src = s;
	lp_dst = d;
	lp_stride = stride;
	lp_len = LEN;
	lp_n = n;
	lp_sum = 0;
	return trap_catch(rm_loop, 0);
}

/* The run faulted with vector v and error code err at rm_acc, after `passes` full passes, with
 * `left` bytes of that pass's copy not done and EDI at the faulting byte. */
static void check_fault(int got, int v, u32 err, u32 passes, u32 left, u32 edi, const char *name)
{
	CHECK_EQ(got, v, name);
	CHECK_EQ(last_trap.error_code, err, name);
	CHECK_EQ(last_trap.eip, (u32)rm_acc, name);
	CHECK_EQ(lp_n - last_trap.ebx, passes, name);
	CHECK_EQ(last_trap.ecx, left, name);
	CHECK_EQ(last_trap.edi, edi, name);
}

/* area[from, to) holds src's bytes as the walking copy left them (pass p at p * LEN). */
static int walked(u32 from, u32 to)
{
	u32 i;
	for (i = from; i < to; i++)
		if (area[i] != src[i % LEN])
			return 0;
	return 1;
}

static long map_page2(u32 mfn, u32 flags)
{
	return HYPERVISOR_update_va_mapping((u32)area + 2 * PAGE_SIZE, mfn ? (mfn << PAGE_SHIFT) | flags : 0,
					    UVMF_INVLPG);
}

void start_kernel(start_info_t *si)
{
	/* The walk's pass that reaches page 2, and the bytes of it that fit before. */
	const u32 end = 2 * PAGE_SIZE, pass = end / LEN, fit = end - pass * LEN;
	u32 i, vmfn, own, ok = 1;
	hostile_init(si, "rep_movs");
	vmfn = cmdline_u32(si, "vmfn", 0);
	own = virt_to_mfn(area + 2 * PAGE_SIZE);
	for (i = 0; i < PAGE_SIZE; i++)
		src[i] = (u8)(i * 7 + 1);

	/* Hot: three runs of N passes over our own memory (the same 48 bytes each pass). */
	for (i = 0; i < 3; i++)
		ok &= run((u32)src, (u32)area + 100, 0, N) == -1 && lp_sum == N;
	CHECK(ok, "warm");
	CHECK_EQ(area[100 + LEN - 1], src[LEN - 1], "warm_copied");

	/* The walk into page 2, not present: #PF (write, not present) at its first byte. */
	memset(area, 0, sizeof(area));
	CHECK_EQ(map_page2(0, 0), 0, "page2_unmapped");
	check_fault(run((u32)src, (u32)area, LEN, N), 14, 2, pass, LEN - fit, (u32)area + end,
		    "walk_into_absent_page");
	CHECK_EQ(last_trap.cr2, (u32)area + end, "absent_page_cr2");
	CHECK(walked(0, end), "absent_page_bytes_before_copied");

	/* Page 2 read-only: #PF (write, present), nothing written there. Read first, so its
	 * translation is cached for reads (a copy must still not write through it). */
	CHECK_EQ(map_page2(own, PTE_RO), 0, "page2_read_only");
	CHECK_EQ(area[end], 0, "read_only_page_readable");
	check_fault(run((u32)src, (u32)area, LEN, N), 14, 3, pass, LEN - fit, (u32)area + end,
		    "walk_into_read_only_page");
	CHECK_EQ(area[end], 0, "read_only_page_untouched");

	/* Page 2 pointed at the victim's frame: refused; the walk then runs into our own frame. */
	CHECK(map_page2(vmfn, PTE_RW) != 0, "victim_frame_refused");
	CHECK_EQ(map_page2(own, PTE_RW), 0, "page2_writable_again");
	CHECK_EQ(run((u32)src, (u32)area, LEN, pass + 10), -1, "walk_into_own_page");
	CHECK(walked(0, (pass + 10) * LEN), "own_page_bytes_copied");

	/* Xen's area: the M2P (inside the limit, read-only to us), the linear page tables and the
	 * GDT mapping (behind the limit, #GP), as destination and as source. */
	check_fault(run((u32)src, HYPERVISOR_VIRT_START, 0, N), 14, 3, 0, LEN, HYPERVISOR_VIRT_START,
		    "into_m2p");
	check_fault(run((u32)src, LINEAR_PT, 0, N), 13, 0, 0, LEN, LINEAR_PT, "into_linear_page_tables");
	check_fault(run(PERDOMAIN, (u32)area, 0, N), 13, 0, 0, LEN, (u32)area, "from_gdt_mapping");
	CHECK_EQ(run((u32)src, (u32)area, 0, N), -1, "hot_again");
	checks_done();
}
