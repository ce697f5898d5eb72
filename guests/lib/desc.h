/*
 * tsxen guest library: segment descriptors for the descriptor-table conformance guests
 * (set_gdt, update_descriptor, ldt): building descriptors, remapping pages, SET_LDT, loading
 * and using selectors under trap_catch, and entering ring 3 with chosen selectors.
 * abi.md §3.2-§3.4, semantics.md §3.
 */
#ifndef TSXEN_DESC_H
#define TSXEN_DESC_H

#include "lib.h"

struct desc {
	u32 lo, hi;
};

/* Access bytes (P | DPL | S | type) and flag nibbles (G | D). */
#define ACC_R1_CODE 0xBA
#define ACC_R1_DATA 0xB2
#define ACC_R1_DATA_DOWN 0xB6
#define ACC_R3_CODE 0xFA
#define ACC_R3_DATA 0xF2
#define ACC_R0_DATA 0x92
#define FLG_G 0xC /* G=1, D=1 */
#define FLG_BYTE 0x4 /* G=0, D=1 */

#define SEL_GDT(i, rpl) (((i) << 3) | (rpl))
#define SEL_LDT(i, rpl) (((i) << 3) | 4 | (rpl))

static inline struct desc mkseg(u32 base, u32 limit, u32 access, u32 flags)
{
	struct desc d;
	d.lo = ((base & 0xFFFF) << 16) | (limit & 0xFFFF);
	d.hi = (base & 0xFF000000) | ((flags & 0xF) << 20) | (limit & 0xF0000) | (access << 8) |
	       ((base >> 16) & 0xFF);
	return d;
}

/* A 32-bit call gate to sel:off, present, DPL dpl. */
static inline struct desc mkgate(u32 sel, u32 off, u32 dpl)
{
	struct desc d;
	d.lo = (sel << 16) | (off & 0xFFFF);
	d.hi = (off & 0xFFFF0000) | 0x8000 | (dpl << 13) | 0xC00;
	return d;
}

static inline u32 desc_limit_field(struct desc d)
{
	return (d.lo & 0xFFFF) | (d.hi & 0xF0000);
}

static inline u32 desc_base(struct desc d)
{
	return (d.hi & 0xFF000000) | ((d.hi & 0xFF) << 16) | (d.lo >> 16);
}

static inline void desc_put(void *table, u32 index, struct desc d)
{
	((volatile u32 *)table)[index * 2] = d.lo;
	((volatile u32 *)table)[index * 2 + 1] = d.hi;
}

static inline struct desc desc_get(const void *table, u32 index)
{
	struct desc d;
	d.lo = ((const volatile u32 *)table)[index * 2];
	d.hi = ((const volatile u32 *)table)[index * 2 + 1];
	return d;
}

/* Remap one of our own pages at its VA with the given PTE flags (P=1 read-only, 3 RW). */
static inline long remap(const void *va, u32 flags)
{
	return HYPERVISOR_update_va_mapping((u32)va, (virt_to_mfn(va) << PAGE_SHIFT) | flags,
					    UVMF_INVLPG);
}

static inline long set_ldt(u32 va, u32 ents)
{
	mmu_update_t u;
	u.ptr = va | MMU_EXTENDED_COMMAND;
	u.val = MMUEXT_SET_LDT | (ents << MMUEXT_CMD_SHIFT);
	return HYPERVISOR_mmu_update(&u, 1, 0);
}

static inline void restore_data_segs(void)
{
	__asm__ __volatile__("movl %0, %%ds\n\tmovl %0, %%es\n\tmovl %0, %%fs\n\tmovl %0, %%gs" ::"r"(
		(u32)FLAT_KERNEL_DS));
}

/* trap_catch(fn, arg), the data segments flat again after (fn may have loaded anything in
 * them, and a fault leaves them as it found them): -1 when fn returned, else the vector. */
static inline int trap_catch_flat(void (*fn)(void *), void *arg)
{
	int v = trap_catch(fn, arg);
	restore_data_segs();
	return v;
}

/* ---- selector probes, run under trap_catch (arguments in globals) ---- */
static volatile u32 probe_sel, probe_off, probe_val;

