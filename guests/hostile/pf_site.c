/*
 * The #PF bounced at its fault site (test/hostile-pfsite.test.ts): a fault a compiled block
 * takes is offered to Xen's in-run bounce where the block hands it over (cpu.ts Cpu.held,
 * tookInPlace), and the block's caller goes on at the handler. Ring-1 loops of PASSES faults,
 * warm (compiled, and in wasm chained), each skipped by our handler, which checks CR2, the error
 * code, the faulting EIP and that no part of the faulting instruction took effect:
 *   rmw:  `addl $7, (hole)`, the read-modify-write's read on a not-present page;
 *   ro:   the same on a page of ours mapped read-only (the write's fault): the word unchanged;
 *   last: `jmp *(hole)`, the block's last instruction (it ends the block) faulting;
 *   ev:   an event made pending and unmasked (in shared_info, no hypercall) just before each
 *         fault: Xen delivers the upcall on the way out of the #PF's exit, so the upcall runs
 *         before our handler, every pass;
 *   evif: the same with the #PF's trap gate masking events (TI_IF): no upcall in the loop,
 *         one at the next hypercall after we unmask.
 * Then, by mode=<n>, one more pass of the same warm loop after:
 *   1 the ring-1 stack turned to a page of ours made read-only,
 *   2 the ring-1 stack turned to Xen's space,
 *   3 the trap table's #PF selector a null one (RPL 1),
 *   4 ... an LDT selector with no LDT,
 *   5 ... a GDT selector of an empty entry:
 * each must crash us (the frame nowhere; our stack page, still read-only, unchanged).
 */
#include "desc.h"
#include "hostile.h"

#define PASSES 3000u

static u8 hole[PAGE_SIZE] BSS_PAGE;
static u8 ro[PAGE_SIZE] BSS_PAGE;
static u8 ro_stack[PAGE_SIZE] BSS_PAGE;
static u8 scratch_stack[PAGE_SIZE] BSS_PAGE;

/* (n, va): n passes of incl %ebx, the faulting rmw, decl %ecx; returns EBX (0x1234 + n). */
__asm__(".pushsection .text\n"
	".globl ps_rmw_loop, ps_rmw_at, ps_rmw_after\n"
	"ps_rmw_loop:\n"
	"	pushl %ebx\n"
	"	movl 8(%esp), %ecx\n"
	"	movl 12(%esp), %edx\n"
	"	movl $0x1234, %ebx\n"
	"1:	incl %ebx\n"
	"ps_rmw_at:	addl $7, (%edx)\n"
	"ps_rmw_after:	decl %ecx\n"
	"	jnz 1b\n"
	"	movl %ebx, %eax\n"
	"	popl %ebx\n"
	"	ret\n"
	/* (n, va): n passes of decl %ecx, then jmp *(va) ending the block; returns ECX (0). */
	".globl ps_jmp_loop, ps_jmp_at, ps_jmp_after\n"
	"ps_jmp_loop:\n"
	"	movl 4(%esp), %ecx\n"
	"	movl 8(%esp), %edx\n"
	"1:	decl %ecx\n"
	"ps_jmp_at:	jmp *(%edx)\n"
	"ps_jmp_after:	jnz 1b\n"
	"	movl %ecx, %eax\n"
	"	ret\n"
	/* (n, va, vcpu_info): n passes of: upcall pending, mask 0, the faulting load. */
	".globl ps_ev_loop, ps_ev_at, ps_ev_after\n"
	"ps_ev_loop:\n"
	"	pushl %esi\n"
	"	movl 8(%esp), %ecx\n"
	"	movl 12(%esp), %edx\n"
	"	movl 16(%esp), %esi\n"
	"1:	movb $1, 0(%esi)\n"
	"	movb $0, 1(%esi)\n"
	"ps_ev_at:	movl (%edx), %eax\n"
	"ps_ev_after:	decl %ecx\n"
	"	jnz 1b\n"
	"	popl %esi\n"
	"	ret\n"
	/* (n, va, esp): n passes of the faulting load with ESP at esp, then ESP back. */
	".globl ps_stack_loop, ps_stack_at, ps_stack_after\n"
	"ps_stack_loop:\n"
	"	pushl %ebp\n"
	"	movl %esp, %ebp\n"
	"	movl 8(%ebp), %ecx\n"
	"	movl 12(%ebp), %edx\n"
	"1:	movl 16(%ebp), %esp\n"
	"ps_stack_at:	movl (%edx), %eax\n"
	"ps_stack_after:	movl %ebp, %esp\n"
	"	decl %ecx\n"
	"	jnz 1b\n"
	"	popl %ebp\n"
	"	ret\n"
	".popsection\n");
u32 ps_rmw_loop(u32 n, u32 va);
u32 ps_jmp_loop(u32 n, u32 va);
void ps_ev_loop(u32 n, u32 va, vcpu_info_t *v);
void ps_stack_loop(u32 n, u32 va, u32 esp);
extern char ps_rmw_at[], ps_rmw_after[], ps_jmp_at[], ps_jmp_after[];
extern char ps_ev_at[], ps_ev_after[], ps_stack_at[], ps_stack_after[];

static volatile u32 pf_seen, pf_bad, ev_order_bad, ev_masked_bad;
static volatile u32 want_cr2, want_err;
static volatile u32 upcalls;

static int pf_hook(struct trap_frame *f)
{
	u32 after;
	if (f->eip == (u32)ps_rmw_at)
		after = (u32)ps_rmw_after;
	else if (f->eip == (u32)ps_jmp_at)
		after = (u32)ps_jmp_after;
	else if (f->eip == (u32)ps_ev_at)
		after = (u32)ps_ev_after;
	else if (f->eip == (u32)ps_stack_at)
		after = (u32)ps_stack_after;
	else
		return 0;
	if (f->cr2 != want_cr2 || f->error_code != want_err || (f->cs & 3) != 1)
		pf_bad++;
	pf_seen++;
	f->eip = after;
	return 1;
}

