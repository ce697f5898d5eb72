/*
 * Exit round trips, for bench/exits-bench.ts (npm run bench:exits): loops each kind of
 * exit and brackets each loop with console lines the bench timestamps in wall-clock:
 *   BENCH <kind> begin
 *   BENCH <kind> end n=<round trips> items=<entries per round trip>
 * Kinds: null hypercall (xen_version), multicall of `batch` xen_version entries,
 * mmu_update of `batch` L1 entries (each PTE rewritten to its own value), a #PF bounced
 * to the guest's handler and back, an event sent to itself (send + upcall), a privileged
 * instruction emulated (mov from CR0 at ring 1), a ring-3 int 0x80 through the fast trap gate
 * to a handler that irets. Each runs `rounds` times, so the first
 * (cold) round can be told from the steady ones.
 * cmdline: n=<iterations> batch=<N> rounds=<R> [only=<kind>] (one kind, for a profile).
 */
#include "lib.h"
#include "evtchn_ops.h"

#define MAX_BATCH 64

static multicall_entry_t mc[MAX_BATCH];
static mmu_update_t mu[MAX_BATCH];
static u8 pages[MAX_BATCH][4096] BSS_PAGE;
static u8 unmapped[4096] BSS_PAGE;
static volatile u32 upcalls;
static u32 failures;

/* Run this kind? All of them unless the command line says only=<kind>. */
static int want(const char *kind) { return !cmdline_word("only=") || cmdline_word(kind); }

static void begin(const char *kind) { printk("BENCH %s begin\n", kind); }

static void end(const char *kind, u32 n, u32 items) { printk("BENCH %s end n=%u items=%u\n", kind, n, items); }

static void fail(const char *what, long rc)
{
	printk("BENCH FAIL %s rc=%d\n", what, (int)rc);
	failures++;
}

static void null_hypercalls(u32 n)
{
	for (u32 i = 0; i < n; i++)
		HYPERVISOR_xen_version(0);
}

static void multicalls(u32 n, u32 batch)
{
	for (u32 i = 0; i < batch; i++)
		mc[i].op = __HYPERVISOR_xen_version;
	for (u32 i = 0; i < n; i++) {
		long rc = HYPERVISOR_multicall(mc, batch);
		if (rc != 0)
			return fail("multicall", rc);
	}
}

static void mmu_updates(u32 n, u32 batch, start_info_t *si)
{
	const volatile u32 *l2 = (const volatile u32 *)si->pt_base;
	for (u32 i = 0; i < batch; i++) {
		u32 va = (u32)pages[i];
		u32 ma_l1 = l2[va >> 22] & ~0xfffu;
		mu[i].ptr = ma_l1 + ((va >> PAGE_SHIFT) & 1023) * 4; /* MMU_NORMAL_PT_UPDATE */
		mu[i].val = virt_to_mach(pages[i]) | 0x23;      /* P|RW|A: as mapped */
	}
	for (u32 i = 0; i < n; i++) {
		long rc = HYPERVISOR_mmu_update(mu, batch, 0);
		if (rc != 0)
			return fail("mmu_update", rc);
	}
}

/* The faulting load and the instruction after it, for the #PF hook. */
__asm__(".pushsection .text\n"
	".globl pf_loop\n"
	"pf_loop:\n" /* (n, va) */
	"	movl 4(%esp), %ecx\n"
	"	movl 8(%esp), %edx\n"
	"1:\n"
	"pf_insn:\n"
	"	movl (%edx), %eax\n"
	"pf_after:\n"
	"	decl %ecx\n"
	"	jnz 1b\n"
	"	ret\n"
	".popsection\n");
extern char pf_insn[], pf_after[];
void pf_loop(u32 n, u32 va);

static int pf_hook(struct trap_frame *f)
{
	if (f->eip != (u32)pf_insn)
		return 0;
	f->eip = (u32)pf_after;
	return 1;
}

static void page_faults(u32 n)
{
	trap_hooks[14] = pf_hook;
	pf_loop(n, (u32)unmapped);
	trap_hooks[14] = 0;
}

