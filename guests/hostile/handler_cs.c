/*
 * The bounce's handler-CS memo (test/hostile-handlercs.test.ts). Each bounce checks its
 * handler's code descriptor; descriptors.ts checkBounceSegment keeps the last answer keyed by
 * the selector and the descriptor's two words as read now. We make descriptor 1 of a GDT frame
 * of our own (X) the handler's CS and change it between bounces with update_descriptor: every
 * bounce after a change must see the new descriptor, never the memo's answer for the old one.
 *
 * mode=0: X is the fast trap gate's CS (int 0x80 bounced inside the CPU's run). Each round
 * warms the gate through the good X (the handler runs), then rewrites X to one of: not present
 * (#NP(X)), a data segment (#GP(X)), a DPL-3 code segment (#GP(X)), a limit ending before the
 * handler (#GP(0)); the int must fault so (as the exit path's check gives it) without running
 * the handler; then the good X again, the handler runs.
 * mode=1: X is the event callback's CS: upcalls through the good X, then X not present and an
 * event sent: Xen crashes us ("bad handler code selector").
 * mode=2: X is the page-fault handler's CS: faults bounced through the good X, then X not
 * present and a fault: Xen crashes us the same way.
 * mode=3: the fast trap from ring 3 with the kernel stack's SS Y (descriptor 2, ring-1 data,
 * stack_switch): traps through the good Y, then Y not present and a trap: Xen crashes us ("bad
 * kernel stack selector").
 * mode=4: the same with the kernel stack's SS X, the gate's own CS (a code segment): after
 * ring-1 traps through X (its CS check passed), a trap from ring 3 crashes us the same way.
 */
#include "desc.h"
#include "evtchn_ops.h"
#include "hostile.h"

#define ROUNDS 4
#define X SEL_GDT(1, 1)
#define Y SEL_GDT(2, 1)

static u8 gdt[4096] BSS_PAGE;
static u8 unmapped[4096] BSS_PAGE;
static u32 frames[16];
static volatile u32 int80_seen, upcalls;

static int int80_hook(struct trap_frame *f)
{
	(void)f;
	int80_seen++;
	return 1;
}

static void do_int80(void *unused)
{
	__asm__ __volatile__("int $0x80" ::: "memory");
}

static int int80(void)
{
	return trap_catch(do_int80, 0);
}

static void touch_unmapped(void *unused)
{
	(void)*(volatile u32 *)unmapped;
}

static void on_event(u32 port, struct upcall_frame *f)
{
	(void)port;
	(void)f;
	upcalls++;
}

/* update_descriptor on X in our GDT frame (mapped read-only: Xen's copy is the only writer). */
static long set_x(struct desc d)
{
	return HYPERVISOR_update_descriptor((virt_to_mfn(gdt) << PAGE_SHIFT) + 8, d.lo, d.hi);
}

static long set_y(struct desc d)
{
	return HYPERVISOR_update_descriptor((virt_to_mfn(gdt) << PAGE_SHIFT) + 16, d.lo, d.hi);
}

static struct desc np_data(void)
{
	return mkseg(0, 0xFBFFF, ACC_R1_DATA & 0x7F, FLG_G);
}

static struct desc good(void)
{
	return mkseg(0, 0xFBFFF, ACC_R1_CODE, FLG_G);
}

static void fast_trap_rounds(void)
{
	/* The rewritten X and the fault it gives at the int (vector, error code). */
	struct desc bad[4];
	static const int want_vector[4] = {11, 13, 13, 13};
	static const u32 want_error[4] = {X & ~3, X & ~3, X & ~3, 0};
	u32 i, k, ran = 0, refused = 0, rewrote = 0;
	bad[0] = mkseg(0, 0xFBFFF, ACC_R1_CODE & 0x7F, FLG_G); /* not present */
	bad[1] = mkseg(0, 0xFBFFF, ACC_R1_DATA, FLG_G);        /* data */
	bad[2] = mkseg(0, 0xFBFFF, ACC_R3_CODE, FLG_G);        /* DPL 3 */
	bad[3] = mkseg(0, 0, ACC_R1_CODE, FLG_BYTE);           /* ends at byte 0 */

	trap_hooks[0x80] = int80_hook;
	CHECK_EQ(fast_trap_gate(X, trap_stub(0x80)), 0, "gate_through_x");

	for (i = 0; i < ROUNDS; i++) {
		for (k = 0; k < 4; k++) {
			u32 seen = int80_seen;
			int r;
			rewrote += set_x(good()) == 0;
			ran += int80() == -1 && int80() == -1 && int80() == -1 && int80_seen == seen + 3;
			rewrote += set_x(bad[k]) == 0;
			seen = int80_seen;
			r = int80();
			refused += r == want_vector[k] && last_trap.error_code == want_error[k] &&
				   int80_seen == seen;
		}
	}
	CHECK_EQ(rewrote, ROUNDS * 8, "update_descriptor_accepted");
	CHECK_EQ(ran, ROUNDS * 4, "good_x_handler_runs");
	CHECK_EQ(refused, ROUNDS * 4, "bad_x_handler_not_run");
	set_x(good());
	i = int80_seen;
	CHECK_EQ(int80(), -1, "good_x_again");
	CHECK_EQ(int80_seen, i + 1, "good_x_again_ran");
}

