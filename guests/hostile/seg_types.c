/*
 * loadSegmentCache's shortcut (src/cpu/cpu.ts: a descriptor that differs from the loaded one
 * in its selector, DPL or accessed bit only keeps the valid offsets) under attack
 * (test/hostile-segtypes.test.ts). Pairs of LDT descriptors equal in base and limit but not in
 * type (read-write and read-only data, readable code; read-write and read-only expand-down)
 * or the B bit (an expand-down segment's upper bound: 0xFFFF or 0xFFFFFFFF), loaded one after
 * the other into ES in a hot loop (ES := A; read through it; ES := B; write or read through
 * it). Warm with B = A, then B the other descriptor: every access after must obey it (a write
 * through read-only data or code #GP(0), an offset past 0xFFFF with B clear #GP(0)) at the
 * first pass; the pairs whose other order is allowed (read-only or code, then read-write) run
 * to their end. (No expand-up and expand-down pair: Xen's check_descriptor ends every
 * expand-up segment below its area and makes every expand-down one wrap, so no two of them
 * share base and limit.)
 */
#include "desc.h"
#include "hostile.h"

#define N 3000u
#define ACC_R1_DATA_RO 0xB0
#define ACC_R1_DATA_DOWN_RO 0xB4
#define FLG_G16 0x8 /* G=1, B=0 */
#define DOWN_BASE 0xFB000000u
#define ACC_R3_DATA_DOWN 0xF6

static u8 ldt[4096] BSS_PAGE;
static u8 buf[4096] BSS_PAGE;

volatile u32 ts_a, ts_b, ts_off, ts_n, ts_sum;

/*
 * ts_wr: n passes of { ES := ts_a; sum += ES:[ts_off]; ES := ts_b; ES:[ts_off] := pass } (at ts_wr_acc)
 * ts_rd: n passes of { ES := ts_a; sum += ES:[ts_off]; ES := ts_b; sum += ES:[ts_off] } (at ts_rd_acc)
 * ECX = passes left (in the trap frame when they fault).
 */
__asm__(".pushsection .text\n"
	".globl ts_wr, ts_rd, ts_wr_acc, ts_rd_acc\n"
	"ts_wr:\n"
	"	pushl %ebx; pushl %esi; pushl %edi\n"
	"	movl ts_a, %esi; movl ts_b, %edx; movl ts_off, %ebx; movl ts_n, %ecx; xorl %edi, %edi\n"
	"1:	movl %esi, %es\n"
	"	addl %es:(%ebx), %edi\n"
	"	movl %edx, %es\n"
	"ts_wr_acc:\n"
	"	movl %ecx, %es:(%ebx)\n"
	"	movl %edi, ts_sum\n"
	"	decl %ecx; jnz 1b\n"
	"	popl %edi; popl %esi; popl %ebx; ret\n"
	"ts_rd:\n"
	"	pushl %ebx; pushl %esi; pushl %edi\n"
	"	movl ts_a, %esi; movl ts_b, %edx; movl ts_off, %ebx; movl ts_n, %ecx; xorl %edi, %edi\n"
	"1:	movl %esi, %es\n"
	"	addl %es:(%ebx), %edi\n"
	"	movl %edx, %es\n"
	"ts_rd_acc:\n"
	"	addl %es:(%ebx), %edi\n"
	"	movl %edi, ts_sum\n"
	"	decl %ecx; jnz 1b\n"
	"	popl %edi; popl %esi; popl %ebx; ret\n"
	".popsection\n");
extern char ts_wr_acc[], ts_rd_acc[];
void ts_wr(void *), ts_rd(void *);

/*
 * Ring 3, EAX -> { a, b, off, n } (read through CS, flat and readable: DS is null at ring 3):
 * n passes of { SS := a; sum += SS:[off]; SS := b; sum += SS:[off] (at u_ss_acc) }, then int3.
 * Entered by iret with SS = a. ECX = passes left, EDI = the sum (in the trap frame).
 */
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl u_ss_loop, u_ss_acc\n"
	"u_ss_loop:\n"
	"	movl %cs:0(%eax), %esi\n"
	"	movl %cs:4(%eax), %edx\n"
	"	movl %cs:8(%eax), %ebx\n"
	"	movl %cs:12(%eax), %ecx\n"
	"	xorl %edi, %edi\n"
	"1:	movl %esi, %ss\n"
	"	addl %ss:(%ebx), %edi\n"
	"	movl %edx, %ss\n"
	"u_ss_acc:\n"
	"	addl %ss:(%ebx), %edi\n"
	"	decl %ecx; jnz 1b\n"
	"	int3\n"
	".popsection\n");
