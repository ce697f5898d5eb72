/*
 * tsxen guest library, July 2005 builds only: MAR-style mmu_update batches on the
 * JUL interface.  Normal and machphys requests go to mmu_update in runs; each
 * {ptr | MMU_EXTENDED_COMMAND, cmd | arg << 8} becomes one mmuext_op (machine
 * addresses become frame numbers); SET/CLEAR_FOREIGNDOM set the foreigndom
 * argument of what follows.  The result is MAR's: 0, or the first error with
 * *done = requests completed.  This lets one conformance source check both
 * revisions' semantics (abi.md §2.3, §2.4).
 */
#include "lib.h"

#ifdef XEN_ABI_JUL
static long ext_one(u32 ptr, u32 val, u32 fd)
{
	struct mmuext_op op = { 0 };
	u32 cmd = val & MMUEXT_CMD_MASK;
	op.cmd = cmd;
	switch (cmd) {
	case MMUEXT_PIN_L1_TABLE:
	case MMUEXT_PIN_L2_TABLE:
	case MMUEXT_PIN_L3_TABLE:
	case MMUEXT_PIN_L4_TABLE:
	case MMUEXT_UNPIN_TABLE:
	case MMUEXT_NEW_BASEPTR:
	case MMUEXT_REASSIGN_PAGE:
		op.mfn = ptr >> PAGE_SHIFT;
		break;
	case MMUEXT_SET_LDT:
		op.linear_addr = ptr;
		op.nr_ents = val >> MMUEXT_CMD_SHIFT;
		break;
	default:
		op.linear_addr = ptr;
		break;
	}
	return HYPERVISOR_mmuext_op(&op, 1, NULL, fd);
}

static volatile u32 sink;
static void touch(void *p)
{
	const volatile u32 *w = p;
	sink = w[0] + w[3];
}

static int readable(const mmu_update_t *r)
{
	if ((u32)r >= HYPERVISOR_VIRT_START - sizeof(*r))
		return 0;
	return trap_catch(touch, (void *)r) < 0;
}

long mmu_update_compat(const mmu_update_t *req, u32 count, u32 *done)
{
	u32 i = 0, fd = DOMID_SELF;
	long rc = 0;
	if (count == 0) /* still a call: it flushes writable page tables and checks req */
		return HYPERVISOR_mmu_update_fd(req, 0, done, fd);
	while (i < count) {
		u32 ptr, val;
		/* An unreadable request goes to Xen as it is, for its -EFAULT. */
		if (!readable(&req[i]))
			return HYPERVISOR_mmu_update_fd(&req[i], count - i, done, fd);
		ptr = (u32)req[i].ptr;
		val = (u32)req[i].val;
		if ((ptr & 3) != MMU_EXTENDED_COMMAND) {
			u32 n = 0, j = i;
			while (j < count && readable(&req[j]) && ((u32)req[j].ptr & 3) != MMU_EXTENDED_COMMAND)
				j++;
			if (j < count && !readable(&req[j]))
				j = count; /* Xen itself reports the fault at that entry */
			rc = HYPERVISOR_mmu_update_fd(&req[i], j - i, &n, fd);
			i += n;
			if (rc)
				break;
			continue;
		}
		switch (val & MMUEXT_CMD_MASK) {
		case MMUEXT_SET_FOREIGNDOM:
			/* A zero-length call checks the domain as SET_FOREIGNDOM did. */
			rc = HYPERVISOR_mmu_update_fd(NULL, 0, NULL, val >> 16);
			if (rc == 0)
				fd = val >> 16;
			break;
		case MMUEXT_CLEAR_FOREIGNDOM:
			fd = DOMID_SELF;
			break;
		case MMUEXT_TRANSFER_PAGE:
			rc = -EINVAL; /* no such command at JUL */
			break;
		default:
			rc = ext_one(ptr & ~3u, val, fd);
		}
		if (rc)
			break;
		i++;
	}
	if (done)
		*done = i;
	return rc;
}
#endif
