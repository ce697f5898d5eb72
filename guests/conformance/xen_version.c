/* Conformance: xen_version (hypercall 17), abi.md §2.13.3 (MAR: cmd 0 only; JUL adds 1 and 2). */
#include "lib.h"

#ifdef XEN_ABI_JUL
static char extra[16];
static char info[144];
#endif

void start_kernel(start_info_t *si)
{
	struct hc_regs in, before, after;
	long rc;

	conf_init(si, "xen_version");

	CHECK_EQ(HYPERVISOR_xen_version(0), XEN_VERSION_VALUE, "cmd0_returns_0x00030000");
	CHECK_EQ(HYPERVISOR_xen_version(0) >> 16, 3, "major_is_3");
#ifdef XEN_ABI_JUL
	/* JUL: xen_version(cmd, arg): 1 copies the 16-byte extraversion, 2 the compile info. */
	memset(extra, 0x77, sizeof(extra));
	CHECK_EQ(hypercall2(__HYPERVISOR_xen_version, XENVER_extraversion, extra), 0, "cmd1_extraversion_ok");
	CHECK(memcmp(extra, "-devel", 7) == 0 && extra[15] == 0, "extraversion_is_devel");
	memset(info, 0x77, sizeof(info));
	CHECK_EQ(hypercall2(__HYPERVISOR_xen_version, XENVER_compile_info, info), 0, "cmd2_compile_info_ok");
	CHECK(info[63] == 0 && info[79] == 0 && info[111] == 0 && info[143] == 0 && info[0] != 0,
	      "compile_info_strings_terminated");
	CHECK_EQ(hypercall2(__HYPERVISOR_xen_version, XENVER_extraversion, HYPERVISOR_VIRT_START),
		 -EFAULT, "cmd1_bad_buffer_efault");
	CHECK_EQ(hypercall2(__HYPERVISOR_xen_version, XENVER_compile_info, 0x10000000), -EFAULT,
		 "cmd2_unmapped_buffer_efault");
	CHECK_EQ(HYPERVISOR_xen_version(3), -ENOSYS, "cmd3_enosys");
#else
	CHECK_EQ(HYPERVISOR_xen_version(1), -ENOSYS, "cmd1_extraversion_enosys_at_mar");
	CHECK_EQ(HYPERVISOR_xen_version(2), -ENOSYS, "cmd2_compile_info_enosys_at_mar");
#endif
	CHECK_EQ(HYPERVISOR_xen_version(0x80000000u), -ENOSYS, "cmd_0x80000000_enosys");
	CHECK_EQ(HYPERVISOR_xen_version(0xFFFFFFFFu), -ENOSYS, "cmd_minus1_enosys");

	/* Hypercall numbers are masked with 31. */
	rc = hypercall1(17 + 32, 0);
	CHECK_EQ(rc, XEN_VERSION_VALUE, "nr_49_aliases_17");
	rc = hypercall1(17 + 0xFFFFFFE0u, 0);
	CHECK_EQ(rc, XEN_VERSION_VALUE, "nr_0xfffffff1_aliases_17");

	/* Side-effect free: everything but EAX comes back unchanged. */
	memset(&in, 0, sizeof(in));
	memset(&before, 0, sizeof(before));
	memset(&after, 0, sizeof(after));
	in.eax = 17;
	in.ebx = 0; /* cmd */
	in.ecx = 0x11111111;
	in.edx = 0x22222222;
	in.esi = 0x33333333;
	in.edi = 0x44444444;
	in.ebp = 0x55555555;
	in.eflags = 0x246;
	hc_probe(&in, &before, &after);
	CHECK_EQ(after.eax, XEN_VERSION_VALUE, "probe_eax_result");
	CHECK(after.ebx == 0 && after.ecx == in.ecx && after.edx == in.edx &&
		      after.esi == in.esi && after.edi == in.edi && after.ebp == in.ebp,
	      "probe_args_unchanged");

	checks_done();
}
