/*
 * tsxen guest library: hypercall wrappers (MAR register conventions, abi.md §1;
 * with -DXEN_ABI_JUL the July 2005 ones, abi.md §1.4).
 * int $0x82; EAX = number; EBX, ECX, EDX, ESI, EDI = args 1..5; result in EAX.
 * The argument registers are declared clobbered (Xen may rewrite them).
 */
#ifndef TSXEN_HYPERCALL_H
#define TSXEN_HYPERCALL_H

#include "xen.h"

static inline long hypercall5(u32 nr, u32 a1, u32 a2, u32 a3, u32 a4, u32 a5)
{
	long ret;
	u32 b, c, d, s, di;
	__asm__ __volatile__("int $0x82"
			     : "=a"(ret), "=b"(b), "=c"(c), "=d"(d), "=S"(s), "=D"(di)
			     : "0"(nr), "1"(a1), "2"(a2), "3"(a3), "4"(a4), "5"(a5)
			     : "memory");
	return ret;
}

#define hypercall0(nr) hypercall5((nr), 0, 0, 0, 0, 0)
#define hypercall1(nr, a) hypercall5((nr), (u32)(a), 0, 0, 0, 0)
#define hypercall2(nr, a, b) hypercall5((nr), (u32)(a), (u32)(b), 0, 0, 0)
#define hypercall3(nr, a, b, c) hypercall5((nr), (u32)(a), (u32)(b), (u32)(c), 0, 0)
#define hypercall4(nr, a, b, c, d) hypercall5((nr), (u32)(a), (u32)(b), (u32)(c), (u32)(d), 0)

static inline long HYPERVISOR_set_trap_table(const trap_info_t *table)
{
	return hypercall1(__HYPERVISOR_set_trap_table, table);
}

#ifdef XEN_ABI_JUL
/* JUL: mmu_update(reqs, count, pdone, foreigndom) and mmuext_op(ops, count, pdone, foreigndom). */
static inline long HYPERVISOR_mmu_update_fd(const mmu_update_t *req, u32 count, u32 *done, u32 fd)
{
	return hypercall4(__HYPERVISOR_mmu_update, req, count, done, fd);
}

static inline long HYPERVISOR_mmuext_op(const struct mmuext_op *op, u32 count, u32 *done, u32 fd)
{
	return hypercall4(__HYPERVISOR_mmuext_op, op, count, done, fd);
}

/* lib/mmu_compat.c: MAR-style batches (extended commands inline) on the JUL interface. */
long mmu_update_compat(const mmu_update_t *req, u32 count, u32 *done);

static inline long HYPERVISOR_mmu_update(const mmu_update_t *req, u32 count, u32 *done)
{
	return mmu_update_compat(req, count, done);
}
#else
static inline long HYPERVISOR_mmu_update(const mmu_update_t *req, u32 count, u32 *done)
{
	return hypercall3(__HYPERVISOR_mmu_update, req, count, done);
}
#endif

static inline long HYPERVISOR_set_gdt(const u32 *frames, u32 entries)
{
	return hypercall2(__HYPERVISOR_set_gdt, frames, entries);
}

static inline long HYPERVISOR_stack_switch(u32 ss, u32 esp)
{
	return hypercall2(__HYPERVISOR_stack_switch, ss, esp);
}

static inline long HYPERVISOR_set_callbacks(u32 event_cs, u32 event_eip, u32 failsafe_cs,
					    u32 failsafe_eip)
{
	return hypercall4(__HYPERVISOR_set_callbacks, event_cs, event_eip, failsafe_cs,
			  failsafe_eip);
}

static inline long HYPERVISOR_fpu_taskswitch(u32 set)
{
	return hypercall1(__HYPERVISOR_fpu_taskswitch, set);
}

static inline long HYPERVISOR_sched_op(u32 op)
{
	return hypercall1(__HYPERVISOR_sched_op, op);
}

static inline long HYPERVISOR_dom0_op(dom0_op_t *op)
{
	return hypercall1(__HYPERVISOR_dom0_op, op);
}

static inline long HYPERVISOR_set_debugreg(u32 reg, u32 value)
{
	return hypercall2(__HYPERVISOR_set_debugreg, reg, value);
}

static inline long HYPERVISOR_get_debugreg(u32 reg)
{
	return hypercall1(__HYPERVISOR_get_debugreg, reg);
}

