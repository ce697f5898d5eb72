/*
 * tsxen guest library: console, printf, traps, events, time, conformance checks.
 */
#ifndef TSXEN_LIB_H
#define TSXEN_LIB_H

#include <stdarg.h>
#include "xen.h"
#include "hypercall.h"

#define barrier() __asm__ __volatile__("" ::: "memory")
#define NORETURN __attribute__((noreturn))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PAGE_ALIGNED __attribute__((aligned(4096)))
#define BSS_PAGE __attribute__((section(".bss.page_aligned"), aligned(4096)))
#define USER_TEXT __attribute__((section(".user.text")))

/* ---- linker symbols ---- */
extern char _text[], _etext[], _edata[], _end[], _user_start[], _user_end[];

/* ---- head.S ---- */
/* Registers exactly as the domain builder left them at _start (abi.md §4.5). */
struct boot_regs {
	u32 eax, ebx, ecx, edx, esi, edi, ebp, esp, eflags;
	u32 cs, ds, es, fs, gs, ss;
};
extern struct boot_regs boot_regs;
void start_kernel(start_info_t *si); /* provided by each guest */

/* ---- string.c ---- */
void *memset(void *s, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

/* ---- printf.c / console ---- */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* One console_io(CONSOLEIO_write) per call (at most 511 bytes). */
int printk(const char *fmt, ...) PRINTF_LIKE(1, 2);
void console_write(const char *s, u32 len);
u64 udiv64_32(u64 n, u32 d, u32 *rem);

/* ---- mm / setup (setup.c) ---- */
extern start_info_t *start_info;
extern shared_info_t *HYPERVISOR_shared_info; /* 0 until map_shared_info() */
extern u8 shared_info_page[4096];              /* the VA it is mapped at */
void lib_init(start_info_t *si);
/* PFN k <-> VA _text + k*4096 (v_start = 0xC0000000, abi.md §4.2). */
u32 virt_to_pfn(const void *va);
u32 virt_to_mfn(const void *va);
u32 virt_to_mach(const void *va);
long map_shared_info(void); /* update_va_mapping(shared_info_page, MA|7, UVMF_INVLPG) */
/* Remap [_user_start,_user_end) with P|RW|US so ring 3 can run there. 0 on success. */
long user_pages_init(void);
extern u8 user_stack[4096]; /* in the US-mapped region */
#define USER_STACK_TOP ((u32)user_stack + sizeof(user_stack))

/* ---- traps (traps.c, head.S) ---- */
/* Built by the asm stubs on top of Xen's bounce frame.  For vectors without an
 * error code the stub pushes error_code = 0; for vectors other than #PF it
 * pushes cr2 = 0 (Xen pushes CR2 *below* the error code for #PF, abi.md §2.2.3). */
struct trap_frame {
	u32 gs, fs, es, ds;
	u32 edi, esi, ebp, esp_kernel, ebx, edx, ecx, eax; /* pushal */
	u32 vector;
	u32 cr2;
	u32 error_code;
	u32 eip, cs, eflags;
	u32 esp, ss; /* only when the trap came from ring 3 */
};
/* ESP at handler entry: where Xen put the lowest word of its frame. */
u32 trap_entry_esp(const struct trap_frame *f);
int trap_has_error_code(u32 vector);
u32 trap_stub(u32 vector); /* address of the asm entry stub, 0 if none */

/* Hook returns non-zero if it handled the trap (it may change f->eip etc). */
typedef int (*trap_hook_t)(struct trap_frame *f);
extern trap_hook_t trap_hooks[256];
extern volatile u32 trap_counts[256];

/* Install stubs for vectors 0..19 (DPL 0 except 3/4 DPL 3), no IF flag. */
long traps_init(void);
/* Install one vector's stub with the given flags (DPL | TI_IF). */
long trap_set(u32 vector, u32 flags);

/* Run fn(arg); if it traps, the trap is recorded in last_trap and trap_catch
 * returns the vector; otherwise -1. */
extern struct trap_frame last_trap;
extern u32 last_trap_entry_esp;
int trap_catch(void (*fn)(void *), void *arg);
/* Enter ring 3 at eip with esp and eax; returns the vector of the first trap
 * taken from ring 3 (recorded in last_trap).  FS/GS are restored after. */
int run_user(u32 eip, u32 esp, u32 eax);

/* ---- events ---- */
struct upcall_frame {
	u32 gs, fs, es, ds;
	u32 edi, esi, ebp, esp_kernel, ebx, edx, ecx, eax;
	u32 eip, cs, eflags; /* Xen's frame (ring 1 -> ring 1: no ESP/SS) */
};
struct failsafe_frame {
	u32 edi, esi, ebp, esp_kernel, ebx, edx, ecx, eax;
	u32 ds, es, fs, gs, eip, cs, eflags; /* Xen's frame */
};
extern void hypervisor_callback(void);
extern void failsafe_callback(void);
long callbacks_init(void); /* set_callbacks(FLAT_KERNEL_CS, ..., FLAT_KERNEL_CS, ...) */

typedef void (*evtchn_handler_t)(u32 port, struct upcall_frame *f);
extern evtchn_handler_t evtchn_handlers[NR_EVENT_CHANNELS];
/* If set, called instead of the default port demux on each pass. */
extern void (*upcall_hook)(struct upcall_frame *f);
extern volatile u32 upcall_count, failsafe_count, unhandled_events;
extern struct upcall_frame last_upcall;
extern u32 last_upcall_entry_esp;
extern u8 last_upcall_mask_at_entry, last_upcall_pending_at_entry;
extern u32 last_upcall_sel_at_entry;
extern struct failsafe_frame last_failsafe;
extern u32 failsafe_live_fs, failsafe_live_gs; /* FS/GS on entry to the failsafe handler */

long evtchn_bind_virq(u32 virq, u32 *port);
static inline vcpu_info_t *vcpu0(void) { return &HYPERVISOR_shared_info->vcpu_data[0]; }
static inline int test_bit(u32 nr, const volatile u32 *addr)
{
	return (addr[nr >> 5] >> (nr & 31)) & 1;
}
static inline void clear_bit(u32 nr, volatile u32 *addr)
{
	__asm__ __volatile__("lock btrl %1,%0" : "+m"(addr[nr >> 5]) : "Ir"(nr & 31) : "memory");
}
static inline void set_bit(u32 nr, volatile u32 *addr)
{
	__asm__ __volatile__("lock btsl %1,%0" : "+m"(addr[nr >> 5]) : "Ir"(nr & 31) : "memory");
}
static inline void events_enable(void) { barrier(); vcpu0()->evtchn_upcall_mask = 0; barrier(); }
static inline void events_disable(void) { vcpu0()->evtchn_upcall_mask = 1; barrier(); }

/* ---- time (time.c) ---- */
struct time_snapshot {
	u64 system_time, tsc_timestamp, cpu_freq;
	u32 wc_sec, wc_usec;
	u32 retries;
};
void time_read(struct time_snapshot *t); /* version protocol (abi.md §2.7.2) */
u64 time_now_ns(void);                   /* system_time + scaled TSC delta */
static inline u64 rdtsc(void)
{
	u64 v;
	__asm__ __volatile__("rdtsc" : "=A"(v));
	return v;
}

/* ---- wait.c ---- */
/* Blocks until cond() or timeout_ns of guest time have passed (VIRQ_TIMER must be bound so
 * the block can end); returns cond(). */
int wait_cond(int (*cond)(void), u64 timeout_ns);
/* Does the command line contain word? */
int cmdline_word(const char *word);

/* ---- conformance checks (check.c) ---- */
extern u32 checks_passed, checks_failed;
void check_pass(const char *name);
void check_fail(const char *name, const char *fmt, ...) PRINTF_LIKE(2, 3);
void check_cond(int ok, const char *name, const char *expr, int line);
void check_eq(u32 got, u32 want, const char *name);
#define CHECK(cond, name) check_cond(!!(cond), (name), #cond, __LINE__)
#define CHECK_EQ(got, want, name) check_eq((u32)(got), (u32)(want), (name))
/*
 * A check of what an unprivileged domain sees. Run privileged (as dom0 on real Xen: issue 17)
 * the expression is still evaluated, so later checks see the same state, but the check is
 * skipped ("SKIP <name>: privileged") instead of judged.
 */
int unpriv_check(const char *name);
#define CHECK_UNPRIV(cond, name)                                      \
	do {                                                          \
		int ok_ = !!(cond);                                   \
		if (unpriv_check(name))                               \
			check_cond(ok_, (name), #cond, __LINE__);     \
	} while (0)
#define CHECK_EQ_UNPRIV(got, want, name)                              \
	do {                                                          \
		u32 got_ = (u32)(got);                                \
		if (unpriv_check(name))                               \
			check_eq(got_, (u32)(want), (name));          \
	} while (0)
/* Prints DONE passed=N failed=M and shuts down: poweroff, or crash if any failed. */
void checks_done(void) NORETURN;
/* Common start for conformance guests: lib_init, shared_info, traps, callbacks. */
void conf_init(start_info_t *si, const char *suite);

/* ---- register probe (head.S) ---- */
struct hc_regs {
	u32 eax, ebx, ecx, edx, esi, edi, ebp, eflags, esp;
	u32 cs, ds, es, fs, gs, ss;
};
/* Load in->{eax..ebp,eflags}, execute int $0x82, and snapshot the registers
 * just before (before) and just after (after) it.  Zero before/after first. */
void hc_probe(const struct hc_regs *in, struct hc_regs *before, struct hc_regs *after);
extern char hc_probe_int[], hc_probe_ret[];

void NORETURN guest_halt(u32 reason); /* shutdown loop */

#endif
