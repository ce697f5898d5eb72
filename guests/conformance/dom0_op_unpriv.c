/*
 * Conformance: dom0_op (hypercall 7) from an unprivileged domain (semantics.md §8.2). The
 * privilege check is the first thing do_dom0_op does: every command -- valid, removed, unknown,
 * with a bad interface version, with a pointer into Xen's area or NULL, directly or inside a
 * multicall -- is refused with -EPERM, and nothing of the op is written back.
 */
#include "lib.h"

static dom0_op_t op;

static long dom0_op(u32 cmd, u32 version)
{
	memset(&op, 0x5a, sizeof(op));
	op.cmd = cmd;
	op.interface_version = version;
	return HYPERVISOR_dom0_op(&op);
}

static int untouched(void)
{
	const u8 *p = (const u8 *)&op.u;
	unsigned i;
	for (i = 0; i < sizeof(op.u); i++)
		if (p[i] != 0x5a)
			return 0;
	return 1;
}

void start_kernel(start_info_t *si)
{
	static multicall_entry_t mc[2];
	char name[48];
	u32 cmd;
	long rc;
	int all_eperm = 1, all_untouched = 1;

	conf_init(si, "dom0_op_unpriv");

	/* Every MAR command, the removed and Xen 2.0 ones (14, 30), and unknown numbers. */
	for (cmd = 0; cmd <= 40; cmd++) {
		rc = dom0_op(cmd, DOM0_INTERFACE_VERSION);
		if (rc != -EPERM) {
			snprintf(name, sizeof(name), "cmd_%u_eperm", cmd);
			CHECK_EQ_UNPRIV(rc, -EPERM, name);
			all_eperm = 0;
		}
		if (!untouched())
			all_untouched = 0;
	}
	CHECK_UNPRIV(all_eperm, "every_command_0_to_40_eperm");
	CHECK_UNPRIV(all_untouched, "nothing_written_back");

	CHECK_EQ_UNPRIV(dom0_op(DOM0_CREATEDOMAIN, DOM0_INTERFACE_VERSION), -EPERM, "createdomain_eperm");
	CHECK_EQ_UNPRIV(dom0_op(DOM0_DESTROYDOMAIN, DOM0_INTERFACE_VERSION), -EPERM, "destroydomain_eperm");
	CHECK_EQ_UNPRIV(dom0_op(DOM0_GETDOMAININFO, DOM0_INTERFACE_VERSION), -EPERM, "getdomaininfo_eperm");
	CHECK_EQ_UNPRIV(dom0_op(DOM0_READCONSOLE, DOM0_INTERFACE_VERSION), -EPERM, "readconsole_eperm");
	CHECK_EQ_UNPRIV(dom0_op(0xFFFFFFFFu, DOM0_INTERFACE_VERSION), -EPERM, "cmd_0xffffffff_eperm");

	/* Privilege comes before the version check (-EACCES) and the copy (-EFAULT). */
	CHECK_EQ_UNPRIV(dom0_op(DOM0_SCHED_ID, 0xAAAA1001u), -EPERM, "xen20_version_eperm_not_eacces");
	CHECK_EQ_UNPRIV(dom0_op(DOM0_SCHED_ID, 0), -EPERM, "version_0_eperm_not_eacces");
	CHECK_EQ_UNPRIV(HYPERVISOR_dom0_op((dom0_op_t *)0), -EPERM, "null_pointer_eperm_not_efault");
	CHECK_EQ_UNPRIV(HYPERVISOR_dom0_op((dom0_op_t *)0xFC000000u), -EPERM, "xen_area_pointer_eperm");
	CHECK_EQ_UNPRIV(HYPERVISOR_dom0_op((dom0_op_t *)0xFFFFFFF0u), -EPERM, "top_pointer_eperm");

	/* Hypercall numbers alias modulo 32: 7 + 32 is dom0_op too. */
	CHECK_EQ_UNPRIV(hypercall1(__HYPERVISOR_dom0_op + 32, &op), -EPERM, "nr_39_aliases_dom0_op");

	/* Inside a multicall the same refusal lands in the entry's result. */
	memset(mc, 0, sizeof(mc));
	dom0_op(DOM0_PAUSEDOMAIN, DOM0_INTERFACE_VERSION);
	mc[0].op = __HYPERVISOR_dom0_op;
	mc[0].args[0] = (u32)&op;
	mc[1].op = __HYPERVISOR_dom0_op;
	mc[1].args[0] = 0;
	rc = HYPERVISOR_multicall(mc, 2);
	CHECK_EQ(rc, 0, "multicall_returns_0");
	CHECK_EQ_UNPRIV(MC_RES(&mc[0]), -EPERM, "multicall_entry0_eperm");
	CHECK_EQ_UNPRIV(MC_RES(&mc[1]), -EPERM, "multicall_entry1_eperm");

	/* Still alive and unprivileged: an ordinary hypercall works. */
	CHECK_EQ(HYPERVISOR_xen_version(0) >> 16, 3, "still_running");

	checks_done();
}
