/*
 * Conformance: dom0_op (hypercall 7) from a privileged domain, the seed's "Administrative
 * Operations" (semantics.md §8), the read-only commands a guest can judge on its own: the
 * interface version, SCHED_ID, GETDOMAININFO (the first domain at or above an id, here
 * ourselves), GETMEMLIST, GETPAGEFRAMEINFO and PHYSINFO. Run privileged: as dom0 on real Xen
 * (scripts/realxen.ts), as a privileged domU on tsxen. The July build only checks that it runs
 * privileged: the July layouts are covered by test/jul-dom0.test.ts.
 */
#include "lib.h"

#ifndef XEN_ABI_JUL
#define DOM0_GETPAGEFRAMEINFO 18
#define NOTAB 0
#define L2TAB (2u << 28)
#define NONEXISTENT_DOM 0x7FEF

typedef struct {
	domid_t domain;
	u16 _pad0;
	u32 _pad1;
	memory_t max_pfns;
	u32 _pad2;
	u32 buffer;
	u32 _pad3;
	memory_t num_pfns;
	u32 _pad4;
} PACKED dom0_getmemlist_t;
ASSERT_SIZE(dom0_getmemlist_t, 32);

typedef struct {
	memory_t pfn;
	u32 _pad0;
	domid_t domain;
	u16 _pad1;
	u32 type;
} PACKED dom0_getpageframeinfo_t;
ASSERT_SIZE(dom0_getpageframeinfo_t, 16);

typedef struct {
	u32 ht_per_core, cores, cpu_khz, _pad;
	memory_t total_pages;
	u32 _pad1;
	memory_t free_pages;
	u32 _pad2;
} PACKED dom0_physinfo_t;
ASSERT_SIZE(dom0_physinfo_t, 32);

static dom0_op_t op;
static u32 memlist[8192];
static u8 plain_page[4096] BSS_PAGE;

static long dom0_op(u32 cmd)
{
	memset(&op, 0, sizeof(op));
	op.cmd = cmd;
	op.interface_version = DOM0_INTERFACE_VERSION;
	return 0;
}

static long run(void)
{
	return HYPERVISOR_dom0_op(&op);
}

static dom0_getmemlist_t *ml(void)
{
	return (dom0_getmemlist_t *)&op.u;
}

static dom0_getpageframeinfo_t *pfi(void)
{
	return (dom0_getpageframeinfo_t *)&op.u;
}

static long frame_info(u32 mfn, domid_t dom)
{
	dom0_op(DOM0_GETPAGEFRAMEINFO);
	pfi()->pfn = mfn;
	pfi()->domain = dom;
	pfi()->type = 0x5a5a5a5a;
	return run();
}

