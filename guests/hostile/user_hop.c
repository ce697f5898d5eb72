/*
 * Ring-3 code running across a page boundary into a page it may no longer use
 * (test/hostile.test.ts). tsxen links compiled code across pages: a chain or region leaving
 * its page goes on in the next page's code, found through the TLB (src/cpu/blocks.ts,
 * src/cpu/wasm). Each hop must check what the fetch would: the next page mapped, and
 * user-accessible at CPL 3. This guest warms two hot loops in ring 3 that cross from page A
 * into page B (a call and return; a fall-through and a jump back), then takes B away from
 * ring 3 (supervisor-only, between runs and from a timer upcall in the middle of one), points
 * it at another frame, rewrites it, and tries to map the victim's frame there. Each run's sum
 * says which code ran; each fault must be B's #PF (CR2 = B, error code 5: user, present).
 * Then the same for data: hot ring-3 loops reading and writing page D, taken from ring 3
 * (or made read-only) between runs and mid-run: the #PF a compiled block's memory access
 * takes on its slow path (recorded and returned, not thrown, in wasm) with CR2, the error code
 * and EIP at the access, and the registers as of the passes before it.
 */
#include "hostile.h"

#define N 6000u
#define PTE_SUP (_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY) /* no US bit */

/* A (the loops), B (what they cross into), C (another frame's code for B's address), D (data). */
static u8 upages[4 * PAGE_SIZE] __attribute__((aligned(PAGE_SIZE), section(".user.data")));
#define A (upages)
#define B (upages + PAGE_SIZE)
#define C (upages + 2 * PAGE_SIZE)
#define D (upages + 3 * PAGE_SIZE)

static u32 mfn_b, mfn_c, mfn_d;
/* What the next timer upcall over ring 3 makes supervisor-only: B or D. */
static u8 *volatile flip_va;
static volatile u32 flip_mfn, flip_armed, flips;

/*
 * The call loop at A: mov ecx, n; xor esi, esi; 1: call B; add esi, eax; dec ecx; jnz 1b; int3.
 */
static void put_call_loop(u32 n)
{
	u8 *p = A;
	p[0] = 0xb9;
	put32(p + 1, n);
	p[5] = 0x31;
	p[6] = 0xf6;
	p[7] = 0xe8; /* call rel32, from A+12 */
	put32(p + 8, (u32)(B - (A + 12)));
	p[12] = 0x01; /* add esi, eax */
	p[13] = 0xc6;
	p[14] = 0x49;				/* dec ecx */
	p[15] = 0x75;				/* jnz rel8, from A+17 to A+7 */
	p[16] = (u8)(7 - 17);
	p[17] = 0xcc; /* int3 */
}

/*
 * The fall-through loop: A: mov ecx, n; xor esi, esi; jmp A+0xff8. A+0xff8: 8 x inc esi,
 * running into B: inc esi; dec ecx; jnz A+0xff8; int3. Nine a pass, eight of them in A.
 */
static void put_fall_loop(u32 n)
{
	u8 *p = A, *q = B;
	u32 i;
	p[0] = 0xb9;
	put32(p + 1, n);
	p[5] = 0x31;
	p[6] = 0xf6;
	p[7] = 0xe9; /* jmp rel32, from A+12 */
	put32(p + 8, 0xff8 - 12);
	for (i = 0xff8; i < PAGE_SIZE; i++)
		p[i] = 0x46; /* inc esi */
	q[0] = 0x46;
	q[1] = 0x49;
	q[2] = 0x0f; /* jnz rel32, from B+8 to A+0xff8 */
	q[3] = 0x85;
	put32(q + 4, (u32)((A + 0xff8) - (B + 8)));
	q[8] = 0xcc;
}

static volatile u8 seen;

/*
 * Maps va to frame mfn, then reads it from ring 1: the TLB then holds the new entry (for a
 * supervisor-only page, one ring 3 may not use), not just nothing after the INVLPG.
 */
static long map_va(u8 *va, u32 mfn, u32 flags)
{
	long rc = HYPERVISOR_update_va_mapping((u32)va, (mfn << PAGE_SHIFT) | flags, UVMF_INVLPG);
	seen = *(volatile u8 *)va;
	return rc;
}

static long map_b(u32 mfn, u32 flags)
{
	return map_va(B, mfn, flags);
}

