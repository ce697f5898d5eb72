/* tsxen guest library: event upcall and failsafe callback (C side). */
#include "lib.h"

void do_upcall(struct upcall_frame *f);
void do_failsafe(struct failsafe_frame *f);

evtchn_handler_t evtchn_handlers[NR_EVENT_CHANNELS];
void (*upcall_hook)(struct upcall_frame *f);
volatile u32 upcall_count, failsafe_count, unhandled_events;
struct upcall_frame last_upcall;
u32 last_upcall_entry_esp;
u8 last_upcall_mask_at_entry, last_upcall_pending_at_entry;
u32 last_upcall_sel_at_entry;
struct failsafe_frame last_failsafe;
u32 failsafe_live_fs, failsafe_live_gs; /* FS/GS as the handler found them */

static void demux(struct upcall_frame *f)
{
	volatile shared_info_t *s = HYPERVISOR_shared_info;
	vcpu_info_t *v = vcpu0();
	u32 sel;
	v->evtchn_upcall_pending = 0;
	sel = __atomic_exchange_n(&v->evtchn_pending_sel, 0, __ATOMIC_SEQ_CST);
	while (sel) {
		u32 w = (u32)__builtin_ctz(sel);
		u32 bits;
		sel &= sel - 1;
		bits = s->evtchn_pending[w] & ~s->evtchn_mask[w];
		while (bits) {
			u32 port = w * 32 + (u32)__builtin_ctz(bits);
			bits &= bits - 1;
			clear_bit(port, (volatile u32 *)s->evtchn_pending);
			if (evtchn_handlers[port])
				evtchn_handlers[port](port, f);
			else
				unhandled_events++;
		}
	}
}

static void process(struct upcall_frame *f)
{
	if (upcall_hook)
		upcall_hook(f);
	else
		demux(f);
}

void do_upcall(struct upcall_frame *f)
{
	vcpu_info_t *v = vcpu0();
	upcall_count++;
	last_upcall = *f;
	last_upcall_entry_esp = (u32)&f->eip;
	last_upcall_mask_at_entry = v->evtchn_upcall_mask;
	last_upcall_pending_at_entry = v->evtchn_upcall_pending;
	last_upcall_sel_at_entry = v->evtchn_pending_sel;
	process(f);
	/* MAR: Xen does not restore the mask; the callback re-enables events. */
	for (;;) {
		barrier();
		v->evtchn_upcall_mask = 0;
		barrier();
		if (!v->evtchn_upcall_pending)
			break;
		v->evtchn_upcall_mask = 1;
		barrier();
		process(f);
	}
}

void do_failsafe(struct failsafe_frame *f)
{
	u32 fs, gs;
	__asm__ __volatile__("movl %%fs, %0\n\tmovl %%gs, %1" : "=r"(fs), "=r"(gs));
	failsafe_live_fs = fs & 0xFFFF;
	failsafe_live_gs = gs & 0xFFFF;
	failsafe_count++;
	last_failsafe = *f;
	/* Resume with known-good data segments. */
	f->ds = f->es = f->fs = f->gs = FLAT_KERNEL_DS;
}

long evtchn_bind_virq(u32 virq, u32 *port)
{
	evtchn_op_t op;
	long rc;
	memset(&op, 0, sizeof(op));
	op.cmd = EVTCHNOP_bind_virq;
	op.u.bind_virq.virq = virq;
	rc = HYPERVISOR_event_channel_op(&op);
	if (rc == 0 && port)
		*port = op.u.bind_virq.port;
	return rc;
}
