/*
 * tsxen guest library: the control-interface client (MAR).  It answers every request the
 * domain controller puts on the rx ring: CMSG_SHUTDOWN poweroff/reboot are recorded for the
 * guest's main loop (ctrl_if_check_shutdown), which also reports a CMSG_SHUTDOWN_SYSRQ key
 * (XenLinux hands it to handle_sysrq), CMSG_MEM_REQUEST's target is recorded (these
 * guests have no balloon driver), anything else is answered without action.  Each answer
 * echoes type, subtype and id with length 0, as Linux's ctrl_if did.
 */
#include "lib.h"
#include "ctrl_if.h"
#include "evtchn_ops.h"

volatile u32 ctrl_shutdown_request;
volatile u32 ctrl_sysrq_key;
volatile u32 ctrl_mem_target;
void (*ctrl_if_receiver)(control_msg_t *m);

#ifndef XEN_ABI_JUL
static u32 ctrl_port;
static u32 rx_cons;
/* Responses to our tx requests that we have seen (their content is not needed). */
static u32 tx_rsp_cons;
/* Console input from the controller, waiting for ctrl_console_read. */
#define CONS_IN_SIZE 512
static u8 cons_in[CONS_IN_SIZE];
static volatile u32 cons_in_prod, cons_in_cons;

static control_if_t *ctrl_if(void)
{
	return (control_if_t *)((u8 *)HYPERVISOR_shared_info + CONTROL_IF_OFFSET);
}

void ctrl_if_poll(void)
{
	volatile ctrl_sring_t *rx = &ctrl_if()->rx_ring;
	u32 prod = rx->req_prod;
	int answered = 0;
	barrier();
	/* Never trust the controller's index to be sane: at most one ring's worth. */
	if (prod - rx_cons > CONTROL_RING_SIZE)
		rx_cons = prod - CONTROL_RING_SIZE;
	while (rx_cons != prod) {
		volatile control_msg_t *m = &rx->ring[rx_cons & (CONTROL_RING_SIZE - 1)];
		if (m->type == CMSG_SHUTDOWN && m->length == 0 &&
		    (m->subtype == CMSG_SHUTDOWN_POWEROFF || m->subtype == CMSG_SHUTDOWN_REBOOT))
			ctrl_shutdown_request = (u32)m->subtype + 1;
		else if (m->type == CMSG_SHUTDOWN && m->subtype == CMSG_SHUTDOWN_SYSRQ && m->length >= 1 &&
			 m->length <= sizeof(m->msg))
			ctrl_sysrq_key = m->msg[0];
		else if (m->type == CMSG_CONSOLE && m->subtype == CMSG_CONSOLE_DATA &&
			 m->length <= sizeof(m->msg)) {
			u32 i;
			/* Flow control: input that does not fit waits on the ring, unanswered,
			 * until ctrl_console_read makes room (the controller holds the rest). */
			if (CONS_IN_SIZE - (cons_in_prod - cons_in_cons) < m->length)
				break;
			for (i = 0; i < m->length; i++)
				cons_in[cons_in_prod++ % CONS_IN_SIZE] = m->msg[i];
		} else if (m->type == CMSG_MEM_REQUEST && m->length >= 4)
			ctrl_mem_target = (u32)m->msg[0] | (u32)m->msg[1] << 8 | (u32)m->msg[2] << 16 |
					  (u32)m->msg[3] << 24;
		else if (m->type != CMSG_SHUTDOWN && m->type != CMSG_CONSOLE &&
			 m->type != CMSG_MEM_REQUEST && ctrl_if_receiver) {
			/* The receiver sees a copy and may leave a response payload in it. */
			control_msg_t copy = *m;
			ctrl_if_receiver(&copy);
			*m = copy;
			goto answered;
		}
		/* The response goes in the slot of the request it answers. */
		m->length = 0;
	answered:
		rx_cons++;
		answered = 1;
	}
	if (answered) {
		barrier();
		rx->rsp_prod = rx_cons;
		barrier();
		ev_send(ctrl_port);
	}
}

u32 ctrl_console_write(const char *s, u32 len)
{
	volatile ctrl_sring_t *tx;
	u32 sent = 0, spins = 0;
	if (ctrl_port == 0)
		return 0;
	tx = &ctrl_if()->tx_ring;
	while (sent < len) {
		u32 prod = tx->req_prod, n = len - sent, i;
		volatile control_msg_t *m;
		tx_rsp_cons = tx->rsp_prod;
		barrier();
		if (prod - tx_rsp_cons >= CONTROL_RING_SIZE) {
			/* Full: let the controller run.  A controller that never answers loses
			 * the rest rather than hanging the guest. */
			if (++spins > 100000)
				break;
			HYPERVISOR_sched_op(SCHEDOP_yield);
			continue;
		}
		m = &tx->ring[prod & (CONTROL_RING_SIZE - 1)];
		if (n > sizeof(m->msg))
			n = sizeof(m->msg);
		m->type = CMSG_CONSOLE;
		m->subtype = CMSG_CONSOLE_DATA;
		m->id = 0xff; /* no callback wanted, as Linux's noblock send */
		m->length = (u8)n;
		for (i = 0; i < n; i++)
			m->msg[i] = (u8)s[sent + i];
		barrier();
		tx->req_prod = prod + 1;
		barrier();
		ev_send(ctrl_port);
		sent += n;
	}
	return sent;
}

