/*
 * tsxen guest library: the MAR control interface (abi.md §4.6), guest side.  Two 8-slot rings
 * of 64-byte messages in the shared_info page at +2048; the domain controller (tsxend) puts
 * requests on the rx ring and notifies start_info->domain_controller_evtchn.
 */
#ifndef TSXEN_CTRL_IF_H
#define TSXEN_CTRL_IF_H

#include "xen.h"

typedef struct {
	u8 type, subtype, id, length;
	u8 msg[60];
} PACKED control_msg_t;
ASSERT_SIZE(control_msg_t, 64);

#define CONTROL_RING_SIZE 8
typedef struct {
	u32 req_prod, rsp_prod;
	control_msg_t ring[CONTROL_RING_SIZE];
} PACKED ctrl_sring_t;
ASSERT_SIZE(ctrl_sring_t, 520);

typedef struct {
	ctrl_sring_t tx_ring; /* guest -> controller */
	ctrl_sring_t rx_ring; /* controller -> guest */
} PACKED control_if_t;
ASSERT_SIZE(control_if_t, 1040);
ASSERT_OFF(control_if_t, rx_ring, 520);
#define CONTROL_IF_OFFSET 2048

#define CMSG_CONSOLE 0
#define CMSG_SHUTDOWN 6
#define CMSG_MEM_REQUEST 7
#define CMSG_CONSOLE_DATA 0
#define CMSG_SHUTDOWN_POWEROFF 0
#define CMSG_SHUTDOWN_REBOOT 1
#define CMSG_SHUTDOWN_SYSRQ 3

/* Called for each controller request of another type (CMSG_BLKIF_FE...) before it is
 * answered; it may write a response payload into m (msg and length; default length 0). */
extern void (*ctrl_if_receiver)(control_msg_t *m);
/* Puts a request on the tx ring, notifies, and waits (blocking, at most timeout_ns of guest
 * time; the caller keeps VIRQ_TIMER bound so the wait can end) for its response, copied to
 * rsp.  Returns 0, or -1 on timeout or a full ring. */
int ctrl_if_send(const control_msg_t *req, control_msg_t *rsp, u64 timeout_ns);
/* Sends a request of type/subtype with len bytes of payload and waits up to 1 s for its
 * response: returns the response's length, -1 with none, -2 if it does not echo the request. */
int ctrl_if_call(u32 type, u32 subtype, const void *payload, u32 len);

/* Set by the handler: the SHUTDOWN_* reason + 1 the controller asked for, else 0. */
extern volatile u32 ctrl_shutdown_request;
/* The key of the last CMSG_SHUTDOWN_SYSRQ not yet reported, else 0. */
extern volatile u32 ctrl_sysrq_key;
/* The last CMSG_MEM_REQUEST target in pages (0: none).  Recorded, not acted on. */
extern volatile u32 ctrl_mem_target;

/* Starts answering the controller on start_info's control channel (needs shared_info mapped
 * and events).  Returns the port, or 0 when the domain has none. */
u32 ctrl_if_init(void);
/* For guests with their own upcall_hook: takes the control port's event if pending.
 * Returns 1 if it was. */
int ctrl_if_event(void);
/* Answers every request on the rx ring. */
void ctrl_if_poll(void);
/* The console over the control interface, as XenLinux's domU console (drivers/xen/console):
 * output as CMSG_CONSOLE requests on the tx ring (waiting, by yielding, while the ring is full;
 * returns the bytes sent), input from the controller's CMSG_CONSOLE requests on the rx ring,
 * kept in a 512-byte buffer; a request that does not fit stays on the ring, unanswered, until
 * reading makes room (so the controller paces a paste). */
u32 ctrl_console_write(const char *s, u32 len);
u32 ctrl_console_read(char *buf, u32 len);

/* If a shutdown was requested: print "<who>: shutting down (<reason>) ..." and shut down. */
void ctrl_if_check_shutdown(const char *who);

#endif
