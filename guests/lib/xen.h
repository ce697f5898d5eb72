/*
 * tsxen guest library: the Xen x86_32 guest ABI of March 2005 (MAR) as C, or with
 * -DXEN_ABI_JUL the July 2005 revision (JUL, abi.md §5): the same C source is
 * compiled once per revision.  Written from /work/shared/spec/abi.md; MAR structs
 * are packed (abi.md §0), JUL ones naturally aligned, and every offset the spec
 * gives is asserted below.
 */
#ifndef TSXEN_XEN_H
#define TSXEN_XEN_H

#include <stdint.h>
#include <stddef.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;
typedef u16 domid_t;
typedef u32 memory_t;

#define PACKED __attribute__((packed))
#define ASSERT_OFF(type, field, off) \
	_Static_assert(offsetof(type, field) == (off), #type "." #field " offset")
#define ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " size")

/* ---- §1.3 hypercall numbers (MAR) ---- */
#define __HYPERVISOR_set_trap_table 0
#define __HYPERVISOR_mmu_update 1
#define __HYPERVISOR_set_gdt 2
#define __HYPERVISOR_stack_switch 3
#define __HYPERVISOR_set_callbacks 4
#define __HYPERVISOR_fpu_taskswitch 5
#define __HYPERVISOR_sched_op 6
#define __HYPERVISOR_dom0_op 7
#define __HYPERVISOR_set_debugreg 8
#define __HYPERVISOR_get_debugreg 9
#define __HYPERVISOR_update_descriptor 10
#define __HYPERVISOR_set_fast_trap 11
#define __HYPERVISOR_dom_mem_op 12
#define __HYPERVISOR_multicall 13
#define __HYPERVISOR_update_va_mapping 14
#define __HYPERVISOR_set_timer_op 15
#define __HYPERVISOR_event_channel_op 16
#define __HYPERVISOR_xen_version 17
#define __HYPERVISOR_console_io 18
#define __HYPERVISOR_physdev_op 19
#define __HYPERVISOR_grant_table_op 20
#define __HYPERVISOR_vm_assist 21
#define __HYPERVISOR_update_va_mapping_otherdomain 22
#define __HYPERVISOR_switch_vm86 23
#define __HYPERVISOR_boot_vcpu 24
#ifdef XEN_ABI_JUL
#define __HYPERVISOR_mmuext_op 26
#undef __HYPERVISOR_set_fast_trap /* gone at JUL: -ENOSYS */
#define __HYPERVISOR_set_fast_trap 11
#endif
#define NR_HYPERCALLS 32
#define HYPERCALL_VECTOR 0x82

/* ---- §1.2 errno ---- */
#define EPERM 1
#define ENOENT 2
#define ESRCH 3
#define EINTR 4
#define EIO 5
#define ENXIO 6
#define E2BIG 7
#define EAGAIN 11
#define ENOMEM 12
#define EACCES 13
#define EFAULT 14
#define EBUSY 16
#define EEXIST 17
#define ENODEV 19
#define EINVAL 22
#define ENOSPC 28
#define ENOSYS 38

/* ---- §3 x86_32 facts ---- */
#define PAGE_SHIFT 12
#define PAGE_SIZE 4096u
#define HYPERVISOR_VIRT_START 0xFC000000u
#define XEN_PAGE_OFFSET 0xFC400000u
#define machine_to_phys_mapping ((const volatile u32 *)HYPERVISOR_VIRT_START)

#ifdef XEN_ABI_JUL
/* abi.md §3.2: Xen's entries live in GDT page 14 (7168..7679). */
#define FLAT_RING1_CS 0xE019
#define FLAT_RING1_DS 0xE021
#define FLAT_RING3_CS 0xE02B
#define FLAT_RING3_DS 0xE033
#else
#define FLAT_RING1_CS 0x0819
#define FLAT_RING1_DS 0x0821
#define FLAT_RING3_CS 0x082B
#define FLAT_RING3_DS 0x0833
#endif
#define FLAT_KERNEL_CS FLAT_RING1_CS
#define FLAT_KERNEL_DS FLAT_RING1_DS
#define FLAT_KERNEL_SS FLAT_RING1_DS
#define FLAT_USER_CS FLAT_RING3_CS
#define FLAT_USER_DS FLAT_RING3_DS
#define FLAT_USER_SS FLAT_RING3_DS
#ifdef XEN_ABI_JUL
#define XEN_RING0_CS 0xE008
#define XEN_RING0_DS 0xE010
#define FIRST_RESERVED_GDT_ENTRY 7168
#define LAST_RESERVED_GDT_ENTRY 7679
/* set_gdt: entries <= FIRST_RESERVED_GDT_ENTRY, no lower bound. */
#define MIN_GDT_ENTRIES 0
#define MAX_GDT_ENTRIES 7168
#else
#define XEN_RING0_CS 0x0808
#define XEN_RING0_DS 0x0810
#define FIRST_RESERVED_GDT_ENTRY 256
#define LAST_RESERVED_GDT_ENTRY 295
#define MIN_GDT_ENTRIES 296
#define MAX_GDT_ENTRIES 8192
#endif

/* PTE bits (§2.3.3) */
#define _PAGE_PRESENT 0x001
#define _PAGE_RW 0x002
#define _PAGE_USER 0x004
#define _PAGE_PWT 0x008
#define _PAGE_PCD 0x010
#define _PAGE_ACCESSED 0x020
#define _PAGE_DIRTY 0x040
#define _PAGE_PAT 0x080
#define _PAGE_GLOBAL 0x100

/* ---- §2.5 update_va_mapping flags ---- */
#define UVMF_FLUSH_TLB 1
#define UVMF_INVLPG 2
#ifdef XEN_ABI_JUL
/* JUL: flush type in bits 1:0 (3 = none of them), target set in bits 31:2. */
#define UVMF_NONE 0
#define UVMF_TLB_FLUSH 1
#define UVMF_FLUSHTYPE_MASK 3
#define UVMF_LOCAL 0
#define UVMF_ALL 4
#endif

#ifdef XEN_ABI_JUL
/* ---- §2.4 mmu_update / mmuext_op (JUL) ---- */
#define MMU_NORMAL_PT_UPDATE 0
#define MMU_MACHPHYS_UPDATE 1
#define MMUEXT_PIN_L1_TABLE 0
#define MMUEXT_PIN_L2_TABLE 1
#define MMUEXT_PIN_L3_TABLE 2
#define MMUEXT_PIN_L4_TABLE 3
#define MMUEXT_UNPIN_TABLE 4
#define MMUEXT_NEW_BASEPTR 5
#define MMUEXT_TLB_FLUSH_LOCAL 6
#define MMUEXT_INVLPG_LOCAL 7
#define MMUEXT_TLB_FLUSH_MULTI 8
#define MMUEXT_INVLPG_MULTI 9
#define MMUEXT_TLB_FLUSH_ALL 10
#define MMUEXT_INVLPG_ALL 11
#define MMUEXT_FLUSH_CACHE 12
#define MMUEXT_SET_LDT 13
#define MMUEXT_REASSIGN_PAGE 14
#define MMUEXT_NEW_USER_BASEPTR 15
#define MMUEXT_TLB_FLUSH MMUEXT_TLB_FLUSH_LOCAL
#define MMUEXT_INVLPG MMUEXT_INVLPG_LOCAL
/*
 * Library shim (not ABI): sources written for MAR put extended commands into
 * mmu_update batches as {ptr | MMU_EXTENDED_COMMAND, cmd | arg << 8}.  The JUL
 * HYPERVISOR_mmu_update wrapper (hypercall.h) turns each such request into an
 * mmuext_op (the MA in ptr becomes an MFN) and SET/CLEAR_FOREIGNDOM into the
 * foreigndom argument, so one conformance source tests both revisions.
 */
#define MMU_EXTENDED_COMMAND 3
#define MMUEXT_SET_FOREIGNDOM 0xF0
#define MMUEXT_CLEAR_FOREIGNDOM 0xF1
#define MMUEXT_TRANSFER_PAGE 0xF2
#define MMUEXT_CMD_MASK 255
#define MMUEXT_CMD_SHIFT 8
#define MMU_INVALID_CMD 2
#else
/* ---- §2.3 mmu_update (MAR) ---- */
#define MMU_NORMAL_PT_UPDATE 0
#define MMU_MACHPHYS_UPDATE 2
#define MMU_EXTENDED_COMMAND 3
#define MMUEXT_PIN_L1_TABLE 0
#define MMUEXT_PIN_L2_TABLE 1
#define MMUEXT_UNPIN_TABLE 4
#define MMUEXT_NEW_BASEPTR 5
#define MMUEXT_TLB_FLUSH 6
#define MMUEXT_INVLPG 7
#define MMUEXT_FLUSH_CACHE 8
#define MMUEXT_SET_LDT 9
#define MMUEXT_SET_FOREIGNDOM 10
#define MMUEXT_CLEAR_FOREIGNDOM 11
#define MMUEXT_TRANSFER_PAGE 12
#define MMUEXT_REASSIGN_PAGE 13
#define MMUEXT_CMD_MASK 255
#define MMUEXT_CMD_SHIFT 8
#define MMU_INVALID_CMD 1
#endif

/* ---- §2.13 small hypercalls ---- */
#define CONSOLEIO_write 0
#define CONSOLEIO_read 1
#define SCHEDOP_yield 0
#define SCHEDOP_block 1
#define SCHEDOP_shutdown 2
#ifdef XEN_ABI_JUL
#define SCHEDOP_vcpu_down 3
#define SCHEDOP_vcpu_up 4
#define SCHEDOP_vcpushift 8
#define XENVER_version 0
#define XENVER_extraversion 1
#define XENVER_compile_info 2
#endif
#define SCHEDOP_cmdmask 255
#define SCHEDOP_reasonshift 8
#define SHUTDOWN_poweroff 0
#define SHUTDOWN_reboot 1
#define SHUTDOWN_suspend 2
#define SHUTDOWN_crash 3
#define MEMOP_increase_reservation 0
#define MEMOP_decrease_reservation 1
#define VMASST_CMD_enable 0
#define VMASST_CMD_disable 1
#define VMASST_TYPE_4gb_segments 0
#define VMASST_TYPE_4gb_segments_notify 1
#define VMASST_TYPE_writable_pagetables 2
#define XEN_VERSION_VALUE 0x00030000u

#define DOMID_SELF 0x7FF0
#define DOMID_IO 0x7FF1
#define DOMID_XEN 0x7FF2

/* ---- §2.6.3 SIF flags ---- */
#define SIF_PRIVILEGED 0x01
#define SIF_INITDOMAIN 0x02
#define SIF_BLK_BE_DOMAIN 0x10
#define SIF_NET_BE_DOMAIN 0x20
#define SIF_USB_BE_DOMAIN 0x40

/* ---- §2.8 event channels ---- */
#define NR_EVENT_CHANNELS 1024
#define MAX_VIRT_CPUS 32
#define VIRQ_TIMER 0
#define VIRQ_DEBUG 1
#define VIRQ_CONSOLE 2
#define VIRQ_DOM_EXC 3
#define VIRQ_PARITY_ERR 4
#define VIRQ_IO_ERR 5
#define NR_VIRQS 7

#define EVTCHNOP_bind_interdomain 0
#define EVTCHNOP_bind_virq 1
#define EVTCHNOP_bind_pirq 2
#define EVTCHNOP_close 3
#define EVTCHNOP_send 4
#define EVTCHNOP_status 5
#define EVTCHNOP_alloc_unbound 6
#define EVTCHNOP_bind_ipi 7

#define EVTCHNSTAT_closed 0
#define EVTCHNSTAT_unbound 1
#define EVTCHNSTAT_interdomain 2
#define EVTCHNSTAT_pirq 3
#define EVTCHNSTAT_virq 4
#define EVTCHNSTAT_ipi 5

/* ---- §2.2.1 trap_info_t ---- */
typedef struct {
	u8 vector;
	u8 flags; /* bits 1:0 DPL, bit 2 (4) = mask events on delivery */
	u16 cs;
	u32 address;
} PACKED trap_info_t;
ASSERT_SIZE(trap_info_t, 8);
ASSERT_OFF(trap_info_t, vector, 0);
ASSERT_OFF(trap_info_t, flags, 1);
ASSERT_OFF(trap_info_t, cs, 2);
ASSERT_OFF(trap_info_t, address, 4);
#define TI_DPL_MASK 3
#define TI_IF 4

/* ---- §2.1 multicall_entry_t ---- */
#define ARGS_PER_MULTICALL_ENTRY 8
#ifdef XEN_ABI_JUL
typedef struct {
	u32 op;
	u32 result;
	u32 args[6]; /* args[0..4] passed; args[5] spare */
} multicall_entry_t;
ASSERT_SIZE(multicall_entry_t, 32);
ASSERT_OFF(multicall_entry_t, result, 4);
ASSERT_OFF(multicall_entry_t, args, 8);
#define MC_RES(e) ((e)->result)
#define MC_SPARE(e) ((e)->args[5])
#else
typedef struct {
	u32 op;
	u32 args[7]; /* args[0..4] passed; args[5] = result; args[6] spare */
} PACKED multicall_entry_t;
ASSERT_SIZE(multicall_entry_t, 32);
ASSERT_OFF(multicall_entry_t, op, 0);
ASSERT_OFF(multicall_entry_t, args, 4);
ASSERT_OFF(multicall_entry_t, args[5], 24);
ASSERT_OFF(multicall_entry_t, args[6], 28);
#define MC_RESULT 5
#define MC_RES(e) ((e)->args[5])
#define MC_SPARE(e) ((e)->args[6])
#endif

#ifdef XEN_ABI_JUL
/* ---- §2.4 mmu_update_t and struct mmuext_op (JUL) ---- */
typedef struct {
	u64 ptr;
	u64 val;
} mmu_update_t;
ASSERT_SIZE(mmu_update_t, 16);
ASSERT_OFF(mmu_update_t, val, 8);

struct mmuext_op {
	u32 cmd;
	union {
		u32 mfn;
		u32 linear_addr;
	};
	union {
		u32 nr_ents;
		u32 vcpumask; /* VA of an unsigned long bitmap */
	};
};
ASSERT_SIZE(struct mmuext_op, 12);

/* ---- §2.6.2 start_info_t (JUL, 1068 bytes) ---- */
#define MAX_GUEST_CMDLINE 1024
#define MAX_CMDLINE MAX_GUEST_CMDLINE
typedef struct {
	u32 nr_pages;
	u32 shared_info; /* machine address */
	u32 flags;
	u16 domain_controller_evtchn;
	u32 pt_base; /* VA */
	u32 nr_pt_frames;
	u32 mfn_list; /* VA */
	u32 mod_start;
	u32 mod_len;
	u8 cmd_line[MAX_GUEST_CMDLINE];
	u32 store_page; /* VA */
	u16 store_evtchn;
} start_info_t;
ASSERT_SIZE(start_info_t, 1068);
ASSERT_OFF(start_info_t, shared_info, 4);
ASSERT_OFF(start_info_t, flags, 8);
ASSERT_OFF(start_info_t, domain_controller_evtchn, 12);
ASSERT_OFF(start_info_t, pt_base, 16);
ASSERT_OFF(start_info_t, mfn_list, 24);
ASSERT_OFF(start_info_t, mod_len, 32);
ASSERT_OFF(start_info_t, cmd_line, 36);
ASSERT_OFF(start_info_t, store_page, 1060);
ASSERT_OFF(start_info_t, store_evtchn, 1064);
#else
/* ---- §2.3.1 mmu_update_t (MAR) ---- */
typedef struct {
	u32 ptr;
	u32 val;
} PACKED mmu_update_t;
ASSERT_SIZE(mmu_update_t, 8);
ASSERT_OFF(mmu_update_t, val, 4);

/* ---- §2.6.1 start_info_t (MAR, 320 bytes) ---- */
#define MAX_CMDLINE 256
typedef struct {
	memory_t nr_pages;
	u32 _pad_a;
	memory_t shared_info; /* machine address */
	u32 _pad_b;
	u32 flags;
	u16 domain_controller_evtchn;
	u16 _pad0;
	memory_t pt_base; /* VA */
	u32 _pad_c;
	memory_t nr_pt_frames;
	u32 _pad_d;
	memory_t mfn_list; /* VA */
	u32 _pad_e;
	memory_t mod_start;
	u32 _pad_f;
	memory_t mod_len;
	u32 _pad_g;
	u8 cmd_line[MAX_CMDLINE];
} PACKED start_info_t;
ASSERT_SIZE(start_info_t, 320);
ASSERT_OFF(start_info_t, nr_pages, 0);
ASSERT_OFF(start_info_t, shared_info, 8);
ASSERT_OFF(start_info_t, flags, 16);
ASSERT_OFF(start_info_t, domain_controller_evtchn, 20);
ASSERT_OFF(start_info_t, pt_base, 24);
ASSERT_OFF(start_info_t, nr_pt_frames, 32);
ASSERT_OFF(start_info_t, mfn_list, 40);
ASSERT_OFF(start_info_t, mod_start, 48);
ASSERT_OFF(start_info_t, mod_len, 56);
ASSERT_OFF(start_info_t, cmd_line, 64);
#endif

/* ---- §2.7 shared_info_t (588 bytes) ---- */
typedef struct {
	u8 evtchn_upcall_pending;
	u8 evtchn_upcall_mask;
	u8 pad0;
	u8 pad1;
	u32 evtchn_pending_sel;
} PACKED vcpu_info_t;
ASSERT_SIZE(vcpu_info_t, 8);
ASSERT_OFF(vcpu_info_t, evtchn_upcall_pending, 0);
ASSERT_OFF(vcpu_info_t, evtchn_upcall_mask, 1);
ASSERT_OFF(vcpu_info_t, evtchn_pending_sel, 4);

typedef struct {
	memory_t pfn_to_mfn_frame_list;
	u32 _pad;
} PACKED arch_shared_info_t;
ASSERT_SIZE(arch_shared_info_t, 8);

typedef struct {
	vcpu_info_t vcpu_data[MAX_VIRT_CPUS];
	u32 n_vcpu;
	u32 evtchn_pending[32];
	u32 evtchn_mask[32];
	u64 cpu_freq;
	u32 time_version1;
	u32 time_version2;
	u64 tsc_timestamp;
	u64 system_time;
	u32 wc_sec;
	u32 wc_usec;
	u64 domain_time;
	u64 wall_timeout;
	u64 domain_timeout;
	arch_shared_info_t arch;
} PACKED shared_info_t;
ASSERT_SIZE(shared_info_t, 588);
ASSERT_OFF(shared_info_t, vcpu_data, 0);
ASSERT_OFF(shared_info_t, n_vcpu, 256);
ASSERT_OFF(shared_info_t, evtchn_pending, 260);
ASSERT_OFF(shared_info_t, evtchn_mask, 388);
ASSERT_OFF(shared_info_t, cpu_freq, 516);
ASSERT_OFF(shared_info_t, time_version1, 524);
ASSERT_OFF(shared_info_t, time_version2, 528);
ASSERT_OFF(shared_info_t, tsc_timestamp, 532);
ASSERT_OFF(shared_info_t, system_time, 540);
ASSERT_OFF(shared_info_t, wc_sec, 548);
ASSERT_OFF(shared_info_t, wc_usec, 552);
ASSERT_OFF(shared_info_t, domain_time, 556);
ASSERT_OFF(shared_info_t, wall_timeout, 564);
ASSERT_OFF(shared_info_t, domain_timeout, 572);
ASSERT_OFF(shared_info_t, arch.pfn_to_mfn_frame_list, 580);

/* ---- §2.8.1 evtchn_op_t (MAR, 32 bytes, union @8) ---- */
typedef struct {
	domid_t dom1, dom2;
	u32 port1, port2;
} PACKED evtchn_bind_interdomain_t;
typedef struct {
	u32 virq;
	u32 port; /* out */
} PACKED evtchn_bind_virq_t;
typedef struct {
	u32 pirq;
	u32 flags;
	u32 port; /* out */
} PACKED evtchn_bind_pirq_t;
typedef struct {
	domid_t dom;
	u16 _pad;
	u32 port;
} PACKED evtchn_close_t;
typedef struct {
	u32 local_port;
} PACKED evtchn_send_t;
typedef struct {
	domid_t dom;
	u16 _pad;
	u32 port;
	u32 status; /* out */
	union {
		struct {
			domid_t dom;
		} PACKED unbound;
		struct {
			domid_t dom;
			u16 _pad;
			u32 port;
		} PACKED interdomain;
		u32 pirq;
		u32 virq;
		u32 ipi_edom;
	} PACKED u;
} PACKED evtchn_status_t;
typedef struct {
	domid_t dom;
	u16 _pad;
	u32 port; /* out */
} PACKED evtchn_alloc_unbound_t;
typedef struct {
	u32 ipi_edom;
	u32 port; /* out */
} PACKED evtchn_bind_ipi_t;

typedef struct {
	u32 cmd;
#ifndef XEN_ABI_JUL
	u32 __reserved;
#endif
	union {
		evtchn_bind_interdomain_t bind_interdomain;
		evtchn_bind_virq_t bind_virq;
		evtchn_bind_pirq_t bind_pirq;
		evtchn_close_t close;
		evtchn_send_t send;
		evtchn_status_t status;
		evtchn_alloc_unbound_t alloc_unbound;
		evtchn_bind_ipi_t bind_ipi;
		u32 _raw[5];
	} PACKED u;
#ifndef XEN_ABI_JUL
	u32 _raw_tail;
#endif
} PACKED evtchn_op_t;
#ifdef XEN_ABI_JUL
/* JUL: union at 4, 24 bytes (abi.md §2.8.1); the asserts below are MAR's +8. */
#define EVOP_U 4
ASSERT_SIZE(evtchn_op_t, 24);
#else
#define EVOP_U 8
ASSERT_SIZE(evtchn_op_t, 32);
#endif
ASSERT_OFF(evtchn_op_t, u, EVOP_U);
/* The MAR envelope's reserved word (none at JUL). */
#ifdef XEN_ABI_JUL
#define EVOP_RESERVED_SET(op, x) ((void)(x))
#define EVOP_RESERVED_IS(op, x) 1
#else
#define EVOP_RESERVED_SET(op, x) ((op).__reserved = (x))
#define EVOP_RESERVED_IS(op, x) ((op).__reserved == (x))
#endif
#define ASSERT_EVOFF(f, off) ASSERT_OFF(evtchn_op_t, f, (off) - 8 + EVOP_U)
ASSERT_EVOFF(u.bind_interdomain.dom2, 10);
ASSERT_EVOFF(u.bind_interdomain.port1, 12);
ASSERT_EVOFF(u.bind_interdomain.port2, 16);
ASSERT_EVOFF(u.bind_virq.virq, 8);
ASSERT_EVOFF(u.bind_virq.port, 12);
ASSERT_EVOFF(u.bind_pirq.port, 16);
ASSERT_EVOFF(u.close.port, 12);
ASSERT_EVOFF(u.send.local_port, 8);
ASSERT_EVOFF(u.status.port, 12);
ASSERT_EVOFF(u.status.status, 16);
ASSERT_EVOFF(u.status.u.virq, 20);
ASSERT_EVOFF(u.status.u.interdomain.port, 24);
ASSERT_EVOFF(u.alloc_unbound.port, 12);
ASSERT_EVOFF(u.bind_ipi.port, 12);
ASSERT_SIZE(evtchn_status_t, 20);

/* ---- §2.11.1 dom0_op_t envelope (MAR, 80 bytes) ---- */
#define DOM0_INTERFACE_VERSION 0xAAAA1002u
#define DOM0_GETMEMLIST 2
#define DOM0_CREATEDOMAIN 8
#define DOM0_DESTROYDOMAIN 9
#define DOM0_PAUSEDOMAIN 10
#define DOM0_UNPAUSEDOMAIN 11
#define DOM0_GETDOMAININFO 12
#define DOM0_SETDOMAININFO 13
#define DOM0_SETTIME 17
#define DOM0_READCONSOLE 19
#define DOM0_PHYSINFO 22
#define DOM0_SCHED_ID 24

typedef struct {
	u32 memory_kb;
	u32 _pad0;
	u32 cpu;
	u32 _pad1;
	domid_t domain;
	u16 _pad2;
} PACKED dom0_createdomain_t;
ASSERT_SIZE(dom0_createdomain_t, 20);

typedef struct {
	domid_t domain;
	u16 exec_domain;
	u32 flags;
	u32 ctxt;
	u32 _pad0;
	memory_t tot_pages;
	u32 _pad1;
	memory_t max_pages;
	u32 _pad2;
	memory_t shared_info_frame;
	u32 _pad3;
	u64 cpu_time;
} PACKED dom0_getdomaininfo_t;
ASSERT_SIZE(dom0_getdomaininfo_t, 48);
ASSERT_OFF(dom0_getdomaininfo_t, shared_info_frame, 32);
ASSERT_OFF(dom0_getdomaininfo_t, cpu_time, 40);

typedef struct {
	u32 cmd;
	u32 interface_version;
	union {
		dom0_createdomain_t createdomain;
		dom0_getdomaininfo_t getdomaininfo;
		struct {
			domid_t domain;
			u16 _pad;
		} PACKED domain_only; /* destroy / pause / unpause */
		u32 dummy[18];
	} PACKED u;
} PACKED dom0_op_t;
ASSERT_SIZE(dom0_op_t, 80);
ASSERT_OFF(dom0_op_t, interface_version, 4);
ASSERT_OFF(dom0_op_t, u, 8);

/* ---- §3.5 execution_context_t (MAR, 68 bytes) ---- */
typedef struct {
	u32 ebx, ecx, edx, esi, edi, ebp, eax;
	u16 error_code, entry_vector;
	u32 eip, cs, eflags, esp, ss, es, ds, fs, gs;
} PACKED execution_context_t;
ASSERT_SIZE(execution_context_t, 68);
ASSERT_OFF(execution_context_t, eip, 32);
ASSERT_OFF(execution_context_t, gs, 64);

#endif