int ctrl_if_send(const control_msg_t *req, control_msg_t *rsp, u64 timeout_ns)
{
	volatile ctrl_sring_t *tx = &ctrl_if()->tx_ring;
	u64 deadline = time_now_ns() + timeout_ns;
	u32 idx = tx->req_prod;
	if (ctrl_port == 0 || idx - tx->rsp_prod >= CONTROL_RING_SIZE)
		return -1;
	tx->ring[idx & (CONTROL_RING_SIZE - 1)] = *req;
	barrier();
	tx->req_prod = idx + 1;
	barrier();
	ev_send(ctrl_port);
	/* Responses come in order: ours is in its slot once rsp_prod has passed it. */
	while ((s32)(tx->rsp_prod - (idx + 1)) < 0) {
		if (time_now_ns() >= deadline)
			return -1;
		HYPERVISOR_set_timer_op(deadline);
		HYPERVISOR_sched_op(SCHEDOP_block);
	}
	barrier();
	if (rsp)
		*rsp = tx->ring[idx & (CONTROL_RING_SIZE - 1)];
	return 0;
}

int ctrl_if_call(u32 type, u32 subtype, const void *payload, u32 len)
{
	control_msg_t m, rsp;
	memset(&m, 0, sizeof(m));
	m.type = (u8)type;
	m.subtype = (u8)subtype;
	m.length = (u8)len;
	memcpy(m.msg, payload, len);
	if (ctrl_if_send(&m, &rsp, 1000000000ull))
		return -1;
	if (rsp.type != m.type || rsp.subtype != m.subtype || rsp.id != m.id)
		return -2;
	return rsp.length;
}

u32 ctrl_console_read(char *buf, u32 len)
{
	u32 n = 0;
	while (n < len && cons_in_cons != cons_in_prod)
		buf[n++] = (char)cons_in[cons_in_cons++ % CONS_IN_SIZE];
	if (n > 0) {
		/* Room again: take input left waiting on the ring (not while the upcall does). */
		u8 was = vcpu0()->evtchn_upcall_mask;
		events_disable();
		ctrl_if_poll();
		vcpu0()->evtchn_upcall_mask = was;
		barrier();
	}
	return n;
}

int ctrl_if_event(void)
{
	shared_info_t *s = HYPERVISOR_shared_info;
	if (ctrl_port == 0 || !test_bit(ctrl_port, s->evtchn_pending))
		return 0;
	clear_bit(ctrl_port, s->evtchn_pending);
	ctrl_if_poll();
	return 1;
}

static void ctrl_handler(u32 port, struct upcall_frame *f)
{
	ctrl_if_poll();
}

u32 ctrl_if_init(void)
{
	u32 port = start_info->domain_controller_evtchn;
	if (port == 0 || port >= NR_EVENT_CHANNELS || HYPERVISOR_shared_info == 0)
		return 0;
	ctrl_port = port;
	tx_rsp_cons = ctrl_if()->tx_ring.rsp_prod;
	/* Requests already queued (a restored domain) are picked up from where the ring is. */
	rx_cons = ctrl_if()->rx_ring.rsp_prod;
	evtchn_handlers[port] = ctrl_handler;
	ctrl_if_poll();
	return port;
}
#else
/* JUL has no control interface (xenstore replaced it). */
void ctrl_if_poll(void) {}
int ctrl_if_send(const control_msg_t *req, control_msg_t *rsp, u64 timeout_ns) { return -1; }
int ctrl_if_call(u32 type, u32 subtype, const void *payload, u32 len) { return -1; }
u32 ctrl_console_write(const char *s, u32 len) { return 0; }
u32 ctrl_console_read(char *buf, u32 len) { return 0; }
int ctrl_if_event(void) { return 0; }
u32 ctrl_if_init(void) { return 0; }
#endif

void ctrl_if_check_shutdown(const char *who)
{
	u32 req = ctrl_shutdown_request;
	u32 key = ctrl_sysrq_key;
	if (key != 0) {
		ctrl_sysrq_key = 0;
		printk("%s: sysrq %c\n", who, (int)key);
	}
	if (req == 0)
		return;
	printk("%s: shutting down (%s) at the domain controller's request\n", who,
	       req - 1 == SHUTDOWN_reboot ? "reboot" : "poweroff");
	guest_halt(req - 1);
}