void start_kernel(start_info_t *si)
{
	u32 mode, i, send = 0, recv = 0;
	struct desc np = mkseg(0, 0xFBFFF, ACC_R1_CODE & 0x7F, FLG_G);
	hostile_init(si, "handler_cs");
	mode = cmdline_u32(si, "mode", 0);

	memset(gdt, 0, sizeof(gdt));
	desc_put(gdt, 1, good());
	CHECK_EQ(remap(gdt, 1), 0, "gdt_read_only");
	frames[0] = virt_to_mfn(gdt);
	CHECK_EQ(HYPERVISOR_set_gdt(frames, 512), 0, "set_gdt");

	if (mode == 0) {
		fast_trap_rounds();
	} else if (mode == 1) {
		CHECK_EQ(ev_loopback(&send, &recv), 0, "loopback");
		evtchn_handlers[recv] = on_event;
		clear_bit(recv, HYPERVISOR_shared_info->evtchn_mask);
		CHECK_EQ(HYPERVISOR_set_callbacks(X, (u32)hypervisor_callback, FLAT_KERNEL_CS,
						  (u32)failsafe_callback),
			 0, "callbacks_through_x");
		events_enable();
		for (i = 0; i < 64; i++)
			ev_send(send);
		CHECK_EQ(upcalls, 64, "upcalls_through_x");
		CHECK_EQ(set_x(np), 0, "x_not_present");
		expect_crash("bad handler code selector");
		ev_send(send);
		CHECK_EQ(upcalls, 64, "no_upcall_through_absent_x");
	} else if (mode == 3 || mode == 4) {
		u32 traps = 0, ss = mode == 3 ? Y : X;
		CHECK_EQ(set_y(mkseg(0, 0xFBFFF, ACC_R1_DATA, FLG_G)), 0, "y_ring1_data");
		CHECK_EQ(user_pages_init(), 0, "user_pages");
		trap_hooks[0x80] = int80_hook;
		CHECK_EQ(fast_trap_gate(X, trap_stub(0x80)), 0, "gate_through_x");
		for (i = 0; i < 16; i++)
			traps += int80() == -1;
		CHECK_EQ(traps, 16, "ring1_traps_through_x");
		CHECK_EQ(HYPERVISOR_stack_switch(ss, (u32)si + 2 * PAGE_SIZE), 0, "stack_switch");
		if (mode == 3) {
			traps = 0;
			for (i = 0; i < 16; i++)
				traps += run_user((u32)u_int80, USER_STACK_TOP, 0) == 3;
			CHECK_EQ(traps, 16, "ring3_traps_through_y");
			CHECK_EQ(int80_seen, 32, "handler_ran");
			CHECK_EQ(set_y(np_data()), 0, "y_not_present");
		}
		expect_crash("bad kernel stack selector");
		run_user((u32)u_int80, USER_STACK_TOP, 0);
		CHECK(0, "no_trap_onto_a_bad_stack");
	} else {
		trap_info_t t[2];
		u32 faults = 0;
		CHECK_EQ(HYPERVISOR_update_va_mapping((u32)unmapped, 0, UVMF_INVLPG), 0, "unmap");
		memset(t, 0, sizeof(t));
		t[0].vector = 14;
		t[0].cs = X;
		t[0].address = trap_stub(14);
		CHECK_EQ(HYPERVISOR_set_trap_table(t), 0, "pf_through_x");
		for (i = 0; i < 64; i++)
			faults += trap_catch(touch_unmapped, 0) == 14;
		CHECK_EQ(faults, 64, "faults_through_x");
		CHECK_EQ(set_x(np), 0, "x_not_present");
		expect_crash("bad handler code selector");
		trap_catch(touch_unmapped, 0);
		CHECK(0, "no_fault_through_absent_x");
	}
	checks_done();
}
