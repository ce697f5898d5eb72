/*
 * A compiled block's locals after a slow path's call (test/hostile-reload.test.ts; gen.ts
 * Gen.reload): hot loops whose page-crossing accesses take the slow path every pass, between
 * flag-setting instructions and the adc/sbb reading their carry, with every register live
 * across them. The accesses land where the hypervisor acts in the middle of the block's work:
 *   pt:   a read and a read-modify-write across the end of our read-only view of an L1 that is
 *         hooked in our L2 (each RMW opens the ACTIVE ptwr window; the next read through the
 *         L1's region faults and flushes it);
 *   pf:   the RMW through the view clears the present bit of the entry mapping X; the next
 *         RMW, across the end of page Y into X, faults to our #PF handler mid read-modify-write,
 *         which sets the bit again through the view (another window) and returns to retry;
 *   s16:  push and pop on a 16-bit stack (SS from our LDT), SP across a page end: the push and
 *         pop imports, every one;
 *   tick: reads and RMWs across Y into X while our timer's upcall, every PERIOD_NS, maps Y to
 *         Y1, Y2 or nothing (the #PF handler maps Y1 back).
 * Each loop's registers and arithmetic flags and the frames' sums are printed (RES, SUM): the
 * test compares them with an interpreted run's.
 */
#include "desc.h"
#include "hostile.h"

#define SLOT 0x100u
#define VA_X (SLOT << 22)                               /* l1's entry 0 */
#define VA_Y (((SLOT - 1) << 22) + 1023u * PAGE_SIZE) /* l1b's entry 1023, just below */
#define N_PT 600u
#define N_PF 600u
#define N_TICK 8000u
#define N_S16 2000u
#define PERIOD_NS 20000ull
#define FLAGS_ARITH 0x8D5u

struct st {
	u32 eax, ebx, ecx, edx, esi, edi, ebp, fl;
};

/* A loop over `body` ECX times, the registers from and to *s (EFLAGS after it into s->fl).
 * Each body reads EBX before its first slow path, so a block entered at the loop's top holds
 * it in a local across that call, and sets the flags (add, sub, cmp: the record's operands
 * matter to the carry of a sub) for an adc after it. */
#define LOOP_FN(name, body)                                                                   \
	__asm__(".pushsection .text\n.globl " #name "\n" #name ":\n"                          \
		"pushl %ebp\npushl %ebx\npushl %esi\npushl %edi\n"                            \
		"movl 20(%esp), %eax\npushl %eax\n"                                           \
		"movl 4(%eax), %ebx\nmovl 8(%eax), %ecx\nmovl 12(%eax), %edx\n"               \
		"movl 16(%eax), %esi\nmovl 20(%eax), %edi\nmovl 24(%eax), %ebp\n"             \
		"movl 0(%eax), %eax\n"                                                        \
		"1:\n" body "decl %ecx\njnz 1b\n"                                             \
		"pushfl\npushl %eax\nmovl 8(%esp), %eax\npopl 0(%eax)\npopl 28(%eax)\n"       \
		"movl %ebx, 4(%eax)\nmovl %ecx, 8(%eax)\nmovl %edx, 12(%eax)\n"               \
		"movl %esi, 16(%eax)\nmovl %edi, 20(%eax)\nmovl %ebp, 24(%eax)\n"             \
		"addl $4, %esp\npopl %edi\npopl %esi\npopl %ebx\npopl %ebp\nret\n"            \
		".popsection\n");                                                             \
	void name(struct st *s)

/* ESI: the data page's end (its last half-word | l1's entry 0's low half); EDI: X + 8; EBP's
 * high half: entry 0's RW bit. */
LOOP_FN(loop_pt, "addl %ebx, %eax\n"
		 "movl (%esi), %edx\n"
		 "adcl %edx, %ebx\n"
		 "xorl %ebp, (%esi)\n"
		 "adcl %ecx, %eax\n"
		 "movl (%edi), %edx\n"
		 "addl %edx, %ebx\n"
		 "sbbl %edx, %eax\n"
		 "roll $3, %ebx\n");

