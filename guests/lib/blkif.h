/*
 * tsxen guest library: the block-device interface of March 2005 (Xen's public io/blkif.h and
 * the CMSG_BLKIF_FE messages of io/domain_controller.h), for the test frontend.
 */
#ifndef TSXEN_BLKIF_H
#define TSXEN_BLKIF_H

#include "xen.h"

#define BLKIF_OP_READ 0
#define BLKIF_OP_WRITE 1
#define BLKIF_OP_PROBE 2
#define BLKIF_RING_SIZE 64
#define BLKIF_MAX_SEGMENTS_PER_REQUEST 11
#define BLKIF_RSP_ERROR -1
#define BLKIF_RSP_OKAY 0

typedef struct {
	u8 operation;
	u8 nr_segments;
	u16 device;
	u32 id;
	u64 sector_number;
	u32 frame_and_sects[BLKIF_MAX_SEGMENTS_PER_REQUEST];
} PACKED blkif_request_t;
ASSERT_SIZE(blkif_request_t, 60);

typedef struct {
	u32 id;
	u8 operation;
	s16 status;
} PACKED blkif_response_t;
ASSERT_SIZE(blkif_response_t, 7);

typedef struct {
	u32 req_prod, rsp_prod;
	union {
		blkif_request_t req;
		blkif_response_t rsp;
	} PACKED ring[BLKIF_RING_SIZE];
} PACKED blkif_sring_t;
ASSERT_SIZE(blkif_sring_t, 8 + 64 * 60);

#define VDISK_TYPE_DISK 0x20
#define VDISK_FLAG_RO 0x40
#define VDISK_FLAG_VIRT 0x80
typedef struct {
	u64 capacity;
	u16 device;
	u16 info;
} PACKED vdisk_t;
ASSERT_SIZE(vdisk_t, 12);

#define CMSG_BLKIF_FE 2
#define CMSG_BLKIF_FE_INTERFACE_STATUS 0
#define CMSG_BLKIF_FE_DRIVER_STATUS 32
#define CMSG_BLKIF_FE_INTERFACE_CONNECT 33
#define CMSG_BLKIF_FE_INTERFACE_DISCONNECT 34
#define CMSG_BLKIF_FE_INTERFACE_QUERY 35

#define BLKIF_INTERFACE_STATUS_CLOSED 0
#define BLKIF_INTERFACE_STATUS_DISCONNECTED 1
#define BLKIF_INTERFACE_STATUS_CONNECTED 2
#define BLKIF_INTERFACE_STATUS_CHANGED 3
#define BLKIF_DRIVER_STATUS_DOWN 0
#define BLKIF_DRIVER_STATUS_UP 1

typedef struct {
	u32 handle, status;
	u16 evtchn, domid;
} PACKED blkif_fe_interface_status_t;
ASSERT_SIZE(blkif_fe_interface_status_t, 12);
typedef struct {
	u32 status, max_handle;
} PACKED blkif_fe_driver_status_t;
typedef struct {
	u32 handle, __pad;
	u32 shmem_frame, __pad2;
} PACKED blkif_fe_interface_connect_t;
ASSERT_SIZE(blkif_fe_interface_connect_t, 16);

#endif
