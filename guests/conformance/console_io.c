/* Conformance: console_io (hypercall 18), abi.md §2.13.1 (MAR; JUL: write returns 0, no clamp). */
#include "lib.h"

#ifdef XEN_ABI_JUL
#define WRITE_RESULT(n) 0
#define CLAMPED_RESULT 0
#else
#define WRITE_RESULT(n) (n)
#define CLAMPED_RESULT 4095
#endif

static char big[5000]; /* > 4095 bytes so the clamp can be observed */

void start_kernel(start_info_t *si)
{
	static const char line[] = "console_io: plain write\n";
	static const char nul[] = "console_io: text before NUL\n\0hidden-after-nul\n";
	static const char cl[] = "console_io: clamp line\n";
	long rc;

	conf_init(si, "console_io");

	rc = HYPERVISOR_console_io(CONSOLEIO_write, sizeof(line) - 1, line);
	CHECK_EQ(rc, WRITE_RESULT(sizeof(line) - 1), "write_returns_count");

	rc = HYPERVISOR_console_io(CONSOLEIO_write, 0, line);
	CHECK_EQ(rc, 0, "write_zero_count_returns_0");

	/* An embedded NUL truncates the output but the count is still returned. */
	rc = HYPERVISOR_console_io(CONSOLEIO_write, sizeof(nul) - 1, nul);
	CHECK_EQ(rc, WRITE_RESULT(sizeof(nul) - 1), "write_with_nul_returns_count");

	/* count is clamped to 4095 (the rest of the buffer is NUL, so only one line prints). */
	memcpy(big, cl, sizeof(cl) - 1);
	rc = HYPERVISOR_console_io(CONSOLEIO_write, sizeof(big), big);
	CHECK_EQ(rc, CLAMPED_RESULT, "write_count_clamped_4095");

	rc = HYPERVISOR_console_io(CONSOLEIO_write, 16, (void *)HYPERVISOR_VIRT_START);
	CHECK_EQ(rc, -EFAULT, "write_hypervisor_va_efault");

	rc = HYPERVISOR_console_io(CONSOLEIO_write, 16, (void *)(HYPERVISOR_VIRT_START - 8));
	CHECK_EQ(rc, -EFAULT, "write_straddling_virt_start_efault");

	rc = HYPERVISOR_console_io(CONSOLEIO_write, 16, (void *)0x10000000);
	CHECK_EQ(rc, -EFAULT, "write_unmapped_efault");

	rc = HYPERVISOR_console_io(CONSOLEIO_read, 0, big);
	CHECK_EQ(rc, 0, "read_zero_count_returns_0");

	rc = HYPERVISOR_console_io(CONSOLEIO_read, 16, big);
	CHECK(rc >= 0 && rc <= 16, "read_returns_byte_count");

	rc = HYPERVISOR_console_io(2, 16, line);
	CHECK_EQ(rc, -ENOSYS, "cmd_2_enosys");

	rc = HYPERVISOR_console_io(0x100, 16, line);
	CHECK_EQ(rc, -ENOSYS, "cmd_0x100_enosys");

	/* The command is dispatched before the buffer is touched. */
	rc = HYPERVISOR_console_io(7, 16, (void *)HYPERVISOR_VIRT_START);
	CHECK_EQ(rc, -ENOSYS, "unknown_cmd_bad_buffer_enosys");

	checks_done();
}
