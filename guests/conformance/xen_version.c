/* Conformance: xen_version (hypercall 17), abi.md §2.13.3 (MAR: cmd 0 only). */
#include "lib.h"

void start_kernel(start_info_t *si)
{
	struct hc_regs in, before, after;
	long rc;

	conf_init(si, "xen_version");

	CHECK_EQ(HYPERVISOR_xen_version(0), XEN_VERSION_VALUE, "cmd0_returns_0x00030000");
	CHECK_EQ(HYPERVISOR_xen_version(0) >> 16, 3, "major_is_3");
	CHECK_EQ(HYPERVISOR_xen_version(1), -ENOSYS, "cmd1_extraversion_enosys_at_mar");
	CHECK_EQ(HYPERVISOR_xen_version(2), -ENOSYS, "cmd2_compile_info_enosys_at_mar");
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
