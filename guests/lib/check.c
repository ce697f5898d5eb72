/* tsxen guest library: conformance check reporting. */
#include "lib.h"

u32 checks_passed, checks_failed;

void check_pass(const char *name)
{
	checks_passed++;
	printk("PASS %s\n", name);
}

void check_fail(const char *name, const char *fmt, ...)
{
	char detail[400];
	va_list ap;
	checks_failed++;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	printk("FAIL %s: %s\n", name, detail);
}

void check_cond(int ok, const char *name, const char *expr, int line)
{
	if (ok)
		check_pass(name);
	else
		check_fail(name, "expected %s (line %d)", expr, line);
}

void check_eq(u32 got, u32 want, const char *name)
{
	if (got == want)
		check_pass(name);
	else
		check_fail(name, "got 0x%08x (%d), want 0x%08x (%d)", got, (s32)got, want,
			   (s32)want);
}

int unpriv_check(const char *name)
{
	if (!(start_info->flags & SIF_PRIVILEGED))
		return 1;
	printk("SKIP %s: privileged\n", name);
	return 0;
}

void checks_done(void)
{
	printk("DONE passed=%u failed=%u\n", checks_passed, checks_failed);
	guest_halt(checks_failed ? SHUTDOWN_crash : SHUTDOWN_poweroff);
}