/* Both revisions: EBX = MA, ECX = low word, EDX = high word (JUL: one u64). */
static inline long HYPERVISOR_update_descriptor(u32 ma, u32 lo, u32 hi)
{
	return hypercall3(__HYPERVISOR_update_descriptor, ma, lo, hi);
}

static inline long HYPERVISOR_set_fast_trap(u32 idx)
{
	return hypercall1(__HYPERVISOR_set_fast_trap, idx);
}

static inline long HYPERVISOR_dom_mem_op(u32 op, u32 *extent_list, u32 nr_extents,
					 u32 extent_order, u32 domid)
{
	return hypercall5(__HYPERVISOR_dom_mem_op, op, (u32)extent_list, nr_extents,
			  extent_order, domid);
}

static inline long HYPERVISOR_multicall(multicall_entry_t *list, u32 nr_calls)
{
	return hypercall2(__HYPERVISOR_multicall, list, nr_calls);
}

#ifdef XEN_ABI_JUL
/* JUL: EBX = va, ECX:EDX = the u64 PTE (high word 0, non-PAE), ESI = flags. */
static inline long HYPERVISOR_update_va_mapping(u32 va, u32 pte, u32 flags)
{
	return hypercall4(__HYPERVISOR_update_va_mapping, va, pte, 0, flags);
}

/* JUL: EBX = LOW 32 bits, ECX = HIGH 32 bits of the absolute deadline (ns). */
static inline long HYPERVISOR_set_timer_op(u64 timeout)
{
	return hypercall2(__HYPERVISOR_set_timer_op, (u32)timeout, (u32)(timeout >> 32));
}
#else
/* MAR: EBX = va, ECX = new PTE, EDX = UVMF_* flags. */
static inline long HYPERVISOR_update_va_mapping(u32 va, u32 pte, u32 flags)
{
	return hypercall3(__HYPERVISOR_update_va_mapping, va, pte, flags);
}

/* MAR: EBX = HIGH 32 bits, ECX = LOW 32 bits of the absolute deadline (ns). */
static inline long HYPERVISOR_set_timer_op(u64 timeout)
{
	return hypercall2(__HYPERVISOR_set_timer_op, (u32)(timeout >> 32), (u32)timeout);
}
#endif

static inline long HYPERVISOR_event_channel_op(evtchn_op_t *op)
{
	return hypercall1(__HYPERVISOR_event_channel_op, op);
}

static inline long HYPERVISOR_xen_version(u32 cmd)
{
	return hypercall1(__HYPERVISOR_xen_version, cmd);
}

static inline long HYPERVISOR_console_io(u32 cmd, u32 count, const void *buf)
{
	return hypercall3(__HYPERVISOR_console_io, cmd, count, buf);
}

static inline long HYPERVISOR_physdev_op(void *op)
{
	return hypercall1(__HYPERVISOR_physdev_op, op);
}

static inline long HYPERVISOR_grant_table_op(u32 cmd, void *uop, u32 count)
{
	return hypercall3(__HYPERVISOR_grant_table_op, cmd, uop, count);
}

static inline long HYPERVISOR_vm_assist(u32 cmd, u32 type)
{
	return hypercall2(__HYPERVISOR_vm_assist, cmd, type);
}

static inline long HYPERVISOR_update_va_mapping_otherdomain(u32 va, u32 pte, u32 flags,
							    u32 domid)
{
#ifdef XEN_ABI_JUL
	return hypercall5(__HYPERVISOR_update_va_mapping_otherdomain, va, pte, 0, flags, domid);
#else
	return hypercall4(__HYPERVISOR_update_va_mapping_otherdomain, va, pte, flags, domid);
#endif
}

/* Only meaningful with a VM86 activation frame on the ring-1 stack (abi.md §1.3). */
static inline long HYPERVISOR_switch_vm86(void)
{
	return hypercall0(__HYPERVISOR_switch_vm86);
}

static inline long HYPERVISOR_boot_vcpu(u32 vcpu, void *ctxt)
{
	return hypercall2(__HYPERVISOR_boot_vcpu, vcpu, ctxt);
}

static inline long HYPERVISOR_shutdown(u32 reason)
{
	return HYPERVISOR_sched_op(SCHEDOP_shutdown | (reason << SCHEDOP_reasonshift));
}

#endif