/*
 * The data loops at A, over the u32 at D: mov ecx, n; xor esi, esi; mov ebx, D; then
 * read:  1: add esi, [ebx]; dec ecx; jnz 1b; int3
 * write: 1: mov [ebx], ecx; inc esi; dec ecx; jnz 1b; int3
 * The access is at A+12 in both.
 */
static void put_data_loop(u32 n, int write)
{
	u8 *p = A;
	p[0] = 0xb9;
	put32(p + 1, n);
	p[5] = 0x31;
	p[6] = 0xf6;
	p[7] = 0xbb;
	put32(p + 8, (u32)D);
	if (!write) {
		p[12] = 0x03;
		p[13] = 0x33;
		p[14] = 0x49;
		p[15] = 0x75;
		p[16] = (u8)(12 - 17);
		p[17] = 0xcc;
	} else {
		p[12] = 0x89;
		p[13] = 0x0b;
		p[14] = 0x46;
		p[15] = 0x49;
		p[16] = 0x75;
		p[17] = (u8)(12 - 18);
		p[18] = 0xcc;
	}
}

/* The run ended by a #PF of the access at A+12 on D, with this error code. */
static void check_d_fault(int v, u32 error_code, const char *name)
{
	CHECK_EQ(v, 14, name);
	CHECK_EQ(last_trap.cr2, (u32)D, name);
	CHECK_EQ(last_trap.error_code, error_code, name);
	CHECK_EQ(last_trap.eip, (u32)A + 12, name);
}

/* Runs the loop at A in ring 3: the vector that ended it; ESI (the sum) in *sum. */
static int run(u32 *sum)
{
	int v = run_user((u32)A, USER_STACK_TOP, 0);
	*sum = last_trap.esi;
	return v;
}

/* A run that ends at its int3 with this sum. */
static void run_to_end(u32 want, const char *name)
{
	u32 sum;
	CHECK_EQ(run(&sum), 3, name);
	CHECK_EQ(sum, want, name);
}

/* The run ended by B's #PF: CR2 = B, user + present (a fetch, not a write), EIP = B. */
static void check_b_fault(int v, const char *name)
{
	CHECK_EQ(v, 14, name);
	CHECK_EQ(last_trap.cr2, (u32)B, name);
	CHECK_EQ(last_trap.error_code, 5, name);
	CHECK_EQ(last_trap.eip, (u32)B, name);
}

/*
 * A timer upcall (the one-shot, or the periodic tick) that interrupted ring 3, i.e. the loop:
 * takes B away from ring 3, once. An upcall over ring 1 (one pending from before) does not.
 */
static void on_timer(u32 port, struct upcall_frame *f)
{
	(void)port;
	if (!flip_armed || (f->cs & 3) != 3)
		return;
	flip_armed = 0;
	flips++;
	if (map_va(flip_va, flip_mfn, PTE_SUP) != 0)
		printk("user_hop: flip failed\n");
}