static void mar_checks(start_info_t *si)
{
	const u32 *mfn_list = (const u32 *)si->mfn_list;
	domid_t self;
	u32 i, bad;
	long rc;

	/* A wrong interface version is refused before the command is looked at. */
	dom0_op(DOM0_SCHED_ID);
	op.interface_version = DOM0_INTERFACE_VERSION - 1;
	CHECK_EQ(run(), -EACCES, "old_interface_version_eacces");
	dom0_op(DOM0_SCHED_ID);
	op.u.dummy[0] = 0x5a5a5a5a;
	CHECK_EQ(run(), 0, "sched_id_ok");
	CHECK_EQ(op.u.dummy[0], 0, "sched_id_is_bvt");

	/* GETDOMAININFO returns the first domain at or above the id asked for: walk them from 0
	 * to find ourselves by our shared_info frame (dom0 on real Xen; on tsxen the privileged
	 * domain comes after tsxen's own dom0). */
	self = 0xFFFF;
	for (i = 0, rc = 0; i < 64 && rc == 0 && self == 0xFFFF; i = op.u.getdomaininfo.domain + 1u) {
		dom0_op(DOM0_GETDOMAININFO);
		op.u.getdomaininfo.domain = i;
		rc = run();
		if (rc == 0 && op.u.getdomaininfo.domain < i)
			break; /* not "at or above" */
		if (rc == 0 && op.u.getdomaininfo.shared_info_frame == si->shared_info >> PAGE_SHIFT)
			self = op.u.getdomaininfo.domain;
	}
	CHECK(self != 0xFFFF, "getdomaininfo_walk_finds_self");
	CHECK_EQ(op.u.getdomaininfo.tot_pages, si->nr_pages, "getdomaininfo_tot_pages_is_nr_pages");
	dom0_op(DOM0_GETDOMAININFO);
	op.u.getdomaininfo.domain = NONEXISTENT_DOM;
	CHECK_EQ(run(), -ESRCH, "getdomaininfo_beyond_last_esrch");

	/* GETMEMLIST: every frame of ours, each one we have in our own P2M list. */
	dom0_op(DOM0_GETMEMLIST);
	ml()->domain = self;
	ml()->max_pfns = sizeof(memlist) / 4;
	ml()->buffer = (u32)memlist;
	ml()->num_pfns = 0x5a5a5a5a;
	CHECK_EQ(run(), 0, "getmemlist_self_ok");
	CHECK_EQ(ml()->num_pfns, si->nr_pages, "getmemlist_all_pages");
	for (i = 0, bad = 0; i < ml()->num_pfns && i < sizeof(memlist) / 4; i++) {
		u32 pfn = machine_to_phys_mapping[memlist[i]];
		if (pfn >= si->nr_pages || mfn_list[pfn] != memlist[i])
			bad++;
	}
	CHECK_EQ(bad, 0, "getmemlist_frames_are_ours");
	dom0_op(DOM0_GETMEMLIST);
	ml()->domain = self;
	ml()->max_pfns = 3;
	ml()->buffer = (u32)memlist;
	CHECK(run() == 0 && ml()->num_pfns == 3, "getmemlist_max_pfns_bounds");
	dom0_op(DOM0_GETMEMLIST);
	ml()->domain = NONEXISTENT_DOM;
	ml()->max_pfns = 3;
	ml()->buffer = (u32)memlist;
	CHECK_EQ(run(), -EINVAL, "getmemlist_unknown_domain_einval");

	/* GETPAGEFRAMEINFO: our L2 (pinned) is an L2 table, a data page is none; a frame that is
	 * not ours, or beyond memory, is -EINVAL. */
	CHECK_EQ(frame_info(virt_to_mfn((void *)si->pt_base), self), 0, "frameinfo_l2_ok");
	CHECK_EQ(pfi()->type, L2TAB, "frameinfo_l2_is_l2tab");
	plain_page[0] = 1;
	CHECK_EQ(frame_info(virt_to_mfn(plain_page), self), 0, "frameinfo_data_page_ok");
	CHECK_EQ(pfi()->type, NOTAB, "frameinfo_data_page_is_notab");
	rc = frame_info(((const u32 *)si->pt_base)[1008] >> PAGE_SHIFT, self);
	CHECK_EQ(rc, -EINVAL, "frameinfo_xen_frame_einval");
	CHECK_EQ(frame_info(0xFFFFF, self), -EINVAL, "frameinfo_beyond_memory_einval");
	CHECK_EQ(frame_info(virt_to_mfn(plain_page), NONEXISTENT_DOM), -EINVAL,
		 "frameinfo_unknown_domain_einval");

	/* PHYSINFO: the machine holds us, a CPU and a clock. */
	dom0_op(DOM0_PHYSINFO);
	CHECK_EQ(run(), 0, "physinfo_ok");
	{
		dom0_physinfo_t *p = (dom0_physinfo_t *)&op.u;
		CHECK(p->total_pages > si->nr_pages && p->free_pages < p->total_pages,
		      "physinfo_pages_hold_us");
		CHECK(p->cores >= 1 && p->ht_per_core >= 1 && p->cpu_khz != 0, "physinfo_cpu");
	}
}
#endif

void start_kernel(start_info_t *si)
{
	conf_init(si, "dom0_op_priv");
	CHECK(si->flags & SIF_PRIVILEGED, "start_info_privileged");
#ifndef XEN_ABI_JUL
	mar_checks(si);
#endif
	checks_done();
}
