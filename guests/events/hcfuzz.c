/*
 * Hypercall fuzzer: thousands of hypercalls with random numbers and arguments, pointers
 * aimed at its own memory (filled with random bytes), at the hypervisor boundary and at
 * nowhere. The hypervisor must answer each with an errno, a bounced fault or a clean crash of
 * this domain; never an internal error. cmdline: seed=N count=N.
 *
 * The guest survives its own calls, so every seed makes all `count` calls:
 *  - the memory it runs on (every page the builder mapped: code, data, stack, start_info, p2m
 *    list, page tables) is kept out of reach: update_va_mapping of a VA there is turned to the
 *    scratch pages, a PTE naming one of those frames names a scratch frame instead, and
 *    mmu_update requests aimed at them (or a new base pointer other than its own L2) are
 *    turned to a scratch frame (errors); any argument pointing there (an output pointer) points
 *    into scratch. Multicall entries in scratch get the same treatment;
 *  - the trap table and callbacks are installed again after any call that may have replaced
 *    them (events stay masked, so no upcall runs in between);
 *  - a fault (a bounced trap: the call's own, or the guest's next touch of a scratch page the
 *    call unmapped or made read-only, a data breakpoint it set) is counted by vector: the trap
 *    handler returns to the loop, which installs its environment again, remaps the scratch
 *    pages (a frame given back is replaced by increase_reservation) and clears DR7; a trap
 *    before the call is made retries it.
 * A victim domain may sit beside it (cmdline vdom=<domid> vmfn=<one of its frames>): its domid
 * and frame are among the arguments and are planted in scratch (frame lists, PTEs, grant and
 * event-channel blocks), so calls name another domain's memory. Sub-command blocks of
 * event_channel_op, physdev_op, dom0_op (with the right interface version) and vm_assist get
 * valid commands half the time, so their handlers are reached past the first check, and
 * console_io sometimes gets a huge count.
 *
 * At the end it prints the calls made, each call's outcome (0, positive, an errno, a fault
 * during the call), the traps taken and the calls made of each hypercall number.
 */
#include "evtchn_ops.h"
#include "lib.h"

static u32 state;
static u32 rnd(void)
{
	state ^= state << 13;
	state ^= state >> 17;
	state ^= state << 5;
	return state;
}

/* The scratch pages and, after them, a guard page left unmapped: what Xen writes through a
 * pointer near the end of scratch (a multicall's results, a list of frames) faults there
 * instead of overwriting this guest's variables. */
#define SCRATCH_PAGES 3
#define SCRATCH_SIZE (SCRATCH_PAGES * 4096)
static u8 scratch_area[SCRATCH_SIZE + 4096] BSS_PAGE;
#define scratch scratch_area
static u32 scratch_mfn[SCRATCH_PAGES];
static u8 scratch_dead[SCRATCH_PAGES];

/* Frames this guest runs on (by MFN; larger MFNs are never its own). */
#define MAX_MFN (1u << 16)
static u8 keep_mfn[MAX_MFN];
static u32 protect_end; /* [_text, protect_end): the builder's mapping */
static u32 l2_mfn;
static u32 text_ro; /* pages of text mapped read-only */
static u32 vdom = 0x7ff0u, vmfn; /* the victim's domid and frame (DOMID_SELF, 0: none) */

static u32 arg(void)
{
	switch (rnd() % 10) {
	case 8: return vdom;
	case 9: return (vmfn << PAGE_SHIFT) | (rnd() & 0x67);
	case 0: return rnd();
	case 1: return rnd() % 64;
	case 2: return (u32)scratch + (rnd() % SCRATCH_SIZE);
	case 3: return (u32)scratch + (rnd() % 64) * 8;
	case 4: return 0xfc000000u - (rnd() % 64);
	case 5: return 0;
	case 6: return 0x7ff0u + (rnd() % 4); /* DOMID_SELF.. */
	default: return rnd() & 0xfffff003u;
	}
}

static int in_scratch(u32 va)
{
	return va - (u32)scratch < SCRATCH_SIZE;
}

static int kept_frame(u32 mfn)
{
	return mfn < MAX_MFN && keep_mfn[mfn];
}

static u32 any_scratch_mfn(void)
{
	return scratch_mfn[rnd() % SCRATCH_PAGES];
}

static struct {
	u32 calls, ok, positive, errors, faulted, traps, constrained;
} out;

/* A PTE value: one naming a frame the guest runs on names a scratch frame instead. */
static u32 safe_pte(u32 pte)
{
	if ((pte & _PAGE_PRESENT) && kept_frame(pte >> PAGE_SHIFT)) {
		out.constrained++;
		return (pte & 0xfff) | (any_scratch_mfn() << PAGE_SHIFT);
	}
	return pte;
}

static u32 safe_va(u32 va)
{
	if (va - (u32)_text < protect_end - (u32)_text && !in_scratch(va)) {
		out.constrained++;
		return (u32)scratch + (va % SCRATCH_SIZE);
	}
	return va;
}