/* ev: the upcall ran before this fault's handler (one upcall a fault so far). */
static int pf_ev_hook(struct trap_frame *f)
{
	if (upcalls != pf_seen + 1 || vcpu0()->evtchn_upcall_pending != 0)
		ev_order_bad++;
	return pf_hook(f);
}

/* evif: the gate masked events, so the pending upcall waits. */
static int pf_evif_hook(struct trap_frame *f)
{
	if (upcalls != 0 || vcpu0()->evtchn_upcall_mask != 1)
		ev_masked_bad++;
	return pf_hook(f);
}

static void count_upcall(struct upcall_frame *f)
{
	(void)f;
	vcpu0()->evtchn_upcall_pending = 0;
	upcalls++;
}

static void expect(u32 cr2, u32 err)
{
	want_cr2 = cr2;
	want_err = err;
	pf_seen = 0;
}

static void warm_stack_loop(void)
{
	expect((u32)hole, 0);
	ps_stack_loop(PASSES, (u32)hole, (u32)scratch_stack + PAGE_SIZE);
	CHECK_EQ(pf_seen, PASSES, "stack_passes");
}

void start_kernel(start_info_t *si)
{
	u32 mode;
	hostile_init(si, "pf_site");
	mode = cmdline_u32(si, "mode", 0);
	CHECK_EQ(remap(hole, 0), 0, "hole_unmapped");
	((volatile u32 *)ro)[0] = 0x5151;
	CHECK_EQ(remap(ro, 1), 0, "ro_read_only");
	trap_hooks[14] = pf_hook;

	/* A not-present page under a read-modify-write: a write access (W), from ring 1. */
	expect((u32)hole, 2);
	CHECK_EQ(ps_rmw_loop(PASSES, (u32)hole), 0x1234 + PASSES, "rmw_other_insns");
	CHECK_EQ(pf_seen, PASSES, "rmw_passes");
	CHECK_EQ(pf_bad, 0, "rmw_frames");

	/* A read-only page: P and W; the word unchanged. */
	expect((u32)ro, 3);
	CHECK_EQ(ps_rmw_loop(PASSES, (u32)ro), 0x1234 + PASSES, "ro_other_insns");
	CHECK_EQ(pf_seen, PASSES, "ro_passes");
	CHECK_EQ(pf_bad, 0, "ro_frames");
	CHECK_EQ(((volatile u32 *)ro)[0], 0x5151, "ro_word_unchanged");

	/* The block's last instruction. */
	expect((u32)hole, 0);
	CHECK_EQ(ps_jmp_loop(PASSES, (u32)hole), 0, "last_other_insns");
	CHECK_EQ(pf_seen, PASSES, "last_passes");
	CHECK_EQ(pf_bad, 0, "last_frames");

	/* A pending, unmasked event at each fault: the upcall first. */
	upcall_hook = count_upcall;
	upcalls = 0;
	trap_hooks[14] = pf_ev_hook;
	expect((u32)hole, 0);
	ps_ev_loop(PASSES, (u32)hole, vcpu0());
	CHECK_EQ(pf_seen, PASSES, "ev_passes");
	CHECK_EQ(upcalls, PASSES, "ev_upcalls");
	CHECK_EQ(ev_order_bad, 0, "ev_upcall_before_handler");
	CHECK_EQ(pf_bad, 0, "ev_frames");

	/* The same through a gate that masks events: none in the loop, one after. */
	CHECK_EQ(trap_set(14, TI_IF), 0, "pf_gate_masks");
	upcalls = 0;
	trap_hooks[14] = pf_evif_hook;
	expect((u32)hole, 0);
	ps_ev_loop(PASSES, (u32)hole, vcpu0());
	CHECK_EQ(pf_seen, PASSES, "evif_passes");
	CHECK_EQ(ev_masked_bad, 0, "evif_no_upcall_in_loop");
	events_enable();
	(void)HYPERVISOR_xen_version(0);
	CHECK_EQ(upcalls, 1, "evif_upcall_after");
	upcall_hook = 0;
	CHECK_EQ(trap_set(14, 0), 0, "pf_gate_back");
	trap_hooks[14] = pf_hook;

	/* A warm stack loop, then the turn. */
	warm_stack_loop();
	switch (mode) {
	case 0:
		break;
	case 1:
		((volatile u32 *)ro_stack)[1000] = 0xABCD;
		CHECK_EQ(remap(ro_stack, 1), 0, "stack_read_only");
		expect_crash("fault while writing a bounce frame");
		ps_stack_loop(1, (u32)hole, (u32)ro_stack + 0x800);
		break;
	case 2:
		expect_crash("fault while writing a bounce frame");
		ps_stack_loop(1, (u32)hole, 0xFC800000u);
		break;
	case 3:
	case 4:
	case 5: {
		static trap_info_t t[2];
		memset(t, 0, sizeof(t));
		t[0].vector = 14;
		t[0].cs = mode == 3 ? 0x01 : mode == 4 ? 0x0D : 0x09;
		t[0].address = trap_stub(14);
		CHECK_EQ(HYPERVISOR_set_trap_table(t), 0, "bad_selector_taken");
		expect_crash("bad handler code selector");
		ps_stack_loop(1, (u32)hole, (u32)scratch_stack + PAGE_SIZE);
		break;
	}
	default:
		check_fail("mode", "unknown mode %u", mode);
	}
	CHECK_EQ(((volatile u32 *)ro_stack)[1000], mode == 1 ? 0xABCD : 0, "ro_stack_unchanged");
	checks_done();
}
