/*
 * The wasm chain entered again at a #PF handler after a fault bounced in place
 * (test/hostile-pfreenter.test.ts; src/cpu/wasm/backend.ts chainEntry's `again`): the
 * handler lies on another page than the faulting block, at the same page offset (0) as the
 * loop's head on the faulting page, so a chain that took the handler for its own page's
 * block would run the loop's head instead. The handler rewrites the faulting block's
 * immediate every 128th fault (SMC on the chain's page) before it returns past the fault.
 * Three handler pages, PASSES faults each:
 *   hot:  the handler's page compiled and in the TLB (the chain hops there);
 *   cold: its TLB entry dropped before every fault (update_va_mapping with UVMF_INVLPG in the
 *         loop): the hop finds no translation;
 *   smc:  the handler also stores into its own page (after its code), so that page's code and
 *         map are dropped at every fault: the hop finds no map.
 * Each: the loop's sum of the immediates it ran (as rewritten), the faults, the handler's
 * checks of CR2, error code and faulting EIP, and the immediate left in the code.
 */
#include "desc.h"
#include "hostile.h"

#define PASSES 1024u

static u8 hole[PAGE_SIZE] BSS_PAGE;
volatile u32 pr_faults, pr_bad, pr_want_cr2;

/* pr_loop(n, va, cold_va, cold_pte), its loop's head at offset 0 of page A: n passes of (the TLB entry of cold_va
 * dropped when nonzero) ebx = imm, esi += ebx, the faulting rmw at va; returns ESI. */
__asm__(".pushsection .text\n"
	".globl pr_loop, pr_top, pr_imm, pr_at, pr_after\n"
	"pr_loop:\n"
	"	pushl %ebx\n"
	"	pushl %esi\n"
	"	pushl %edi\n"
	"	pushl %ebp\n"
	"	movl 20(%esp), %ebp\n"
	"	movl 24(%esp), %edi\n"
	"	xorl %esi, %esi\n"
	"	jmp pr_top\n"
	".balign 4096\n"
	"pr_top:\n"
	"1:	movl 28(%esp), %ebx\n"
	"	testl %ebx, %ebx\n"
	"	jz 2f\n"
	"	movl 32(%esp), %ecx\n"
	"	movl $2, %edx\n" /* UVMF_INVLPG */
	"	movl $14, %eax\n" /* __HYPERVISOR_update_va_mapping */
	"	int $0x82\n"
	"2:\n"
	"pr_imm:	movl $0x01020304, %ebx\n"
	"	addl %ebx, %esi\n"
	"pr_at:	addl $7, (%edi)\n"
	"pr_after:	decl %ebp\n"
	"	jnz 1b\n"
	"	movl %esi, %eax\n"
	"	popl %ebp\n"
	"	popl %edi\n"
	"	popl %esi\n"
	"	popl %ebx\n"
	"	ret\n"
	/* The handlers, each at offset 0 of its own page. Xen's frame: CR2, error code, EIP, CS,
	 * EFLAGS. Every 128th fault adds 0x101 to the loop's immediate; back past the fault. */
	".macro PR_HANDLER name, own\n"
	"	.balign 4096\n"
	"	.globl \\name\n"
	"\\name:\n"
	"	pushl %eax\n"
	"	movl pr_want_cr2, %eax\n"
	"	cmpl %eax, 4(%esp)\n"
	"	jne 8f\n"
	"	cmpl $2, 8(%esp)\n" /* W, not present, ring 1 */
	"	jne 8f\n"
	"	cmpl $pr_at, 12(%esp)\n"
	"	je 9f\n"
	"8:	incl pr_bad\n"
	"9:	incl pr_faults\n"
	"	.if \\own\n"
	"	incl \\name\\()_word\n"
	"	.endif\n"
	"	testl $127, pr_faults\n"
	"	jnz 7f\n"
	"	addl $0x101, pr_imm + 1\n"
	"7:	movl $pr_after, 12(%esp)\n"
	"	popl %eax\n"
	"	addl $8, %esp\n"
	"	iret\n"
	"	.if \\own\n"
	"	.balign 64\n"
	"	.globl \\name\\()_word\n"
	"\\name\\()_word: .long 0\n"
	"	.endif\n"
	".endm\n"
	"PR_HANDLER pr_hot, 0\n"
	"PR_HANDLER pr_cold, 0\n"
	"PR_HANDLER pr_smc, 1\n"
	".balign 4096\n"
	".popsection\n");
u32 pr_loop(u32 n, u32 va, u32 cold_va, u32 cold_pte);
extern char pr_top[], pr_imm[], pr_at[], pr_after[], pr_hot[], pr_cold[], pr_smc[];
extern volatile u32 pr_smc_word;

static u32 imm_now(void)
{
	return *(volatile u32 *)(pr_imm + 1);
}

static long pf_gate(const char *handler)
{
	trap_info_t t[2];
	memset(t, 0, sizeof(t));
	t[0].vector = 14;
	t[0].cs = FLAT_KERNEL_CS;
	t[0].address = (u32)handler;
	return HYPERVISOR_set_trap_table(t);
}

/* One handler page's PASSES faults: 5 checks; its RES line for the test to compare. */
static void variant(const char *name, const char *handler, int cold)
{
	u32 imm = imm_now(), want = 0, i, sum;
	for (i = 1; i <= PASSES; i++) {
		want += imm;
		if (i % 128 == 0)
			imm += 0x101;
	}
	pr_faults = 0;
	pr_bad = 0;
	pr_want_cr2 = (u32)hole;
	CHECK_EQ(pf_gate(handler), 0, "pf_gate");
	sum = pr_loop(PASSES, (u32)hole, cold ? (u32)handler : 0,
		      cold ? (virt_to_mfn(handler) << PAGE_SHIFT) | 7 : 0);
	traps_init();
	CHECK_EQ(sum, want, "sum_of_rewritten_immediates");
	CHECK_EQ(pr_faults, PASSES, "faults");
	CHECK_EQ(pr_bad, 0, "fault_frames");
	CHECK_EQ(imm_now(), imm, "immediate_left");
	printk("RES %s sum=%08x imm=%08x faults=%u\n", name, sum, imm_now(), pr_faults);
}

void start_kernel(start_info_t *si)
{
	hostile_init(si, "pf_reenter");
	CHECK_EQ(remap(hole, 0), 0, "hole_unmapped");
	CHECK_EQ((u32)pr_top & 0xfff, (u32)pr_hot & 0xfff, "handler_at_the_loop_heads_offset");
	variant("hot", pr_hot, 0);
	variant("cold", pr_cold, 1);
	variant("smc", pr_smc, 0);
	CHECK_EQ(pr_smc_word, PASSES, "smc_handler_stores");
	checks_done();
}
