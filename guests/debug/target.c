/*
 * The gdb stub's test guest (test/gdb.test.ts), built with -g -O0 so gdb has lines, types and
 * frames: a variable written by three functions in turn (a watchpoint's and reverse-continue's
 * quarry), a hypercall whose result lands in a variable (stepping over it), and, when the
 * command line says "fault", a store through a null pointer: a page fault with no trap table,
 * which crashes the domain unless a debugger stops it first. "spin" loops for ever before
 * powering off (Ctrl-C's test).
 */
#include "lib.h"

volatile int watched;
volatile int counter;
volatile long version;
static const char banner[] = "dbg: start\n";

void writer_a(int v)
{
	watched = v;
}

void writer_b(int v)
{
	watched = v * 2;
}

void writer_c(int v)
{
	counter += v;
	watched = watched + v;
}

void ask_version(void)
{
	version = HYPERVISOR_xen_version(0);
	counter++;
}

void done(void)
{
	printk("dbg: watched=%d counter=%d version=%lx\n", watched, counter, version);
}

static int has_word(const char *s, const char *w)
{
	u32 n = strlen(w);
	for (u32 i = 0; s[i] != 0; i++)
		if ((i == 0 || s[i - 1] == ' ') && memcmp(s + i, w, n) == 0 && (s[i + n] == 0 || s[i + n] == ' '))
			return 1;
	return 0;
}

void start_kernel(start_info_t *si)
{
	const char *cmdline = (const char *)si->cmd_line;
	int i;

	HYPERVISOR_console_io(CONSOLEIO_write, sizeof(banner) - 1, (char *)banner);
	for (i = 1; i <= 3; i++) {
		writer_a(i);
		counter += i;
		writer_b(i);
	}
	writer_c(5);
	ask_version();
	counter += 100;
	done();
	if (has_word(cmdline, "fault"))
		*(volatile int *)0 = 1;
	while (has_word(cmdline, "spin"))
		counter++;
	guest_halt(SHUTDOWN_poweroff);
}