/* mov probe_sel -> %fs, then probe_val = %fs:probe_off. */
static inline void probe_fs_read(void *unused)
{
	u32 v;
	__asm__ __volatile__("movl %1, %%fs\n\tmovl %%fs:(%2), %0"
			     : "=&r"(v)
			     : "r"(probe_sel), "r"(probe_off)
			     : "memory");
	probe_val = v;
}

/* Loads sel into FS and reads FS:off under trap_catch: -1 (the value in probe_val) or the
 * vector; the data segments are flat again after. */
static inline int fs_load_read(u32 sel, u32 off)
{
	probe_sel = sel;
	probe_off = off;
	probe_val = 0xDEADBEEF;
	return trap_catch_flat(probe_fs_read, 0);
}

/* mov probe_sel -> %fs, then %fs:probe_off = probe_val. */
static inline void probe_fs_write(void *unused)
{
	__asm__ __volatile__("movl %0, %%fs\n\tmovl %2, %%fs:(%1)" ::"r"(probe_sel), "r"(probe_off),
			     "r"(probe_val)
			     : "memory");
}

/* lsl: byte limit of probe_sel, or 0xFFFFFFFF when lsl refuses it. */
static inline u32 seg_limit(u32 sel)
{
	u32 lim = 0xFFFFFFFF;
	__asm__ __volatile__("lsl %1, %0" : "+r"(lim) : "r"(sel) : "cc");
	return lim;
}

/* ---- ring 3 with chosen selectors ----
 * enter_user_sel(eip, esp, cs, ss, eax): iret to ring 3; the first trap from ring 3 comes
 * back through trap_catch (run_user_sel below). */
void enter_user_sel(u32 eip, u32 esp, u32 cs, u32 ss, u32 eax) NORETURN;
__asm__(".pushsection .text\n"
	".globl enter_user_sel\n"
	"enter_user_sel:\n"
	"	movl 4(%esp), %ecx\n"
	"	movl 8(%esp), %edx\n"
	"	movl 12(%esp), %ebx\n"
	"	movl 16(%esp), %esi\n"
	"	movl 20(%esp), %eax\n"
	"	pushl %esi\n"
	"	pushl %edx\n"
	"	pushfl\n"
	"	pushl %ebx\n"
	"	pushl %ecx\n"
	"	iret\n"
	".popsection\n");

struct user_entry {
	u32 eip, esp, cs, ss, eax;
};

static inline void user_entry_fn(void *arg)
{
	struct user_entry *u = arg;
	enter_user_sel(u->eip, u->esp, u->cs, u->ss, u->eax);
}

/* Ring-3 code (in the US-mapped region).  Each reads or loads something, then int3 returns
 * to ring 1 with the results in the trap frame's registers:
 *  u_read_ss0: DS := SS; EAX := DS:[0]; EBX := CS; ECX := SS.
 *  u_read_ss_limit: DS := SS; EAX := DS:[0x1000] (beyond a 4 KiB segment: #GP).
 *  u_load_eax_ds: DS := EAX (a selector ring 3 may not load: #GP).
 *  u_int80: int $0x80 (the fast trap's vector), then int3. */
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl u_read_ss0, u_read_ss_limit, u_load_eax_ds, u_int80\n"
	"u_read_ss0:\n"
	"	movl %ss, %ecx\n"
	"	movl %ecx, %ds\n"
	"	movl 0, %eax\n"
	"	movl %cs, %ebx\n"
	"	int3\n"
	"u_read_ss_limit:\n"
	"	movl %ss, %ecx\n"
	"	movl %ecx, %ds\n"
	"	movl 0x1000, %eax\n"
	"	int3\n"
	"u_load_eax_ds:\n"
	"	movl %eax, %ds\n"
	"	int3\n"
	"u_int80:\n"
	"	int $0x80\n"
	"	int3\n"
	".popsection\n");
extern char u_read_ss0[], u_read_ss_limit[], u_load_eax_ds[], u_int80[];

/* Runs ring-3 code at eip with CS/SS/EAX; returns the vector that brought us back. */
static inline int run_user_sel(const void *eip, u32 esp, u32 cs, u32 ss, u32 eax)
{
	struct user_entry u;
	u.eip = (u32)eip;
	u.esp = esp;
	u.cs = cs;
	u.ss = ss;
	u.eax = eax;
	return trap_catch_flat(user_entry_fn, &u);
}

#endif