extern char u_ss_loop[], u_ss_acc[];

/*
 * Ring 3, EAX as u_ss_loop's: n passes of { into (OF set: vector 4, whose ring-1 hook returns
 * with SS := b in the frame); sum += SS:[off] (at u_ss_tacc) }, then int3. Entered by iret with
 * SS = a: each pass's SS is loaded by a trap return.
 */
__asm__(".pushsection .user.text, \"ax\"\n"
	".globl u_ss_trap, u_ss_tinto, u_ss_tacc\n"
	"u_ss_trap:\n"
	"	movl %cs:8(%eax), %ebx\n"
	"	movl %cs:12(%eax), %ecx\n"
	"	xorl %edi, %edi\n"
	"1:	movl $0x7fffffff, %edx\n"
	"	addl $1, %edx\n"
	"u_ss_tinto:\n"
	"	into\n"
	"u_ss_tacc:\n"
	"	addl %ss:(%ebx), %edi\n"
	"	decl %ecx; jnz 1b\n"
	"	int3\n"
	".popsection\n");
extern char u_ss_trap[], u_ss_tinto[], u_ss_tacc[];
static u32 u_ss_args[4] __attribute__((section(".user.data")));
static u32 u_ss_data[1024] __attribute__((aligned(4096), section(".user.data")));

static int run(void (*loop)(void *), u32 a, u32 b, u32 off, u32 n)
{
	ts_a = a;
	ts_b = b;
	ts_off = off;
	ts_n = n;
	ts_sum = 0;
	return trap_catch_flat(loop, 0);
}

/* Warm: three runs of N passes with ES := a twice; then b: #GP(0) at acc in the first pass. */
static void pair(void (*loop)(void *), const char *acc, u32 a, u32 b, u32 off, int reverse,
		 const char *name)
{
	u32 i, ok = 1;
	int v;
	for (i = 0; i < 3; i++)
		ok &= run(loop, a, a, off, N) == -1;
	CHECK(ok, name);
	v = run(loop, a, b, off, N);
	CHECK_EQ(v, 13, name);
	CHECK_EQ(last_trap.error_code, 0, name);
	CHECK_EQ(last_trap.eip, (u32)acc, name);
	CHECK_EQ(ts_n - last_trap.ecx, 0, name);
	/* The other way round (when b's accesses are allowed through a): to the end. */
	if (reverse)
		CHECK_EQ(run(loop, b, a, off, N), -1, name);
	printk("RES %s sum=%08x\n", name, ts_sum);
}

/* ss_pair: pair()'s runs at ring 3 with SS (entered by iret with SS := a; a trap takes it back
 * to ring 1's): the loop ends with int3 (vector 3) when b's access is allowed. */
static int into_hook(struct trap_frame *f)
{
	if (f->eip != (u32)u_ss_tacc)
		return 0;
	f->ss = u_ss_args[1];
	return 1;
}

static int ss_run(void *code, u32 a, u32 b, u32 off, u32 n)
{
	u_ss_args[0] = a;
	u_ss_args[1] = b;
	u_ss_args[2] = off;
	u_ss_args[3] = n;
	return run_user_sel(code, 0x1000, FLAT_USER_CS, a, (u32)u_ss_args);
}

/* by_trap: the switches by trap return (u_ss_trap), else by mov (u_ss_loop). */
static void ss_pair(int by_trap, u32 a, u32 b, u32 off, const char *name)
{
	u32 i, ok = 1;
	int v;
	void *code = by_trap ? (void *)u_ss_trap : (void *)u_ss_loop;
	for (i = 0; i < 3; i++)
		ok &= ss_run(code, a, a, off, N) == 3 && last_trap.ecx == 0;
	CHECK(ok, name);
	v = ss_run(code, a, b, off, N);
	CHECK_EQ(v, 12, name);
	CHECK_EQ(last_trap.error_code, 0, name);
	CHECK_EQ(last_trap.eip, by_trap ? (u32)u_ss_tacc : (u32)u_ss_acc, name);
	CHECK_EQ(N - last_trap.ecx, 0, name);
	printk("RES %s sum=%08x\n", name, last_trap.edi);
}

