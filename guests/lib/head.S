/*
 * tsxen guest library: entry point and low-level stubs (ring 1, flat segments).
 *
 * At _start (abi.md §4.5): ring 1, CS = 0x0819, DS/ES/FS/GS/SS = 0x0821
 * (July 2005: 0xE019 / 0xE021),
 * ESI = start_info VA, ESP = top of the builder's bootstrap stack.
 */

#ifdef XEN_ABI_JUL
/* July 2005: Xen's flat selectors are in GDT page 14 (abi.md §3.2). */
#define FLAT_KERNEL_DS 0xE021
#define FLAT_USER_CS   0xE02B
#define FLAT_USER_DS   0xE033
#else
#define FLAT_KERNEL_DS 0x0821
#define FLAT_USER_CS   0x082B
#define FLAT_USER_DS   0x0833
#endif

	.section __xen_guest
	.asciz "GUEST_OS=tsxen-test,XEN_VER=3.0,LOADER=generic"

	.section .note.GNU-stack,"",@progbits

/* ------------------------------------------------------------------ entry */
	.section .text.head,"ax"
	.globl _start
_start:
	/* Record the builder's register state before touching anything. */
	movl %eax, boot_regs+0
	movl %ebx, boot_regs+4
	movl %ecx, boot_regs+8
	movl %edx, boot_regs+12
	movl %esi, boot_regs+16
	movl %edi, boot_regs+20
	movl %ebp, boot_regs+24
	movl %esp, boot_regs+28
	pushfl
	popl boot_regs+32
	movw %cs, boot_regs+36
	movw %ds, boot_regs+40
	movw %es, boot_regs+44
	movw %fs, boot_regs+48
	movw %gs, boot_regs+52
	movw %ss, boot_regs+56
	cld
	/* Our own stack (SS is already FLAT_KERNEL_SS). */
	movl $boot_stack_top, %esp
	xorl %ebp, %ebp
	pushl %esi
	call start_kernel
	/* start_kernel must not return: crash the domain. */
1:	movl $6, %eax                   /* sched_op */
	movl $0x302, %ebx               /* SCHEDOP_shutdown | SHUTDOWN_crash << 8 */
	int $0x82
	jmp 1b

	.text
/* ------------------------------------------------------------------ traps */
/* Frame handed to do_trap (struct trap_frame, low -> high):
 *   gs fs es ds | edi esi ebp esp ebx edx ecx eax | vector | cr2 | error_code | eip cs eflags [esp ss]
 */
.macro TRAP_NOERR vec
	.globl trap_\vec
trap_\vec:
	pushl $0                        /* error_code */
	pushl $0                        /* cr2 */
	pushl $\vec
	jmp trap_common
.endm

.macro TRAP_ERR vec
	.globl trap_\vec
trap_\vec:
	pushl $0                        /* cr2 (below Xen's error code) */
	pushl $\vec
	jmp trap_common
.endm

	/* #PF: Xen pushed CR2 below the error code. */
	.globl trap_14
trap_14:
	pushl $14
	jmp trap_common

	.irp v, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	TRAP_NOERR \v
	.endr
	.irp v, 8,10,11,12,13,17
	TRAP_ERR \v
	.endr
	.irp v, 64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,128,130
	TRAP_NOERR \v
	.endr

trap_common:
	pushal
	pushl %ds
	pushl %es
	pushl %fs
	pushl %gs
	movl $FLAT_KERNEL_DS, %eax
	movl %eax, %ds
	movl %eax, %es
	cld
	pushl %esp
	call do_trap
	addl $4, %esp
	popl %gs
	popl %fs
	popl %es
	popl %ds
	popal
	addl $12, %esp                  /* vector, cr2, error_code */
	iret

	.section .rodata
	.align 4
	.globl trap_stub_table_low
trap_stub_table_low:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.long trap_\v
	.endr
	.globl trap_stub_table_soft
trap_stub_table_soft:                   /* 0x40..0x4F */
	.irp v, 64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79
	.long trap_\v
	.endr
	.globl trap_stub_0x80, trap_stub_0x82
trap_stub_0x80: .long trap_128
trap_stub_0x82: .long trap_130
	.text

/* ------------------------------------------------------------- callbacks */
/* Event upcall: Xen's frame is EIP, CS, EFLAGS (ring 1 -> ring 1).  Xen set
 * upcall_mask = 1; do_upcall clears it again before we iret. */
	.globl hypervisor_callback
hypervisor_callback:
	pushal
	pushl %ds
	pushl %es
	pushl %fs
	pushl %gs
	movl $FLAT_KERNEL_DS, %eax
	movl %eax, %ds
	movl %eax, %es
	cld
	pushl %esp
	call do_upcall
	addl $4, %esp
	popl %gs
	popl %fs
	popl %es
	popl %ds
	popal
	iret

