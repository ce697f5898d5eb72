/*
 * The #PF's error code and CR2, combination by combination (test/hostile-pfcodes.test.ts).
 * The page walk computes the W and U bits at the fault only (cpu.ts translate, 6677e06), in the
 * interpreter and in compiled blocks alike. Xen passes the hardware's code to the guest
 * unchanged: P (a present page refused), W (a write), U (from ring 3), never a reserved bit
 * (no PSE or PAE here); CR0.WP is on, so ring 1 cannot write a read-only page either.
 * One L1 of ours is hooked at three L2 slots, with the PDE user and writable, user and
 * read-only, and supervisor-only; a fourth slot is empty. Its entries:
 *   0 RW user   1 not present   2 RO user   3 RW supervisor   4 RO supervisor
 *   5 RW user   6 RO user
 * Each case (a read, a write or an instruction fetch, from ring 1 or ring 3; page-crossing
 * ones from entry 0 into 1 and from 5 into 6) runs REPS times, so that its code is hot and
 * compiled, and must fault with the code and CR2 Xen's rules give (or not fault) every time.
 */
#include "desc.h"
#include "hostile.h"

#define SLOT 0x108u
#define REPS 60u
#define VA(s, e) ((((SLOT) + (s)) << 22) + (e) * PAGE_SIZE)
#define NONE 0xFFFFFFFFu
#define RD 0
#define WR 1
#define EX 2

/* Ring 3: EAX is the address; a read, a write or a crossing word of each, then int3. */
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl u_rd, u_wr\n"
	"u_rd:	movl (%eax), %ebx\n"
	"	int3\n"
	"u_wr:	movl %eax, (%eax)\n"
	"	int3\n"
	".popsection\n");
extern char u_rd[], u_wr[];

struct pcase {
	const char *name;
	u32 va, kind, ring, err, cr2; /* err NONE: no fault */
};

static u8 l1_page[4096] BSS_PAGE;
static u8 data[7][4096] BSS_PAGE;
static const u8 pte_flags[7] = {0x67, 0, 0x25, 0x63, 0x21, 0x67, 0x25};

static const struct pcase cases[] = {
	/* Ring 1: supervisor accesses, W at a write, P when the page is there but refused. */
	{"r1_read_rw_user", VA(0, 0), RD, 1, NONE, 0},
	{"r1_read_not_present", VA(0, 1), RD, 1, 0, VA(0, 1)},
	{"r1_write_not_present", VA(0, 1), WR, 1, 2, VA(0, 1)},
	{"r1_read_ro_user", VA(0, 2), RD, 1, NONE, 0},
	{"r1_write_ro_user_wp", VA(0, 2), WR, 1, 3, VA(0, 2)},
	{"r1_write_rw_supervisor", VA(0, 3), WR, 1, NONE, 0},
	{"r1_write_ro_supervisor", VA(0, 4), WR, 1, 3, VA(0, 4)},
	{"r1_read_pde_ro", VA(1, 0), RD, 1, NONE, 0},
	{"r1_write_pde_ro", VA(1, 0), WR, 1, 3, VA(1, 0)},
	{"r1_write_pde_supervisor", VA(2, 0), WR, 1, NONE, 0},
	{"r1_read_pde_not_present", VA(3, 0), RD, 1, 0, VA(3, 0)},
	{"r1_write_pde_not_present", VA(3, 0), WR, 1, 2, VA(3, 0)},
	{"r1_read_crossing_into_not_present", VA(0, 1) - 2, RD, 1, 0, VA(0, 1)},
	{"r1_write_crossing_into_not_present", VA(0, 1) - 2, WR, 1, 2, VA(0, 1)},
	{"r1_write_crossing_into_ro", VA(0, 6) - 2, WR, 1, 3, VA(0, 6)},
	{"r1_fetch_not_present", VA(0, 1), EX, 1, 0, VA(0, 1)},
	/* Ring 3: U on every fault; a supervisor page (PTE or PDE) is a present page refused. */
	{"r3_read_rw_user", VA(0, 0), RD, 3, NONE, 0},
	{"r3_write_rw_user", VA(0, 0), WR, 3, NONE, 0},
	{"r3_read_not_present", VA(0, 1), RD, 3, 4, VA(0, 1)},
	{"r3_write_not_present", VA(0, 1), WR, 3, 6, VA(0, 1)},
	{"r3_write_ro_user", VA(0, 2), WR, 3, 7, VA(0, 2)},
	{"r3_read_rw_supervisor", VA(0, 3), RD, 3, 5, VA(0, 3)},
	{"r3_write_rw_supervisor", VA(0, 3), WR, 3, 7, VA(0, 3)},
	{"r3_read_ro_supervisor", VA(0, 4), RD, 3, 5, VA(0, 4)},
	{"r3_write_ro_supervisor", VA(0, 4), WR, 3, 7, VA(0, 4)},
	{"r3_read_pde_ro", VA(1, 0), RD, 3, NONE, 0},
	{"r3_write_pde_ro", VA(1, 0), WR, 3, 7, VA(1, 0)},
	{"r3_read_pde_supervisor", VA(2, 0), RD, 3, 5, VA(2, 0)},
	{"r3_write_pde_supervisor", VA(2, 0), WR, 3, 7, VA(2, 0)},
	{"r3_read_pde_not_present", VA(3, 0), RD, 3, 4, VA(3, 0)},
	{"r3_write_pde_not_present", VA(3, 0), WR, 3, 6, VA(3, 0)},
	{"r3_read_crossing_into_not_present", VA(0, 1) - 2, RD, 3, 4, VA(0, 1)},
	{"r3_write_crossing_into_not_present", VA(0, 1) - 2, WR, 3, 6, VA(0, 1)},
	{"r3_write_crossing_into_ro", VA(0, 6) - 2, WR, 3, 7, VA(0, 6)},
	{"r3_fetch_not_present", VA(0, 1), EX, 3, 4, VA(0, 1)},
	{"r3_fetch_supervisor", VA(0, 3), EX, 3, 5, VA(0, 3)},
	{"r3_fetch_pde_supervisor", VA(2, 0), EX, 3, 5, VA(2, 0)},
};

/* One run of a case: the vector (-1 or 3: no fault). */
static int run_case(const struct pcase *c)
{
	if (c->ring == 3) {
		u32 eip = c->kind == EX ? c->va : c->kind == RD ? (u32)u_rd : (u32)u_wr;
		return run_user(eip, USER_STACK_TOP, c->va);
	}
	if (c->kind == EX)
		return trap_catch((void (*)(void *))c->va, 0);
	return c->kind == RD ? try_load(c->va) : try_store(c->va, 0x5A5A5A5A);
}

void start_kernel(start_info_t *si)
{
	u32 i, k, e;
	hostile_init(si, "pf_codes");
	CHECK_EQ(user_pages_init(), 0, "user_pages");
	memset(l1_page, 0, sizeof(l1_page));
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)l1_page, (virt_to_mfn(l1_page) << PAGE_SHIFT) | PTE_RO,
					      UVMF_INVLPG),
		 0, "l1_readonly");
	/* The PDEs: user and writable, user read-only, supervisor; slot 3 left empty. */
	CHECK_EQ(mmu1(cur_l2_ma() + SLOT * 4, (virt_to_mfn(l1_page) << PAGE_SHIFT) | 0x67) |
			 mmu1(cur_l2_ma() + (SLOT + 1) * 4, (virt_to_mfn(l1_page) << PAGE_SHIFT) | 0x25) |
			 mmu1(cur_l2_ma() + (SLOT + 2) * 4, (virt_to_mfn(l1_page) << PAGE_SHIFT) | 0x63),
		 0, "l1_hooked_three_ways");
	for (e = 0; e < 7; e++)
		if (pte_flags[e] != 0 &&
		    mmu1((virt_to_mfn(l1_page) << PAGE_SHIFT) + e * 4,
			 (virt_to_mfn(data[e]) << PAGE_SHIFT) | pte_flags[e]) != 0)
			break;
	CHECK_EQ(e, 7, "entries_mapped");

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct pcase *c = &cases[i];
		u32 bad = 0, got_err = NONE, got_cr2 = 0;
		for (k = 0; k < REPS; k++) {
			int v = run_case(c);
			if (c->err == NONE) {
				/* No fault: ring 3's int3 after the access, ring 1's return. */
				bad += v != (c->ring == 3 ? 3 : -1);
				continue;
			}
			got_err = last_trap.error_code;
			got_cr2 = last_trap.cr2;
			bad += v != 14 || got_err != c->err || got_cr2 != c->cr2 ||
			       (c->kind == EX && last_trap.eip != c->va);
		}
		if (bad != 0)
			printk("case %s: vector err=%x cr2=%x, want err=%x cr2=%x\n", c->name, got_err,
			       got_cr2, c->err, c->cr2);
		CHECK_EQ(bad, 0, c->name);
	}
	/* The stores that went through landed where they were aimed; a crossing one that
	 * faulted wrote neither half. */
	CHECK_EQ(*(volatile u32 *)data[0], VA(0, 0), "r3_store_landed");
	CHECK_EQ(*(volatile u32 *)data[3], 0x5A5A5A5A, "r1_store_to_supervisor_page_landed");
	CHECK_EQ(*(volatile u16 *)(data[0] + 4094) | *(volatile u16 *)(data[5] + 4094), 0,
		 "faulting_crossing_writes_left_no_half");
	checks_done();
}