/* ESI: the data page's end; EBP's high half: entry 0's present bit; EDI: Y's end (the RMW
 * crossing into X). */
LOOP_FN(loop_pf, "subl %ebx, %eax\n"
		 "movl (%esi), %edx\n"
		 "adcl %edx, %ebx\n"
		 "xorl %ebp, (%esi)\n"
		 "addl %ebx, %eax\n"
		 ".globl pf_rmw_at\npf_rmw_at:\n"
		 "addl %ecx, (%edi)\n"
		 "adcl %eax, %ebx\n"
		 "roll $1, %ebx\n");

/* EDI: Y's end; ESI: the data page's end; EBP accumulates. */
LOOP_FN(loop_tick, "cmpl %ebx, %eax\n"
		   "movl (%edi), %edx\n"
		   "adcl %edx, %ebx\n"
		   "addl %ecx, (%edi)\n"
		   "adcl %eax, %ebx\n"
		   "movl (%esi), %edx\n"
		   "addl %edx, %eax\n"
		   "sbbl %ecx, %ebp\n"
		   "roll $1, %ebx\n");

extern char pf_rmw_at[];

/*
 * s16: push and pop on a 16-bit stack (SS from our LDT, B=0), SP across a page end: a compiled
 * block takes the push and pop imports for every one (gen.ts push/pop's slow path). ESP and SS
 * are saved in memory, the stack being switched under the loop.
 */
static u32 s16_ptr __attribute__((used)), s16_esp __attribute__((used)),
	s16_eax __attribute__((used)), s16_ss __attribute__((used));
__asm__(".pushsection .text\n.globl loop_s16\nloop_s16:\n"
	"pushl %ebp\npushl %ebx\npushl %esi\npushl %edi\n"
	"movl 20(%esp), %eax\nmovl %eax, s16_ptr\nmovl %esp, s16_esp\n"
	"movl %ss, %ebx\nmovl %ebx, s16_ss\n"
	"movl 4(%eax), %ebx\nmovl 8(%eax), %ecx\nmovl 12(%eax), %edx\n"
	"movl 16(%eax), %esi\nmovl 20(%eax), %edi\nmovl 24(%eax), %ebp\n"
	"movl 28(%eax), %esp\n"  /* the 16-bit stack's selector, passed in fl */
	"movl %esp, %ss\nmovl $0x1002, %esp\n"
	"movl 0(%eax), %eax\n"
	"1:\n"
	"addl %ebx, %eax\n"
	"pushl %eax\n"
	"adcl %edx, %ebx\n"
	"popl %edx\n"
	"xorl %ecx, %edx\n"
	"pushl %ebx\n"
	"sbbl %edx, %eax\n"
	"popl %esi\n"
	"adcl %esi, %ebp\n"
	"roll $1, %ebx\n"
	"decl %ecx\njnz 1b\n"
	"pushfl\npopl %edi\n" /* EDI: the flags (its own value is not kept) */
	"movl %eax, s16_eax\n"
	"movl s16_ss, %eax\nmovl %eax, %ss\nmovl s16_esp, %esp\n"
	"movl s16_ptr, %eax\n"
	"movl %edi, 28(%eax)\nmovl s16_eax, %edi\nmovl %edi, 0(%eax)\n"
	"movl %ebx, 4(%eax)\nmovl %ecx, 8(%eax)\nmovl %edx, 12(%eax)\n"
	"movl %esi, 16(%eax)\nmovl $0, 20(%eax)\nmovl %ebp, 24(%eax)\n"
	"popl %edi\npopl %esi\npopl %ebx\npopl %ebp\nret\n"
	".popsection\n");
void loop_s16(struct st *s);



