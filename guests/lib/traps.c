/* tsxen guest library: trap table, trap dispatch, catching traps, ring 3. */
#include "lib.h"

struct jmpbuf {
	u32 ebx, esi, edi, ebp, esp, eip;
};
int guest_setjmp(struct jmpbuf *jb) __attribute__((returns_twice));
void guest_longjmp(struct jmpbuf *jb, int v) NORETURN;
void enter_user(u32 eip, u32 esp, u32 eax) NORETURN;
void do_trap(struct trap_frame *f);

extern const u32 trap_stub_table_low[32], trap_stub_table_soft[16];
extern const u32 trap_stub_0x80, trap_stub_0x82;

trap_hook_t trap_hooks[256];
volatile u32 trap_counts[256];
struct trap_frame last_trap;
u32 last_trap_entry_esp;

static struct jmpbuf catch_jb;
static volatile int catch_armed;

int trap_has_error_code(u32 vector)
{
	return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17;
}

u32 trap_entry_esp(const struct trap_frame *f)
{
	u32 base = (u32)&f->cr2;
	if (f->vector == 14)
		return base;
	return base + (trap_has_error_code(f->vector) ? 4 : 8);
}

u32 trap_stub(u32 vector)
{
	if (vector < 32)
		return trap_stub_table_low[vector];
	if (vector >= 0x40 && vector < 0x50)
		return trap_stub_table_soft[vector - 0x40];
	if (vector == 0x80)
		return trap_stub_0x80;
	if (vector == 0x82)
		return trap_stub_0x82;
	return 0;
}

long trap_set(u32 vector, u32 flags)
{
	trap_info_t t[2];
	memset(t, 0, sizeof(t));
	t[0].vector = (u8)vector;
	t[0].flags = (u8)flags;
	t[0].cs = FLAT_KERNEL_CS;
	t[0].address = trap_stub(vector);
	return HYPERVISOR_set_trap_table(t);
}

long traps_init(void)
{
	static trap_info_t table[21];
	u32 v, n = 0;
	for (v = 0; v < 20; v++) {
		table[n].vector = (u8)v;
		/* int3 / into / bound usable from ring 3 (as Mini-OS does). */
		table[n].flags = (v == 3 || v == 4 || v == 5) ? 3 : 0;
		table[n].cs = FLAT_KERNEL_CS;
		table[n].address = trap_stub(v);
		n++;
	}
	memset(&table[n], 0, sizeof(table[n])); /* terminator: address 0 */
	return HYPERVISOR_set_trap_table(table);
}

void do_trap(struct trap_frame *f)
{
	u32 v = f->vector & 0xFF;
	trap_counts[v]++;
	if (trap_hooks[v] && trap_hooks[v](f))
		return;
	if (catch_armed) {
		catch_armed = 0;
		last_trap = *f;
		last_trap_entry_esp = trap_entry_esp(f);
		guest_longjmp(&catch_jb, 1);
	}
	check_fail("unexpected_trap", "vector=%u eip=%08x cs=%04x eflags=%08x err=%08x cr2=%08x",
		   v, f->eip, f->cs & 0xFFFF, f->eflags, f->error_code, f->cr2);
	checks_done();
}

int trap_catch(void (*fn)(void *), void *arg)
{
	catch_armed = 1;
	if (guest_setjmp(&catch_jb) == 0) {
		fn(arg);
		catch_armed = 0;
		return -1;
	}
	return (int)(last_trap.vector & 0xFF);
}

int run_user(u32 eip, u32 esp, u32 eax)
{
	catch_armed = 1;
	if (guest_setjmp(&catch_jb) == 0)
		enter_user(eip, esp, eax);
	/* Back in ring 1 via the trap stub (DS/ES reloaded); restore FS/GS. */
	__asm__ __volatile__("movl %0, %%fs\n\tmovl %0, %%gs" ::"r"((u32)FLAT_KERNEL_DS));
	return (int)(last_trap.vector & 0xFF);
}

volatile u32 probe_esp;
volatile u32 probe_addr;
