/*
 * Hostile guests (test/hostile.test.ts): attackers that run beside a victim domain and try to
 * break isolation. Each check prints PASS/FAIL (lib/check.c); the test pins how many checks a
 * guest prints, so a check that silently stops running fails too.
 *
 * An attack whose right outcome is that Xen crashes the attacker first prints
 * "EXPECT crash: <why>" and "CHECKPOINT passed=N failed=M"; if it survives it goes on
 * checking that what it tried had no effect, and ends with DONE as usual.
 *
 * The command line carries the victim's facts as decimal numbers: victim=<domid>
 * vmfn=<machine frame of a victim data page>, plus mode=<n> for guests with several variants.
 */
#ifndef TSXEN_HOSTILE_H
#define TSXEN_HOSTILE_H

#include "evtchn_ops.h"
#include "lib.h"
#include "probe.h"

#define ROOT_PAGETABLE_FIRST_XEN_SLOT 1008u
#define PTE_RW (_PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY) /* 0x67 */
#define PTE_RO (_PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED)                          /* 0x25 */

volatile u32 hp_val;
volatile u32 hp_addr;
volatile u32 hp_read;
PROBE(hp_store_probe, "movl hp_addr, %eax; movl hp_val, %ecx", "movl %ecx, (%eax)");
PROBE(hp_load_probe, "movl hp_addr, %eax", "movl (%eax), %ecx; movl %ecx, hp_read");

/* A store through the probe: the trap vector, or -1 when the store went through. */
static inline int try_store(u32 va, u32 val)
{
	hp_addr = va;
	hp_val = val;
	return trap_catch(hp_store_probe, 0);
}

/* A load through the probe: the trap vector, or -1 (value in hp_read). */
static inline int try_load(u32 va)
{
	hp_addr = va;
	return trap_catch(hp_load_probe, 0);
}

static inline long mmu1(u32 ptr, u32 val)
{
	mmu_update_t r;
	r.ptr = ptr;
	r.val = val;
	return HYPERVISOR_mmu_update(&r, 1, 0);
}

static inline long mmuext(u32 ma, u32 cmd)
{
	return mmu1((ma & ~3u) | MMU_EXTENDED_COMMAND, cmd);
}

/* Machine frame of our pseudo-physical page pfn. */
static inline u32 p2m(u32 pfn)
{
	return ((const u32 *)start_info->mfn_list)[pfn];
}

/* The k-th page from the top of our memory: above the builder's bootstrap mapping, so no
 * virtual mapping of it exists and it may become a page table. */
static inline u32 spare_mfn(u32 k)
{
	return p2m(start_info->nr_pages - 1 - k);
}

static inline u32 cur_l2_ma(void)
{
	return virt_to_mach((void *)start_info->pt_base);
}

static inline const volatile u32 *cur_l2(void)
{
	return (const volatile u32 *)start_info->pt_base;
}

/* Machine address of the PTE mapping va (through the current L2). */
static inline u32 pte_ma(const void *va)
{
	u32 pde = cur_l2()[(u32)va >> 22];
	return (pde & ~0xfffu) + (((u32)va >> 12) & 1023) * 4;
}

/* A multicall entry update_va_mapping(va, pte, UVMF_INVLPG), its result word marked 0x5555. */
static inline void set_uvm(multicall_entry_t *e, const void *va, u32 pte)
{
	memset(e, 0, sizeof(*e));
	e->op = __HYPERVISOR_update_va_mapping;
	e->args[0] = (u32)va;
	e->args[1] = pte;
	e->args[2] = UVMF_INVLPG;
	MC_RES(e) = 0x5555;
}

/* The machine frame of Xen's M2P L1: every validated L2 holds it at slot 1008. */
static inline u32 m2p_l1_mfn(void)
{
	return cur_l2()[ROOT_PAGETABLE_FIRST_XEN_SLOT] >> PAGE_SHIFT;
}

/* Fills a frame we own (not mapped writable anywhere) with v through mmu_update's plain store
 * path, 1024 requests in one batch. */
static mmu_update_t hp_big[1024];
static inline long fill_frame(u32 mfn, u32 v)
{
	u32 i;
	for (i = 0; i < 1024; i++) {
		hp_big[i].ptr = (mfn << PAGE_SHIFT) + i * 4;
		hp_big[i].val = v;
	}
	return HYPERVISOR_mmu_update(hp_big, 1024, 0);
}

/* Builds an L2 in frame l2 from the current one's guest slots, with extra at slot `slot`
 * (0: none) and slot `clear` emptied. Returns mmu_update's result. */
static inline long build_l2_copy(u32 l2, u32 slot, u32 extra, u32 clear)
{
	const volatile u32 *cur = cur_l2();
	u32 i;
	for (i = 0; i < ROOT_PAGETABLE_FIRST_XEN_SLOT; i++) {
		hp_big[i].ptr = (l2 << PAGE_SHIFT) + i * 4;
		hp_big[i].val = cur[i];
	}
	if (clear)
		hp_big[clear].val = 0;
	if (slot)
		hp_big[slot].val = extra;
	return HYPERVISOR_mmu_update(hp_big, ROOT_PAGETABLE_FIRST_XEN_SLOT, 0);
}

/* Little-endian v at p (code written at run time). */
static inline void put32(u8 *p, u32 v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

/* A function at p: mov eax, v; ret */
static inline void put_fn(u8 *p, u32 v)
{
	p[0] = 0xb8;
	put32(p + 1, v);
	p[5] = 0xc3;
}

/* Vector 0x80 a DPL-3 trap gate to cs:address, made the fast trap. 0 or an errno. */
static inline long fast_trap_gate(u32 cs, u32 address)
{
	trap_info_t t[2];
	memset(t, 0, sizeof(t));
	t[0].vector = 0x80;
	t[0].flags = 3;
	t[0].cs = (u16)cs;
	t[0].address = address;
	return HYPERVISOR_set_trap_table(t) | HYPERVISOR_set_fast_trap(0x80);
}

static inline void hostile_init(start_info_t *si, const char *name)
{
	conf_init(si, name);
}

/* The point after which Xen should crash us: says so, and how many checks ran before it. */
static inline void expect_crash(const char *why)
{
	printk("EXPECT crash: %s\n", why);
	printk("CHECKPOINT passed=%u failed=%u\n", checks_passed, checks_failed);
}

static inline void load_cr3(u32 ma)
{
	/* Privileged at ring 1: #GP, and Xen emulates it (semantics.md §4.8). */
	__asm__ __volatile__("movl %0, %%cr3" ::"r"(ma) : "memory");
}

#endif
