/*
 * Page-table fuzzer guest (scripts/ptfuzz.ts drives it). role=attacker: an executor that
 * fetches one operation at a time from the driver and carries it out through the real route:
 * a hypercall by int $0x82, a plain store or load (so writable-page-table faults happen), a
 * mov to CR3 (emulated by Xen from ring 1) or a copy. Each operation runs under trap_catch,
 * so its faults are counted and skipped. The fetch is xen_version(FUZZ_MAGIC, &op, executed, pool):
 * the driver runs its checks there, writes the next operation into `op` and answers 1, or 0
 * when the program is over. role=victim: fills its pool with a pattern and blocks forever; the
 * driver hashes its memory before and after.
 */
#include "evtchn_ops.h"
#include "lib.h"

#define FUZZ_MAGIC 0x46555a5au
#define POOL_PAGES 40

enum { OP_HYPERCALL = 1, OP_STORE = 2, OP_LOAD = 3, OP_CR3 = 4, OP_COPY = 5 };

/* One operation: kind, seven arguments, the rest of the page as payload (hypercall arguments). */
struct fuzz_op {
	u32 kind;
	u32 a[7];
	u32 payload[1016];
};
_Static_assert(sizeof(struct fuzz_op) == 4096, "one page");

static struct fuzz_op op BSS_PAGE;
/* The driver's playground: frames it turns into page tables, maps, gives away. */
u8 pool[POOL_PAGES][4096] BSS_PAGE;

static void run_op(void *unused)
{
	(void)unused;
	switch (op.kind) {
	case OP_HYPERCALL:
		hypercall5(op.a[0], op.a[1], op.a[2], op.a[3], op.a[4], op.a[5]);
		break;
	case OP_STORE:
		*(volatile u32 *)op.a[0] = op.a[1];
		break;
	case OP_LOAD:
		(void)*(volatile u32 *)op.a[0];
		break;
	case OP_CR3:
		__asm__ __volatile__("movl %0, %%cr3" ::"r"(op.a[0]) : "memory");
		break;
	case OP_COPY: {
		volatile u32 *d = (volatile u32 *)op.a[0];
		const volatile u32 *s = (const volatile u32 *)op.a[1];
		for (u32 i = 0; i < op.a[2]; i++) d[i] = s[i];
		break;
	}
	default:
		break;
	}
}

static void victim(void)
{
	for (u32 i = 0; i < POOL_PAGES; i++)
		for (u32 j = 0; j < 4096; j++) pool[i][j] = (u8)(i * 7 + j * 13 + 1);
	printk("ptfuzz: victim ready\n");
	for (;;)
		HYPERVISOR_sched_op(SCHEDOP_block);
}

void start_kernel(start_info_t *si)
{
	lib_init(si);
	if (cmdline_u32(si, "victim", 0))
		victim();
	if (traps_init() != 0 || HYPERVISOR_vm_assist(VMASST_CMD_enable, VMASST_TYPE_writable_pagetables) != 0) {
		printk("ptfuzz: set-up failed\n");
		guest_halt(SHUTDOWN_crash);
	}
	printk("ptfuzz: attacker ready, pool at %08x, op at %08x\n", (u32)pool, (u32)&op);
	u32 executed = 0;
	while (hypercall4(__HYPERVISOR_xen_version, FUZZ_MAGIC, (u32)&op, executed, (u32)pool) == 1) {
		trap_catch(run_op, 0);
		executed++;
	}
	printk("ptfuzz: %u operations\n", executed);
	guest_halt(SHUTDOWN_poweroff);
}