static void on_event(u32 port, struct upcall_frame *f)
{
	(void)port;
	(void)f;
	upcalls++;
}

static void event_upcalls(u32 n, u32 port)
{
	u32 want = upcalls + n;
	for (u32 i = 0; i < n; i++) {
		long rc = ev_send(port);
		if (rc != 0)
			return fail("evtchn_send", rc);
	}
	if (upcalls != want)
		fail("upcalls_taken", (long)(want - upcalls));
}

/* Ring 3: EAX passes of int 0x80 through the fast trap gate, then int3 back to run_user. The
 * handler at ring 1 only irets: one round trip is the int, the iret and the loop's two. */
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl u_fast_trap_loop\n"
	"u_fast_trap_loop:\n"
	"1:	int $0x80\n"
	"	decl %eax\n"
	"	jnz 1b\n"
	"	int3\n"
	".popsection\n"
	".pushsection .text\n"
	".globl fast_trap_iret\n"
	"fast_trap_iret:\n"
	"	iret\n"
	".popsection\n");
extern char u_fast_trap_loop[], fast_trap_iret[];

static void fast_traps(u32 n)
{
	trap_info_t t[2];
	memset(t, 0, sizeof(t));
	t[0].vector = 0x80;
	t[0].flags = 3; /* DPL 3, events not masked: what set_fast_trap accepts */
	t[0].cs = FLAT_KERNEL_CS;
	t[0].address = (u32)fast_trap_iret;
	long rc = HYPERVISOR_set_trap_table(t) | HYPERVISOR_set_fast_trap(0x80);
	if (rc != 0)
		return fail("set_fast_trap", rc);
	if (n != 0 && run_user((u32)u_fast_trap_loop, USER_STACK_TOP, n) != 3)
		fail("fast_trap_loop", -1);
}

static void priv_ops(u32 n)
{
	u32 v;
	for (u32 i = 0; i < n; i++)
		__asm__ __volatile__("movl %%cr0, %0" : "=r"(v));
}

void start_kernel(start_info_t *si)
{
	u32 n, batch, rounds, port = 0, recv = 0;
	long rc;

	conf_init(si, "bench_exits");
	n = cmdline_u32(si, "n", 20000);
	batch = cmdline_u32(si, "batch", 16);
	rounds = cmdline_u32(si, "rounds", 3);
	if (batch < 1 || batch > MAX_BATCH)
		batch = 16;
	rc = user_pages_init();
	if (rc != 0)
		fail("user_pages", rc);
	rc = HYPERVISOR_update_va_mapping((u32)unmapped, 0, UVMF_INVLPG);
	if (rc != 0)
		fail("unmap", rc);
	rc = ev_loopback(&port, &recv);
	if (rc != 0)
		fail("loopback", rc);
	evtchn_handlers[recv] = on_event;
	clear_bit(recv, HYPERVISOR_shared_info->evtchn_mask);
	events_enable();

	for (u32 r = 0; r < rounds && failures == 0; r++) {
		if (want("null_hypercall")) {
			begin("null_hypercall");
			null_hypercalls(n);
			end("null_hypercall", n, 1);
		}
		if (want("multicall")) {
			begin("multicall");
			multicalls(n / batch, batch);
			end("multicall", n / batch, batch);
		}
		if (want("mmu_update")) {
			begin("mmu_update");
			mmu_updates(n / batch, batch, si);
			end("mmu_update", n / batch, batch);
		}
		if (want("page_fault")) {
			begin("page_fault");
			page_faults(n);
			end("page_fault", n, 1);
		}
		if (want("event_upcall")) {
			begin("event_upcall");
			event_upcalls(n, port);
			end("event_upcall", n, 1);
		}
		if (want("priv_op")) {
			begin("priv_op");
			priv_ops(n);
			end("priv_op", n, 1);
		}
		if (want("fast_trap")) {
			begin("fast_trap");
			fast_traps(n);
			end("fast_trap", n, 1);
		}
	}
	printk("BENCH done failures=%u\n", failures);
	checks_done();
}