/* Failsafe: Xen's frame is DS, ES, FS, GS, EIP, CS, EFLAGS and the live data
 * segment registers are null: load DS/ES before touching memory. */
	.globl failsafe_callback
failsafe_callback:
	pushal
	movl $FLAT_KERNEL_DS, %eax
	movl %eax, %ds
	movl %eax, %es
	cld
	pushl %esp
	call do_failsafe
	addl $4, %esp
	popal
	popl %ds
	popl %es
	popl %fs
	popl %gs
	iret

/* ---------------------------------------------------------- setjmp/longjmp */
/* struct jmpbuf { ebx, esi, edi, ebp, esp, eip } */
	.globl guest_setjmp
guest_setjmp:
	movl 4(%esp), %eax
	movl %ebx, 0(%eax)
	movl %esi, 4(%eax)
	movl %edi, 8(%eax)
	movl %ebp, 12(%eax)
	leal 4(%esp), %ecx
	movl %ecx, 16(%eax)
	movl (%esp), %ecx
	movl %ecx, 20(%eax)
	xorl %eax, %eax
	ret

	.globl guest_longjmp
guest_longjmp:
	movl 4(%esp), %edx
	movl 8(%esp), %eax
	movl 0(%edx), %ebx
	movl 4(%edx), %esi
	movl 8(%edx), %edi
	movl 12(%edx), %ebp
	movl 16(%edx), %esp
	jmp *20(%edx)

/* ------------------------------------------------------------- ring 3 entry */
/* void enter_user(u32 eip, u32 esp, u32 eax): iret to ring 3.  Never returns
 * here; the first trap from ring 3 longjmps back (see run_user). */
	.globl enter_user
enter_user:
	movl 4(%esp), %ecx
	movl 8(%esp), %edx
	movl 12(%esp), %eax
	pushl $FLAT_USER_DS             /* SS */
	pushl %edx                      /* ESP */
	pushfl                          /* EFLAGS */
	pushl $FLAT_USER_CS             /* CS */
	pushl %ecx                      /* EIP */
	movl $FLAT_USER_DS, %ebx
	movl %ebx, %ds
	movl %ebx, %es
	movl %ebx, %fs
	movl %ebx, %gs
	xorl %ebx, %ebx
	xorl %ecx, %ecx
	xorl %edx, %edx
	xorl %esi, %esi
	xorl %edi, %edi
	xorl %ebp, %ebp
	iret

/* ------------------------------------------------------- register probe */
/* void hc_probe(const struct hc_regs *in, struct hc_regs *before, struct hc_regs *after)
 * struct hc_regs: eax 0 ebx 4 ecx 8 edx 12 esi 16 edi 20 ebp 24 eflags 28 esp 32
 *                 cs 36 ds 40 es 44 fs 48 gs 52 ss 56 */
	.globl hc_probe, hc_probe_int, hc_probe_ret
hc_probe:
	pushl %ebp
	pushl %ebx
	pushl %esi
	pushl %edi
	movl 20(%esp), %eax             /* in */
	movl 24(%esp), %ecx             /* before */
	movl 28(%esp), %edx             /* after */
	movl %edx, probe_after_ptr
	movw %cs, 36(%ecx)
	movw %ds, 40(%ecx)
	movw %es, 44(%ecx)
	movw %fs, 48(%ecx)
	movw %gs, 52(%ecx)
	movw %ss, 56(%ecx)
	movl %esp, 32(%ecx)
	pushl 28(%eax)
	popfl
	pushfl
	popl 28(%ecx)                   /* EFLAGS as the CPU accepted them */
	movl 4(%eax), %ebx              /* mov does not touch EFLAGS */
	movl 8(%eax), %ecx
	movl 12(%eax), %edx
	movl 16(%eax), %esi
	movl 20(%eax), %edi
	movl 24(%eax), %ebp
	movl 0(%eax), %eax
hc_probe_int:
	int $0x82
hc_probe_ret:
	pushfl
	pushl %eax
	movl probe_after_ptr, %eax
	popl 0(%eax)
	popl 28(%eax)
	movl %ebx, 4(%eax)
	movl %ecx, 8(%eax)
	movl %edx, 12(%eax)
	movl %esi, 16(%eax)
	movl %edi, 20(%eax)
	movl %ebp, 24(%eax)
	movl %esp, 32(%eax)
	movw %cs, 36(%eax)
	movw %ds, 40(%eax)
	movw %es, 44(%eax)
	movw %fs, 48(%eax)
	movw %gs, 52(%eax)
	movw %ss, 56(%eax)
	cld
	popl %edi
	popl %esi
	popl %ebx
	popl %ebp
	ret

/* ------------------------------------------------------------------ data */
	.bss
	.align 4
	.globl boot_regs
boot_regs:
	.space 60
probe_after_ptr:
	.space 4

	.section .bss.page_aligned,"aw",@nobits
	.align 4096
	.globl boot_stack, boot_stack_top
boot_stack:
	.space 16384
boot_stack_top:
