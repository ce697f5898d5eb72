/*
 * An iret that leaves ring 1 for ring 3 must end a chain of compiled blocks
 * (test/exits-iretchain.test.ts). tsxen's wasm chains run blocks ending in iret and go on at
 * the return address when the iret stays at its level and CS; one that changes CPL moves the
 * fetch window, and the chain must stop there: the blocks after it would run with ring 1's
 * access masks. A ring-3 loop takes a #PF at a not-present page each pass; the ring-1 handler
 * (head.S trap_common, whose exit block ends in iret) steps over the load and irets back to
 * ring 3, where the next instruction reads a word at EBX. Warm, EBX is a user page; then EBX
 * is a page of ours made supervisor-only, which ring 1 has just read (its TLB entry is warm):
 * each run must take the #PF at that read (CR2 the page, error code 5: user, present, read),
 * never add the page's marker to the sum.
 */
#include "hostile.h"

#define N 5000u
#define ROUNDS 4
#define PTE_SUP (_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY) /* no US bit */
#define MARK 0x5a5a1234u
#define UNMAPPED 0xBFFFF000u

static u8 sup[PAGE_SIZE] BSS_PAGE;
static u32 upage[PAGE_SIZE / 4] __attribute__((aligned(PAGE_SIZE), section(".user.data")));
/* What the ring-3 loop reads, and its sum so far (ring 3 reads and writes them). */
volatile u32 u_ring_addr __attribute__((section(".user.data")));
volatile u32 u_ring_sum __attribute__((section(".user.data")));

/* Ring 3: EAX passes of a faulting load (stepped over by the #PF hook) and a read at
 * u_ring_addr added to the sum; int3 at the end. */
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl u_ring_loop, u_ring_pf, u_ring_read\n"
	"u_ring_loop:\n"
	"	movl u_ring_addr, %ebx\n"
	"	movl $0xBFFFF000, %edi\n"
	"	xorl %esi, %esi\n"
	"1:\n"
	"u_ring_pf:\n"
	"	movl (%edi), %ecx\n"
	"u_ring_read:\n"
	"	movl (%ebx), %edx\n"
	"	addl %edx, %esi\n"
	"	movl %esi, u_ring_sum\n"
	"	decl %eax\n"
	"	jnz 1b\n"
	"	int3\n"
	".popsection\n");
extern char u_ring_loop[], u_ring_pf[], u_ring_read[];

static int pf_hook(struct trap_frame *f)
{
	if (f->eip != (u32)u_ring_pf)
		return 0;
	f->eip = (u32)u_ring_read;
	return 1;
}

void start_kernel(start_info_t *si)
{
	hostile_init(si, "iret_ring");
	CHECK_EQ(user_pages_init(), 0, "setup_user_pages");
	upage[0] = 1;
	*(volatile u32 *)sup = MARK;
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)sup, (virt_to_mfn(sup) << PAGE_SHIFT) | PTE_SUP, UVMF_INVLPG),
		 0, "setup_sup_page");
	trap_hooks[14] = pf_hook;
	u32 warm_ok = 0, pf_ok = 0, never_read = 0;
	for (u32 r = 0; r < ROUNDS; r++) {
		u_ring_addr = (u32)upage;
		u_ring_sum = 0;
		if (run_user((u32)u_ring_loop, USER_STACK_TOP, N) == 3 && u_ring_sum == N)
			warm_ok++;
		u_ring_addr = (u32)sup;
		u_ring_sum = 0;
		/* Ring 1 reads it: the TLB holds a supervisor entry for the page. */
		CHECK_EQ(*(volatile u32 *)sup, MARK, "ring1_reads_sup");
		int v = run_user((u32)u_ring_loop, USER_STACK_TOP, N);
		if (v == 14 && last_trap.cr2 == (u32)sup && last_trap.error_code == 5 &&
		    last_trap.eip == (u32)u_ring_read && (last_trap.cs & 3) == 3)
			pf_ok++;
		else
			printk("round %u: vector %d cr2 %x err %x eip %x\n", r, v, last_trap.cr2, last_trap.error_code,
			       last_trap.eip);
		if (u_ring_sum == 0)
			never_read++;
	}
	trap_hooks[14] = 0;
	CHECK_EQ(warm_ok, ROUNDS, "warm_loops_ran");
	CHECK_EQ(pf_ok, ROUNDS, "ring3_read_of_sup_page_faults");
	CHECK_EQ(never_read, ROUNDS, "sup_page_never_read_from_ring3");
	checks_done();
}
