/*
 * A tiny shell whose console is the control interface, as a 2005 XenLinux domU's is: every
 * byte it prints goes to the domain controller as CMSG_CONSOLE requests on the tx ring, and
 * it reads what is typed from the controller's CMSG_CONSOLE requests on the rx ring (echoing
 * it, as a tty does).  Nothing goes through console_io, so a toolstack that does not serve the
 * control interface shows nothing (what `tsxen run` did before it did).
 *
 * At boot it prints its command line and its start_info module (the initrd of --ramdisk /
 * ramdisk =): where it is, how long, and an FNV-1a hash of its bytes, after checking that it
 * lies page-aligned between the kernel's end and start_info, as the builder lays it out.
 *
 * Commands: "echo TEXT", "poweroff", "reboot", "crash" (SCHEDOP_shutdown with that reason),
 * "cmdline".  A CMSG_SHUTDOWN from the controller (xm shutdown / reboot) is obeyed too.
 */
#include "lib.h"
#include "ctrl_if.h"

static void out(const char *fmt, ...) PRINTF_LIKE(1, 2);
static void out(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	ctrl_console_write(buf, (u32)n);
}

static void fatal(const char *what, long rc)
{
	/* No control interface: say so where a toolstack without one can see it. */
	printk("ctrl_shell: %s failed: %d\n", what, (int)rc);
	guest_halt(SHUTDOWN_crash);
}

static u32 fnv1a(const u8 *p, u32 n)
{
	u32 h = 2166136261u;
	while (n--) {
		h ^= *p++;
		h *= 16777619u;
	}
	return h;
}

static void show_module(start_info_t *si)
{
	u32 start = (u32)si->mod_start, len = (u32)si->mod_len;
	if (start == 0 && len == 0) {
		out("module: none\n");
		return;
	}
	/* The builder puts the module page-aligned after the kernel image, before the p2m list
	 * and start_info; anything else is a builder bug, and reading it could fault. */
	if ((start & 4095) != 0 || start < (u32)_end || start + len < start || start + len > (u32)si) {
		out("module: FAIL bad placement start=0x%x len=%u end=0x%x start_info=0x%x\n", start, len,
		    (u32)_end, (u32)si);
		return;
	}
	out("module: start=0x%x len=%u fnv=0x%08x\n", start, len, fnv1a((const u8 *)start, len));
}

static int starts_with(const char *s, const char *p)
{
	while (*p)
		if (*s++ != *p++)
			return 0;
	return 1;
}

static void run_command(char *line, start_info_t *si)
{
	if (starts_with(line, "echo ")) {
		out("%s\n", line + 5);
	} else if (strcmp(line, "cmdline") == 0) {
		out("cmdline=\"%s\"\n", (const char *)si->cmd_line);
	} else if (strcmp(line, "poweroff") == 0) {
		out("ctrl_shell: powering off\n");
		guest_halt(SHUTDOWN_poweroff);
	} else if (strcmp(line, "reboot") == 0) {
		out("ctrl_shell: rebooting\n");
		guest_halt(SHUTDOWN_reboot);
	} else if (strcmp(line, "crash") == 0) {
		out("ctrl_shell: crashing\n");
		guest_halt(SHUTDOWN_crash);
	} else if (line[0] != 0) {
		out("%s: unknown command\n", line);
	}
}

void start_kernel(start_info_t *si)
{
	static char line[128];
	u32 used = 0;
	long rc;

	lib_init(si);
	if ((rc = map_shared_info()))
		fatal("update_va_mapping(shared_info)", rc);
	if ((rc = callbacks_init()))
		fatal("set_callbacks", rc);
	if ((rc = traps_init()))
		fatal("set_trap_table", rc);
	/* No timer: waiting for input, the guest is idle until the controller sends some. */
	if (ctrl_if_init() == 0)
		fatal("ctrl_if_init (no domain_controller_evtchn)", 0);
	events_enable();

	out("ctrl_shell: boot cmdline=\"%s\"\n", (const char *)si->cmd_line);
	show_module(si);
	out("ctrl> ");
	for (;;) {
		char c;
		ctrl_if_check_shutdown("ctrl_shell");
		if (ctrl_console_read(&c, 1) == 0) {
			HYPERVISOR_sched_op(SCHEDOP_block);
			continue;
		}
		if (c == '\r')
			c = '\n';
		/* Echo, as a tty in cooked mode does. */
		ctrl_console_write(&c, 1);
		if (c != '\n') {
			if (used < sizeof(line) - 1)
				line[used++] = c;
			continue;
		}
		line[used] = 0;
		used = 0;
		run_command(line, si);
		out("ctrl> ");
	}
}
