/*
 * Privileged instructions in a loop (test/hostile.test.ts, beside the victim and a domain with
 * a 1 ms periodic timer): hlt, cli, sti and mov to/from control registers at ring 1 and at
 * ring 3, for `ms` of system time (cmdline ms=<N>, default 30). Each one Xen does not emulate
 * is a #GP bounced to us (semantics.md §4.8: from ring 1 only mov to/from CR0/CR2/CR3 is
 * emulated, and cli/sti under a virtual IOPL we do not have; from ring 3 nothing). Every
 * outcome is checked; the test checks the ticking domain's ticks kept their time.
 */
#include "desc.h"
#include "hostile.h"

static void k_hlt(void *a) { __asm__ __volatile__("hlt"); }
static void k_cli(void *a) { __asm__ __volatile__("cli"); }
static void k_sti(void *a) { __asm__ __volatile__("sti"); }
static void k_rd_cr0(void *a) { u32 x; __asm__ __volatile__("movl %%cr0, %0" : "=r"(x)); }
static void k_rd_cr3(void *a) { u32 x; __asm__ __volatile__("movl %%cr3, %0" : "=r"(x)); }
static void k_rd_cr4(void *a) { u32 x; __asm__ __volatile__("movl %%cr4, %0" : "=r"(x)); }
static void k_wr_cr4(void *a) { __asm__ __volatile__("movl %0, %%cr4" ::"r"(0u)); }

/* Ring-3 code: the privileged instruction, then int3 back to ring 1 (if it did not trap). */
__asm__(".pushsection .user.text, \"ax\"\n"
	"u_hlt: hlt\n int3\n"
	"u_cli: cli\n int3\n"
	"u_sti: sti\n int3\n"
	"u_rd_cr0: movl %cr0, %eax\n int3\n"
	"u_wr_cr3: movl %eax, %cr3\n int3\n"
	".popsection\n");
extern char u_hlt[], u_cli[], u_sti[], u_rd_cr0[], u_wr_cr3[];

/* Ring 1: what each gives (13: #GP bounced; -1: emulated, no trap). */
static const struct {
	void (*fn)(void *);
	int want;
} kops[] = {
	{ k_hlt, 13 }, { k_cli, 13 }, { k_sti, 13 }, { k_rd_cr0, -1 },
	{ k_rd_cr3, -1 }, { k_rd_cr4, 13 }, { k_wr_cr4, 13 },
};
static char *const uops[] = { u_hlt, u_cli, u_sti, u_rd_cr0, u_wr_cr3 };

void start_kernel(start_info_t *si)
{
	u32 ms, rounds = 0, traps = 0, bad = 0, i;
	u64 until;
	hostile_init(si, "priv_spam");
	ms = cmdline_u32(si, "ms", 30);
	CHECK_EQ(user_pages_init(), 0, "user_pages");
	until = time_now_ns() + (u64)ms * 1000000ull;
	while (time_now_ns() < until) {
		for (i = 0; i < sizeof(kops) / sizeof(kops[0]); i++) {
			int v = trap_catch(kops[i].fn, 0);
			traps += v == 13;
			bad += v != kops[i].want;
		}
		for (i = 0; i < sizeof(uops) / sizeof(uops[0]); i++) {
			int v = run_user((u32)uops[i], USER_STACK_TOP, si->pt_base);
			traps += v == 13;
			bad += v != 13;
		}
		rounds++;
	}
	printk("SPAM rounds=%u traps=%u\n", rounds, traps);
	CHECK_EQ(bad, 0, "every_op_trapped_or_emulated_as_xen_does");
	CHECK(rounds > 10, "spammed");
	checks_done();
}