/* mmu_update requests (March: {ptr, val}) lying in scratch. */
static void constrain_mmu_update(u32 reqs, u32 count)
{
	for (u32 i = 0; i < count && in_scratch(reqs + i * 8) && in_scratch(reqs + i * 8 + 7); i++) {
		u32 *r = (u32 *)(reqs + i * 8);
		u32 cmd = r[0] & 3, f = r[0] >> PAGE_SHIFT;
		if (cmd == MMU_EXTENDED_COMMAND && (r[1] & MMUEXT_CMD_MASK) == MMUEXT_NEW_BASEPTR) {
			r[0] = (l2_mfn << PAGE_SHIFT) | MMU_EXTENDED_COMMAND;
			out.constrained++;
		} else if (cmd != MMU_MACHPHYS_UPDATE && kept_frame(f)) {
			r[0] = (any_scratch_mfn() << PAGE_SHIFT) | (r[0] & 0xfff);
			out.constrained++;
		}
	}
}

/* The first word of a block in scratch (a sub-command), half the time one below `n`. */
static void small_cmd(u32 va, u32 n)
{
	if (in_scratch(va) && in_scratch(va + 7) && (rnd() & 1))
		*(u32 *)va = rnd() % n;
}

/* Any argument pointing into the memory it runs on points into scratch instead: Xen writes
 * through output pointers (mmu_update's pdone even when the call fails, as Xen's `out:` path
 * does), and .rodata after the read-only text holds the switch tables (seed 2672: a sub-call's
 * pdone zeroed arg()'s case-9 entry, 0xc0000100 -> 0xc0000000, and the next case 9 jumped to
 * the entry point). */
static void safe_ptrs(u32 *a)
{
	for (u32 i = 0; i < 5; i++)
		a[i] = safe_va(a[i]);
}

static void constrain(u32 nr, u32 *a, int depth)
{
	safe_ptrs(a);
	switch (nr & 31) {
	case __HYPERVISOR_event_channel_op: small_cmd(a[0], 8); break;
	case __HYPERVISOR_physdev_op: small_cmd(a[0], 12); break;
	case __HYPERVISOR_dom0_op:
		small_cmd(a[0], 48);
		if (in_scratch(a[0]) && in_scratch(a[0] + 7))
			((u32 *)a[0])[1] = DOM0_INTERFACE_VERSION;
		break;
	case __HYPERVISOR_vm_assist:
		if (rnd() & 1) {
			a[0] = rnd() % 2;
			a[1] = rnd() % 4;
		}
		break;
	case __HYPERVISOR_update_va_mapping:
	case __HYPERVISOR_update_va_mapping_otherdomain:
		a[0] = safe_va(a[0]);
		a[1] = safe_pte(a[1]);
		break;
	case __HYPERVISOR_mmu_update:
		constrain_mmu_update(a[0], a[1]);
		break;
	case __HYPERVISOR_multicall:
		for (u32 i = 0; depth == 0 && i < a[1] && in_scratch(a[0] + i * 32) &&
				in_scratch(a[0] + i * 32 + 31);
		     i++) {
			multicall_entry_t *e = (multicall_entry_t *)(a[0] + i * 32);
			constrain(e->op, e->args, depth + 1);
		}
		break;
	case __HYPERVISOR_sched_op: a[0] = SCHEDOP_yield; break;  /* no shutdown or block */
	case __HYPERVISOR_console_io: /* mostly short writes: keep the console readable */
		a[1] = rnd() % 8 ? a[1] & 63 : a[1] | 0x80000000u;
		break;
	case __HYPERVISOR_set_timer_op: a[0] = 0; break;           /* no far-future timers */
	}
}

static void environment(void)
{
	traps_init();
	callbacks_init();
}

/* After a fault: the scratch pages mapped again (a frame given back replaced), DR7 cleared. */
static void repair(void)
{
	environment();
	HYPERVISOR_set_debugreg(7, 0);
	for (u32 p = 0; p < SCRATCH_PAGES; p++) {
		u32 va = (u32)scratch + p * 4096;
		if (scratch_dead[p])
			continue;
		if (HYPERVISOR_update_va_mapping(va, (scratch_mfn[p] << PAGE_SHIFT) | 7, UVMF_INVLPG) == 0)
			continue;
		u32 mfn = 0;
		if (HYPERVISOR_dom_mem_op(MEMOP_increase_reservation, &mfn, 1, 0, DOMID_SELF) == 1 &&
		    mfn < MAX_MFN &&
		    HYPERVISOR_update_va_mapping(va, (mfn << PAGE_SHIFT) | 7, UVMF_INVLPG) == 0)
			scratch_mfn[p] = mfn;
		else
			scratch_dead[p] = 1;
	}
}

static volatile u32 in_call;
static u32 by_nr[34], cur_nr;
static volatile long last_rc;

