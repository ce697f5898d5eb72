/*
 * Event-channel and physdev wrappers for the event guests (abi.md §2.8, §2.10).
 * Each returns the hypercall's result; outputs through pointers on success.
 */
#ifndef TSXEN_EVTCHN_OPS_H
#define TSXEN_EVTCHN_OPS_H
#include "lib.h"

static inline long ev_op(evtchn_op_t *op, u32 cmd)
{
	op->cmd = cmd;
	return HYPERVISOR_event_channel_op(op);
}

static inline long ev_alloc_unbound(u32 dom, u32 *port)
{
	evtchn_op_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.u.alloc_unbound.dom = (domid_t)dom;
	rc = ev_op(&op, EVTCHNOP_alloc_unbound);
	if (rc == 0 && port)
		*port = op.u.alloc_unbound.port;
	return rc;
}

static inline long ev_bind_interdomain(u32 dom1, u32 dom2, u32 *port1, u32 *port2)
{
	evtchn_op_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.u.bind_interdomain.dom1 = (domid_t)dom1;
	op.u.bind_interdomain.dom2 = (domid_t)dom2;
	op.u.bind_interdomain.port1 = *port1;
	op.u.bind_interdomain.port2 = *port2;
	rc = ev_op(&op, EVTCHNOP_bind_interdomain);
	if (rc == 0) {
		*port1 = op.u.bind_interdomain.port1;
		*port2 = op.u.bind_interdomain.port2;
	}
	return rc;
}

static inline long ev_bind_ipi(u32 vcpu, u32 *port)
{
	evtchn_op_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.u.bind_ipi.ipi_edom = vcpu;
	rc = ev_op(&op, EVTCHNOP_bind_ipi);
	if (rc == 0 && port)
		*port = op.u.bind_ipi.port;
	return rc;
}

static inline long ev_bind_pirq(u32 pirq, u32 flags, u32 *port)
{
	evtchn_op_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.u.bind_pirq.pirq = pirq;
	op.u.bind_pirq.flags = flags;
	rc = ev_op(&op, EVTCHNOP_bind_pirq);
	if (rc == 0 && port)
		*port = op.u.bind_pirq.port;
	return rc;
}

static inline long ev_close(u32 dom, u32 port)
{
	evtchn_op_t op;
	memset(&op, 0, sizeof(op));
	op.u.close.dom = (domid_t)dom;
	op.u.close.port = port;
	return ev_op(&op, EVTCHNOP_close);
}

static inline long ev_send(u32 port)
{
	evtchn_op_t op;
	memset(&op, 0, sizeof(op));
	op.u.send.local_port = port;
	return ev_op(&op, EVTCHNOP_send);
}

/* status: returns rc; *st = status, *u1 = u32 at union offset 0 (dom is its low 16 bits),
 * *u2 = interdomain port. */
static inline long ev_status(u32 dom, u32 port, u32 *st, u32 *u1, u32 *u2)
{
	evtchn_op_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.u.status.dom = (domid_t)dom;
	op.u.status.port = port;
	rc = ev_op(&op, EVTCHNOP_status);
	if (st)
		*st = op.u.status.status;
	if (u1)
		*u1 = op.u.status.u.virq;
	if (u2)
		*u2 = op.u.status.u.interdomain.port;
	return rc;
}

/* ---- physdev_op (MAR, 40 bytes, union @8) ---- */
#define PHYSDEVOP_PCI_CFGREG_READ 0
#define PHYSDEVOP_PCI_CFGREG_WRITE 1
#define PHYSDEVOP_PCI_INITIALISE_DEVICE 2
#define PHYSDEVOP_PCI_PROBE_ROOT_BUSES 3
#define PHYSDEVOP_IRQ_UNMASK_NOTIFY 4
#define PHYSDEVOP_IRQ_STATUS_QUERY 5
#define PHYSDEVOP_SET_IOPL 6
#define PHYSDEVOP_SET_IOBITMAP 7
#define PHYSDEVOP_IRQ_NEEDS_UNMASK_NOTIFY 1
#define BIND_PIRQ__WILL_SHARE 1

/* JUL (abi.md §2.10): union at 4, 16 bytes; the PCI ops (0..3) are unknown commands. */
typedef struct {
	u32 cmd;
#ifndef XEN_ABI_JUL
	u32 __pad;
#endif
	union {
		struct {
			u32 bus, dev, func, reg, len, value;
		} PACKED pci_cfgreg;
		struct {
			u32 busmask[8];
		} PACKED pci_probe_root_buses;
		struct {
			u32 irq, flags;
		} PACKED irq_status_query;
		struct {
			u32 iopl;
		} PACKED set_iopl;
#ifdef XEN_ABI_JUL
		struct {
			u32 bitmap, nr_ports;
		} PACKED set_iobitmap;
#else
		struct {
			u32 bitmap, __pad0, nr_ports, __pad1;
		} PACKED set_iobitmap;
#endif
		u32 _raw[8];
	} PACKED u;
} PACKED physdev_op_t;
#ifdef XEN_ABI_JUL
ASSERT_OFF(physdev_op_t, u, 4);
#else
ASSERT_SIZE(physdev_op_t, 40);
#endif

static inline long pd_op(physdev_op_t *op, u32 cmd)
{
	op->cmd = cmd;
	return HYPERVISOR_physdev_op(op);
}

/* Shared-info bit helpers for port p. */
static inline volatile u32 *ev_pending_words(void)
{
	return (volatile u32 *)HYPERVISOR_shared_info->evtchn_pending;
}
static inline volatile u32 *ev_mask_words(void)
{
	return (volatile u32 *)HYPERVISOR_shared_info->evtchn_mask;
}

/* A loopback channel: bind_interdomain(SELF, SELF) to a port awaiting our own id. A send
 * on *send arrives on *recv. 0 when none could be bound. */
static inline long ev_loopback(u32 *send, u32 *recv)
{
	for (u32 id = 0; id < 64; id++) {
		u32 p, p1 = 0, p2;
		if (ev_alloc_unbound(id, &p))
			break;
		p2 = p;
		if (ev_bind_interdomain(DOMID_SELF, DOMID_SELF, &p1, &p2) == 0) {
			*send = p1;
			*recv = p2;
			return 0;
		}
		ev_close(DOMID_SELF, p);
	}
	return -1;
}

/* Value of "key=" in the command line as an unsigned decimal, or def. */
static inline u32 cmdline_u32(const start_info_t *si, const char *key, u32 def)
{
	const char *s = (const char *)si->cmd_line;
	u32 klen = strlen(key);
	for (u32 i = 0; s[i]; i++) {
		if ((i == 0 || s[i - 1] == ' ') && memcmp(s + i, key, klen) == 0 && s[i + klen] == '=') {
			u32 v = 0;
			const char *p = s + i + klen + 1;
			while (*p >= '0' && *p <= '9')
				v = v * 10 + (u32)(*p++ - '0');
			return v;
		}
	}
	return def;
}

#endif