static u8 pair[2 * 4096] BSS_PAGE; /* page 0: data; page 1: the L1 l1, mapped read-only */
static u8 l1b_page[4096] BSS_PAGE;  /* the L1 below it, mapped read-only */
static u8 page_x[4096] BSS_PAGE;
static u8 page_y1[4096] BSS_PAGE;
static u8 page_y2[4096] BSS_PAGE;
static u8 s16_area[2 * 4096] BSS_PAGE; /* the 16-bit stack segment's first 8 KiB */
static u8 s16_ldt[4096] BSS_PAGE;
static u32 l1, l1b, fx, fy1, fy2;
static volatile u32 pf_x, pf_y, pf_bad, ticks, tick_rc, in_pf_loop;

static volatile u32 *view(void)
{
	return (volatile u32 *)(pair + 4096);
}

static int pf_hook(struct trap_frame *f)
{
	u32 page = f->cr2 & ~0xFFFu;
	if (page == VA_X) {
		/* Only the pf loop's RMW, a write to a page not present, at ring 1. */
		if (!in_pf_loop || f->eip != (u32)pf_rmw_at || f->error_code != 2)
			pf_bad++;
		pf_x++;
		view()[0] |= 1; /* a plain store into the L1: the window again */
		return 1;
	}
	if (page == VA_Y) {
		pf_y++;
		tick_rc |= HYPERVISOR_update_va_mapping(VA_Y, (fy1 << PAGE_SHIFT) | PTE_RW, UVMF_INVLPG);
		return 1;
	}
	return 0;
}

static void on_tick(u32 port, struct upcall_frame *f)
{
	u32 k = ++ticks % 3;
	u32 pte = k == 0 ? (fy1 << PAGE_SHIFT) | PTE_RW : k == 1 ? (fy2 << PAGE_SHIFT) | PTE_RW : 0;
	(void)port;
	(void)f;
	tick_rc |= HYPERVISOR_update_va_mapping(VA_Y, pte, UVMF_INVLPG);
	tick_rc |= HYPERVISOR_set_timer_op(time_now_ns() + PERIOD_NS);
}

static void res(const char *name, const struct st *s)
{
	printk("RES %s eax=%x ebx=%x ecx=%x edx=%x esi=%x edi=%x ebp=%x fl=%x\n", name, s->eax, s->ebx,
	       s->ecx, s->edx, s->esi, s->edi, s->ebp, s->fl & FLAGS_ARITH);
}

/* A rotating sum of a page's words. */
static u32 page_sum(const u8 *page)
{
	const volatile u32 *p = (const volatile u32 *)page;
	u32 i, h = 0;
	for (i = 0; i < 1024; i++)
		h = ((h << 5) | (h >> 27)) ^ p[i];
	return h;
}

static void fill_page(u8 *p, u32 v)
{
	u32 i;
	for (i = 0; i < 1024; i++)
		((volatile u32 *)p)[i] = v + i;
}

static void init_st(struct st *s, u32 n, u32 esi, u32 edi, u32 ebp)
{
	s->eax = 0x89ABCDEF;
	s->ebx = 0x12345678;
	s->ecx = n;
	s->edx = 0x0F1E2D3C;
	s->esi = esi;
	s->edi = edi;
	s->ebp = ebp;
	s->fl = 0;
}

void start_kernel(start_info_t *si)
{
	struct st s;
	u32 port = 0, end = (u32)pair + 4096 - 2;
	hostile_init(si, "reload");
	trap_hooks[14] = pf_hook;
	memset(pair, 0, sizeof(pair));
	memset(l1b_page, 0, sizeof(l1b_page));
	fill_page(page_x, 0x58585858);
	fill_page(page_y1, 0x59315931);
	fill_page(page_y2, 0x59325932);
	l1 = virt_to_mfn(pair + 4096);
	l1b = virt_to_mfn(l1b_page);
	fx = virt_to_mfn(page_x);
	fy1 = virt_to_mfn(page_y1);
	fy2 = virt_to_mfn(page_y2);
	CHECK_EQ(HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables), 0,
		 "vm_assist_writable_pagetables");
	/* The L1s' own pages, read-only: our view of them. */
	CHECK_EQ(HYPERVISOR_update_va_mapping((u32)view(), (l1 << PAGE_SHIFT) | PTE_RO, UVMF_INVLPG) |
			 HYPERVISOR_update_va_mapping((u32)l1b_page, (l1b << PAGE_SHIFT) | PTE_RO,
						      UVMF_INVLPG),
		 0, "l1_views_readonly");
	CHECK_EQ(mmu1(cur_l2_ma() + SLOT * 4, (l1 << PAGE_SHIFT) | PTE_RW) |
			 mmu1(cur_l2_ma() + (SLOT - 1) * 4, (l1b << PAGE_SHIFT) | PTE_RW),
		 0, "hook_l1s");
	CHECK_EQ(mmu1((l1b << PAGE_SHIFT) + 1023 * 4, (fy1 << PAGE_SHIFT) | PTE_RW), 0, "map_y");
	CHECK_EQ(mmu1(l1 << PAGE_SHIFT, (fx << PAGE_SHIFT) | PTE_RW), 0, "map_x");
	*(volatile u32 *)pair = 0xD00DFEED;

	/* pt: the window opened from inside the block and flushed by its next read. */
	init_st(&s, N_PT, end, VA_X + 8, 0x00021234);
	loop_pt(&s);
	res("pt", &s);
	CHECK_EQ(s.ecx, 0, "pt_loop_done");
	CHECK_EQ(view()[0], (fx << PAGE_SHIFT) | PTE_RW, "pt_entry_rw_after_even_toggles");

	/* pf: a #PF to us in the middle of every RMW into X. */
	in_pf_loop = 1;
	init_st(&s, N_PF, end, VA_Y + 4096 - 2, 0x00010042);
	loop_pf(&s);
	in_pf_loop = 0;
	res("pf", &s);
	CHECK_EQ(s.ecx, 0, "pf_loop_done");
	CHECK_EQ(pf_x, N_PF, "pf_every_rmw_faulted_to_us");
	CHECK_EQ(pf_bad, 0, "pf_at_the_rmw_write_not_present");
	CHECK_EQ(view()[0], (fx << PAGE_SHIFT) | PTE_RW, "pf_entry_present_again");

	/* s16: the 16-bit stack's push and pop, SP across a page end (events masked). */
	desc_put(s16_ldt, 1, mkseg((u32)s16_area, 0xFFFF, ACC_R1_DATA | 1, 0));
	CHECK_EQ(remap(s16_ldt, 1) | set_ldt((u32)s16_ldt, 2), 0, "s16_ldt");
	init_st(&s, N_S16, 0, 0, 0x27182818);
	s.fl = SEL_LDT(1, 1);
	loop_s16(&s);
	res("s16", &s);
	CHECK_EQ(s.ecx, 0, "s16_loop_done");

	/* tick: Y changes under the loop at every timer upcall. */
	CHECK_EQ(evtchn_bind_virq(VIRQ_TIMER, &port), 0, "timer_bound");
	evtchn_handlers[port] = on_tick;
	clear_bit(port, HYPERVISOR_shared_info->evtchn_mask);
	init_st(&s, N_TICK, end, VA_Y + 4096 - 2, 0x31415926);
	tick_rc |= HYPERVISOR_set_timer_op(time_now_ns() + PERIOD_NS);
	events_enable();
	loop_tick(&s);
	events_disable();
	tick_rc |= HYPERVISOR_set_timer_op(0);
	res("tick", &s);
	CHECK_EQ(s.ecx, 0, "tick_loop_done");
	CHECK_EQ(tick_rc, 0, "tick_hypercalls_ok");
	CHECK(ticks >= 20, "ticks_during_the_loop");
	CHECK(pf_y >= 3, "y_unmapped_under_the_loop");
	printk("CNT ticks=%u pf_y=%u pf_x=%u\n", ticks, pf_y, pf_x);
	printk("SUM x=%x y1=%x y2=%x l1=%x data=%x\n", page_sum(page_x), page_sum(page_y1),
	       page_sum(page_y2), page_sum(pair + 4096), page_sum(pair));
	checks_done();
}
