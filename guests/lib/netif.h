/*
 * tsxen guest library: the network interface of March 2005 (Xen's public io/netif.h and the
 * CMSG_NETIF_FE messages of io/domain_controller.h), for the test frontend.
 */
#ifndef TSXEN_NETIF_H
#define TSXEN_NETIF_H

#include "xen.h"

typedef struct {
	u32 addr, __pad;
	u16 id, size;
} PACKED netif_tx_request_t;
ASSERT_SIZE(netif_tx_request_t, 12);
typedef struct {
	u16 id;
	s8 status;
	u8 __pad;
} PACKED netif_tx_response_t;
typedef struct {
	u16 id;
} PACKED netif_rx_request_t;
typedef struct {
	u32 addr, __pad;
	u16 id;
	s16 status;
} PACKED netif_rx_response_t;
ASSERT_SIZE(netif_rx_response_t, 12);

#define NETIF_TX_RING_SIZE 256
#define NETIF_RX_RING_SIZE 256
typedef struct {
	u32 req_prod, req_cons, resp_prod, event;
	union {
		netif_tx_request_t req;
		netif_tx_response_t resp;
	} PACKED ring[NETIF_TX_RING_SIZE];
} PACKED netif_tx_interface_t;
ASSERT_SIZE(netif_tx_interface_t, 16 + 256 * 12);
typedef struct {
	u32 req_prod, resp_prod, event;
	union {
		netif_rx_request_t req;
		netif_rx_response_t resp;
	} PACKED ring[NETIF_RX_RING_SIZE];
} PACKED netif_rx_interface_t;
ASSERT_SIZE(netif_rx_interface_t, 12 + 256 * 12);

#define NETIF_RSP_DROPPED -2
#define NETIF_RSP_ERROR -1
#define NETIF_RSP_OKAY 0

#define CMSG_NETIF_FE 4
#define CMSG_NETIF_FE_INTERFACE_STATUS 0
#define CMSG_NETIF_FE_DRIVER_STATUS 32
#define CMSG_NETIF_FE_INTERFACE_CONNECT 33
#define CMSG_NETIF_FE_INTERFACE_DISCONNECT 34
#define NETIF_INTERFACE_STATUS_CLOSED 0
#define NETIF_INTERFACE_STATUS_DISCONNECTED 1
#define NETIF_INTERFACE_STATUS_CONNECTED 2
#define NETIF_DRIVER_STATUS_UP 1

typedef struct {
	u32 handle, status;
	u16 evtchn;
	u8 mac[6];
	u16 domid;
} PACKED netif_fe_interface_status_t;
ASSERT_SIZE(netif_fe_interface_status_t, 18);
typedef struct {
	u32 handle, __pad;
	u32 tx_shmem_frame, __pad1;
	u32 rx_shmem_frame, __pad2;
} PACKED netif_fe_interface_connect_t;
ASSERT_SIZE(netif_fe_interface_connect_t, 24);

#endif