static void one_call(void *unused)
{
	for (u32 k = 0; k < 64; k++) {
		u32 i = rnd() % SCRATCH_SIZE;
		if (!scratch_dead[i / 4096])
			scratch[i] = (u8)rnd();
	}
	/* The victim's frame and domid in a few aligned words (frame lists, PTEs, blocks). */
	for (u32 k = 0; k < 4; k++) {
		u32 w = (rnd() % (SCRATCH_SIZE / 4)) * 4;
		if (!scratch_dead[w / 4096])
			*(u32 *)(scratch + w) = k & 1 ? vdom : k & 2 ? vmfn : (vmfn << PAGE_SHIFT) | 0x67;
	}
	u32 nr = rnd() % 34;
	cur_nr = nr;
	u32 a[5] = {arg(), arg(), arg(), arg(), arg()};
	constrain(nr, a, 0);
	in_call = 1;
	last_rc = hypercall5(nr, a[0], a[1], a[2], a[3], a[4]);
	in_call = 0;
	nr &= 31;
	if (nr == __HYPERVISOR_set_trap_table || nr == __HYPERVISOR_set_callbacks ||
	    nr == __HYPERVISOR_multicall)
		environment();
}

static void keep_builder_frames(start_info_t *si)
{
	const u32 *p2m = (const u32 *)si->mfn_list;
	/* The builder maps the image, p2m list, start_info, page tables and its stack from
	 * _text up to a 4 MiB boundary (or the end of memory). */
	u32 used = si->pt_base + (si->nr_pt_frames + 1) * 4096 - (u32)_text;
	u32 mapped = (used + 0x3fffff) & ~0x3fffffu;
	if (mapped > si->nr_pages * 4096)
		mapped = si->nr_pages * 4096;
	protect_end = (u32)_text + mapped;
	for (u32 pfn = 0; pfn < mapped / 4096; pfn++)
		if (p2m[pfn] < MAX_MFN)
			keep_mfn[p2m[pfn]] = 1;
	for (u32 p = 0; p < SCRATCH_PAGES; p++) {
		scratch_mfn[p] = virt_to_mfn(scratch + p * 4096);
		keep_mfn[scratch_mfn[p]] = 0;
	}
	l2_mfn = virt_to_mfn((void *)si->pt_base);
	if (HYPERVISOR_update_va_mapping((u32)scratch + SCRATCH_SIZE, 0, UVMF_INVLPG) != 0)
		printk("hcfuzz: FAIL unmap guard page\n");
	/* The text read-only: Xen writing through a random pointer (a result, a frame list) into
	 * this guest's code would change what runs, and a loop that no longer ends is no crash the
	 * hypervisor could be blamed for; through a read-only mapping it is an -EFAULT instead. The
	 * text's pages hold nothing else (the link script aligns what follows). */
	for (u32 va = (u32)_text; va < (u32)_etext; va += 4096)
		if (HYPERVISOR_update_va_mapping(va, (virt_to_mfn((void *)va) << PAGE_SHIFT) | _PAGE_PRESENT |
							  _PAGE_USER | _PAGE_ACCESSED,
						  UVMF_INVLPG) != 0)
			printk("hcfuzz: FAIL text read-only\n");
	text_ro = ((u32)_etext - (u32)_text + 4095) / 4096;
}

void start_kernel(start_info_t *si)
{
	lib_init(si);
	state = (cmdline_u32(si, "seed", 1) * 0x9e3779b1u) | 1;
	u32 count = cmdline_u32(si, "count", 2000);
	vdom = cmdline_u32(si, "vdom", vdom);
	vmfn = cmdline_u32(si, "vmfn", 0);
	printk("hcfuzz: seed=%u count=%u\n", state, count);
	if (map_shared_info() != 0)
		printk("hcfuzz: FAIL map_shared_info\n");
	events_disable();
	keep_builder_frames(si);
	environment();
	u32 vectors[32] = {0};
	while (out.calls < count) {
		int v = trap_catch(one_call, 0);
		if (v < 0 || in_call) {
			out.calls++;
			by_nr[cur_nr]++;
			if (v >= 0)
				out.faulted++;
			else if (last_rc == 0) {
				out.ok++;
			} else if (last_rc > 0) {
				out.positive++;
			} else {
				out.errors++;
			}
		}
		in_call = 0;
		if (v >= 0) {
			out.traps++;
			vectors[v & 31]++;
			repair();
		}
	}
	printk("hcfuzz: calls=%u ok=%u positive=%u errors=%u faulted=%u traps=%u constrained=%u\n",
	       out.calls, out.ok, out.positive, out.errors, out.faulted, out.traps, out.constrained);
	printk("hcfuzz: text_ro=%u\n", text_ro);
	printk("hcfuzz: by_nr");
	for (u32 n = 0; n < 34; n++)
		printk(" %u", by_nr[n]);
	printk("\n");
	for (u32 v = 0; v < 32; v++)
		if (vectors[v])
			printk("hcfuzz: fault vector %u x%u\n", v, vectors[v]);
	printk("hcfuzz: done\n");
	HYPERVISOR_sched_op(SCHEDOP_shutdown | (SHUTDOWN_poweroff << SCHEDOP_reasonshift));
	for (;;)
		;
}