static void put(u32 i, struct desc d)
{
	CHECK_EQ(HYPERVISOR_update_descriptor(virt_to_mach(ldt) + i * 8, d.lo, d.hi), 0, "ldt_entry");
}

void start_kernel(start_info_t *si)
{
	u32 lim = ((u32)buf + 0x100000) >> 12, i;
	hostile_init(si, "seg_types");
	for (i = 0; i < 1024; i++)
		((volatile u32 *)buf)[i] = i * 3 + 1;
	memset(ldt, 0, sizeof(ldt));
	CHECK_EQ(remap(ldt, 1), 0, "ldt_read_only");
	CHECK_EQ(set_ldt((u32)ldt, 16), 0, "ldt_set");
	/* Equal in base and limit: read-write, read-only, readable code. */
	put(1, mkseg(0, lim, ACC_R1_DATA, FLG_G));
	put(2, mkseg(0, lim, ACC_R1_DATA_RO, FLG_G));
	put(3, mkseg(0, lim, ACC_R1_CODE, FLG_G));
	/* Expand-down at 0xFB000000, which Xen truncates to wrap (limit 0x04FFFFFF): with B set,
	 * offset buf + 0x05000000 reads buf; with B clear no offset is valid (0xFFFF at most). */
	put(5, mkseg(DOWN_BASE, 0, ACC_R1_DATA_DOWN, FLG_G));
	put(6, mkseg(DOWN_BASE, 0, ACC_R1_DATA_DOWN, FLG_G16));
	put(4, mkseg(DOWN_BASE, 0, ACC_R1_DATA_DOWN_RO, FLG_G));
	CHECK_EQ(desc_limit_field(desc_get(ldt, 5)), 0x4fff, "down_truncated");
	CHECK_EQ(desc_limit_field(desc_get(ldt, 6)), 0x4fff, "down16_truncated");
	pair(ts_wr, ts_wr_acc, SEL_LDT(1, 1), SEL_LDT(2, 1), (u32)buf + 8, 1, "rw_then_ro_write");
	pair(ts_wr, ts_wr_acc, SEL_LDT(1, 1), SEL_LDT(3, 1), (u32)buf + 12, 1, "data_then_code_write");
	pair(ts_wr, ts_wr_acc, SEL_LDT(5, 1), SEL_LDT(4, 1), (u32)buf + 16 - DOWN_BASE, 1,
	     "down_rw_then_ro_write");
	pair(ts_rd, ts_rd_acc, SEL_LDT(5, 1), SEL_LDT(6, 1), (u32)buf + 20 - DOWN_BASE, 0, "down_b_then_16_read");

	/* Ring 3's SS: an expand-down pair differing only in B (the shortcut's mask must not take
	 * it: B is the upper bound), a flat pair with one limit field, G set then clear (4 KiB
	 * units, then bytes: a limit below the offset). */
	CHECK_EQ(user_pages_init(), 0, "user_pages");
	for (i = 0; i < 1024; i++)
		u_ss_data[i] = i * 5 + 2;
	put(7, mkseg(DOWN_BASE, 0, ACC_R3_DATA_DOWN, FLG_G));
	put(8, mkseg(DOWN_BASE, 0, ACC_R3_DATA_DOWN, FLG_G16));
	put(9, mkseg(0, ((u32)u_ss_data >> 12) + 1, ACC_R3_DATA, FLG_G));
	put(10, mkseg(0, ((u32)u_ss_data >> 12) + 1, ACC_R3_DATA, FLG_BYTE));
	CHECK_EQ(desc_limit_field(desc_get(ldt, 8)), 0x4fff, "ss_down16_truncated");
	ss_pair(0, SEL_LDT(7, 3), SEL_LDT(8, 3), (u32)u_ss_data + 8 - DOWN_BASE, "ring3_ss_b_then_16_read");
	ss_pair(0, SEL_LDT(9, 3), SEL_LDT(10, 3), (u32)u_ss_data + 12, "ring3_ss_g_then_bytes_read");
	trap_hooks[4] = into_hook;
	ss_pair(1, SEL_LDT(7, 3), SEL_LDT(8, 3), (u32)u_ss_data + 16 - DOWN_BASE, "trap_return_ss_b_then_16_read");
	ss_pair(1, SEL_LDT(9, 3), SEL_LDT(10, 3), (u32)u_ss_data + 20, "trap_return_ss_g_then_bytes_read");
	trap_hooks[4] = 0;
	checks_done();
}
