/*
 * The switch-in's TLB refill (Cpu.tlbRefill) against a writer that acts while this vcpu is
 * switched out: test/hostile-tlbrefill.test.ts plays dom0. The vcpu's switch-out keeps the
 * linear pages its TLB held and the switch-in enters them again, each read from the page tables
 * and watches as they are then; a refill that put back what the switch-out held would keep a
 * translation Xen no longer allows (a frame given back to Xen, now another domain's) or skip
 * a write report dirty logging asked for.
 *
 * At each STEP <n> the guest blocks until the host, having done its part as dom0, writes n
 * into the sync page (its machine frame printed first). Frames A, B, C, D are ours (markers),
 * mapped through l1a, hooked at slot 0x100: VA0 -> A, VA2 -> C, VA3 -> D.
 *   1. VA0 retargeted to B with no flush (update_va_mapping, flags 0: the old translation may
 *      stay, as in Xen); dom0 runs a hypercall (a switch out and in); VA0 must read B.
 *   2. VA0 back to A, read (cached), cleared with no flush; dom0 takes A back
 *      (decrease_reservation) and writes a secret into it as its next owner; VA0 must fault.
 *   3. C and D written (cached with write bits); dom0 turns on dirty logging; C written again,
 *      D only read. 4. dom0 reads the bitmap: C dirty, D clean.
 */
#include "hostile.h"

#define SLOT 0x100u
#define VA0 (SLOT << 22)
#define VA2 (VA0 + 2 * PAGE_SIZE)
#define VA3 (VA0 + 3 * PAGE_SIZE)
#define MARK_A 0xA5A50001u
#define MARK_B 0xB5B50002u
#define MARK_C 0xC5C50003u
#define MARK_D 0xD5D50004u

static u8 sync_page[4096] BSS_PAGE; /* the host writes the step it finished at word 0 */

/* A load of va through the probe: its value, or 0xF000 | the trap vector. */
static u32 load(u32 va)
{
	int t = try_load(va);
	return t == -1 ? hp_read : 0xF000u | (u32)t;
}

static void on_timer(u32 port, struct upcall_frame *f)
{
	(void)port;
	(void)f;
}

static void flush_tlb(const char *name)
{
	CHECK_EQ(mmuext(0, MMUEXT_TLB_FLUSH), 0, name);
}

/* Says STEP n and blocks until the host has done step n (bounded: a host that never answers
 * fails the check instead of hanging). */
static void step(u32 n, const char *name)
{
	volatile u32 *sync = (volatile u32 *)sync_page;
	u32 tries = 0;
	printk("STEP %u\n", n);
	while (sync[0] != n && tries++ < 1000) {
		HYPERVISOR_set_timer_op(time_now_ns() + 1000000ull);
		HYPERVISOR_sched_op(SCHEDOP_block);
	}
	CHECK_EQ(sync[0], n, name);
}

void start_kernel(start_info_t *si)
{
	u32 a, b, c, d, l1a, pa, port = 0;
	hostile_init(si, "tlb_refill");
	/* The timer ends each block of step(): its VIRQ bound (a block wakes on any event). */
	CHECK_EQ(evtchn_bind_virq(VIRQ_TIMER, &port), 0, "timer_bound");
	evtchn_handlers[port] = on_timer;
	events_enable();
	a = spare_mfn(0);
	b = spare_mfn(1);
	c = spare_mfn(2);
	d = spare_mfn(3);
	l1a = spare_mfn(4);
	pa = (a << PAGE_SHIFT) | PTE_RW;
	CHECK_EQ(fill_frame(a, MARK_A), 0, "fill_a");
	CHECK_EQ(fill_frame(b, MARK_B), 0, "fill_b");
	CHECK_EQ(fill_frame(c, MARK_C), 0, "fill_c");
	CHECK_EQ(fill_frame(d, MARK_D), 0, "fill_d");
	CHECK_EQ(fill_frame(l1a, 0), 0, "zero_l1a");
	CHECK_EQ(mmu1(cur_l2_ma() + SLOT * 4, (l1a << PAGE_SHIFT) | PTE_RW), 0, "hook_l1a");
	CHECK_EQ(mmu1(l1a << PAGE_SHIFT, pa), 0, "map_a_at_va0");
	CHECK_EQ(mmu1((l1a << PAGE_SHIFT) + 8, (c << PAGE_SHIFT) | PTE_RW), 0, "map_c_at_va2");
	CHECK_EQ(mmu1((l1a << PAGE_SHIFT) + 12, (d << PAGE_SHIFT) | PTE_RW), 0, "map_d_at_va3");
	printk("SYNC mfn=%u a=%u c_pfn=%u d_pfn=%u\n", virt_to_mach(sync_page) >> PAGE_SHIFT, a,
	       start_info->nr_pages - 3, start_info->nr_pages - 4);

	/* 1. A PTE changed with no flush: after a switch, the tables' entry. */
	flush_tlb("tlb_flushed_1");
	CHECK_EQ(load(VA0), MARK_A, "va0_reads_a");
	CHECK_EQ(HYPERVISOR_update_va_mapping(VA0, (b << PAGE_SHIFT) | PTE_RW, 0), 0, "va0_to_b_no_flush");
	step(1, "host_did_step_1");
	CHECK_EQ(load(VA0), MARK_B, "va0_reads_b_after_switch");

	/* 2. The PTE cleared with no flush, the frame taken back by dom0: a fault. */
	CHECK_EQ(HYPERVISOR_update_va_mapping(VA0, pa, UVMF_INVLPG), 0, "va0_to_a");
	flush_tlb("tlb_flushed_2");
	CHECK_EQ(load(VA0), MARK_A, "va0_reads_a_again");
	CHECK_EQ(HYPERVISOR_update_va_mapping(VA0, 0, 0), 0, "va0_cleared_no_flush");
	step(2, "host_did_step_2");
	CHECK_EQ(load(VA0), 0xF00Eu, "va0_faults_after_a_taken_back");
	CHECK_EQ(try_store(VA0, 0x0BAD0BADu), 14, "va0_store_faults");

	/* 3. Dirty logging turned on while switched out: the next write to C is reported. */
	flush_tlb("tlb_flushed_3");
	CHECK_EQ(try_store(VA2, MARK_C + 1), -1, "c_written");
	CHECK_EQ(try_store(VA3, MARK_D + 1), -1, "d_written");
	step(3, "host_did_step_3");
	CHECK_EQ(try_store(VA2, MARK_C + 2), -1, "c_written_while_logged");
	CHECK_EQ(load(VA3), MARK_D + 1, "d_read_while_logged");
	step(4, "host_did_step_4");
	checks_done();
}