void start_kernel(start_info_t *si)
{
	u32 vmfn, sum, port;
	int v;
	hostile_init(si, "user_hop");
	vmfn = cmdline_u32(si, "vmfn", 0);
	CHECK_EQ(user_pages_init(), 0, "user_pages");
	CHECK_EQ(evtchn_bind_virq(VIRQ_TIMER, &port), 0, "bind_timer");
	evtchn_handlers[port] = on_timer;
	clear_bit(port, HYPERVISOR_shared_info->evtchn_mask);
	mfn_b = virt_to_mfn(B);
	mfn_c = virt_to_mfn(C);
	mfn_d = virt_to_mfn(D);
	put_fn(B, 7);
	put_fn(C, 9);

	/* 1. The call loop: warm, B taken from ring 3, given back, another frame, the victim's. */
	put_call_loop(N);
	run_to_end(N * 7, "call_warm");
	run_to_end(N * 7, "call_hot");
	CHECK_EQ(map_b(mfn_b, PTE_SUP), 0, "b_supervisor");
	v = run(&sum);
	check_b_fault(v, "call_into_supervisor_page");
	CHECK_EQ(sum, 0, "call_nothing_ran_in_b");
	CHECK_EQ(map_b(mfn_b, PTE_RW), 0, "b_user_again");
	run_to_end(N * 7, "call_again");
	CHECK_EQ(map_b(mfn_c, PTE_RW), 0, "b_to_c");
	run_to_end(N * 9, "call_remapped");
	CHECK(map_b(vmfn, PTE_RW) != 0, "victim_frame_refused");
	run_to_end(N * 9, "call_still_c");
	CHECK_EQ(map_b(mfn_b, PTE_RW), 0, "b_back");

	/* 2. The fall-through loop: the same, and B's code rewritten. */
	put_fall_loop(N);
	run_to_end(N * 9, "fall_warm");
	run_to_end(N * 9, "fall_hot");
	CHECK_EQ(map_b(mfn_b, PTE_SUP), 0, "fall_b_supervisor");
	v = run(&sum);
	check_b_fault(v, "fall_into_supervisor_page");
	CHECK_EQ(sum, 8, "fall_stopped_at_b");
	CHECK_EQ(map_b(mfn_b, PTE_RW), 0, "fall_b_user_again");
	run_to_end(N * 9, "fall_again");
	B[0] = 0x90; /* inc esi -> nop */
	run_to_end(N * 8, "fall_rewritten");
	B[0] = 0x46;

	/* 3. B taken away by a timer upcall in the middle of a long call loop. */
	put_fn(B, 7);
	put_call_loop(0xffffffffu);
	flip_va = B;
	flip_mfn = mfn_b;
	flip_armed = 1;
	events_enable();
	CHECK_EQ(HYPERVISOR_set_timer_op(time_now_ns() + 2000000ull), 0, "timer_armed");
	v = run(&sum);
	events_disable();
	CHECK_EQ(flips, 1, "flipped_by_upcall");
	/* The upcall lands at B's call or inside B (then its ret faults, at B+5). */
	CHECK_EQ(v, 14, "call_after_upcall_flip");
	CHECK(last_trap.eip == (u32)B || last_trap.eip == (u32)B + 5, "fault_at_b_or_its_ret");
	CHECK_EQ(last_trap.cr2, last_trap.eip, "cr2_is_the_fetch");
	CHECK_EQ(last_trap.error_code, 5, "user_fetch_fault");
	printk("user_hop: %u passes before the flip\n", sum / 7);
	CHECK(sum > 0 && sum % 7 == 0, "ran_then_stopped");
	CHECK_EQ(map_b(mfn_b, PTE_RW), 0, "b_restored");

	/* 4. Data: D read by a hot ring-3 loop, taken from ring 3 between runs and mid-run. */
	*(volatile u32 *)D = 3;
	put_data_loop(N, 0);
	run_to_end(N * 3, "read_warm");
	CHECK_EQ(run(&sum), 3, "read_hot");
	CHECK_EQ(map_va(D, mfn_d, PTE_SUP), 0, "d_supervisor");
	check_d_fault(run(&sum), 5, "read_of_supervisor_page");
	CHECK_EQ(sum, 0, "read_nothing_added");
	CHECK_EQ(map_va(D, mfn_d, PTE_RW), 0, "d_user_again");
	run_to_end(N * 3, "read_again");
	put_data_loop(0xffffffffu, 0);
	flip_va = D;
	flip_mfn = mfn_d;
	flip_armed = 1;
	events_enable();
	CHECK_EQ(HYPERVISOR_set_timer_op(time_now_ns() + 2000000ull), 0, "read_timer_armed");
	v = run(&sum);
	events_disable();
	CHECK_EQ(flips, 2, "d_flipped_by_upcall");
	check_d_fault(v, 5, "read_after_upcall_flip");
	/* ECX counts the passes down from ~0: each finished pass added 3. */
	CHECK(sum > 0 && sum == 3 * (0xffffffffu - last_trap.ecx), "read_sum_matches_passes");
	CHECK_EQ(map_va(D, mfn_d, PTE_RW), 0, "d_restored");

	/* 5. Data: D written by a hot ring-3 loop, then read-only to ring 3. */
	put_data_loop(N, 1);
	run_to_end(N, "write_warm");
	CHECK_EQ(*(volatile u32 *)D, 1, "write_last_value");
	CHECK_EQ(map_va(D, mfn_d, PTE_RO), 0, "d_read_only");
	check_d_fault(run(&sum), 7, "write_to_read_only_page");
	CHECK_EQ(sum, 0, "write_nothing_done");
	CHECK_EQ(*(volatile u32 *)D, 1, "write_not_stored");
	CHECK_EQ(map_va(D, mfn_d, PTE_RW), 0, "d_writable_again");
	run_to_end(N, "write_again");
	checks_done();
}
