/**
 * The MAR guest <-> domain-controller interface (Xen's public io/domain_controller.h of March
 * 2005): two 8-slot rings of 64-byte messages inside the shared_info page, message types and
 * the layouts of the messages tsxen's toolstack sends. abi.md §4.6. Gone at JUL (xenstore).
 */

/** Where control_if_t lives in the shared_info page. */
export const CONTROL_IF_OFFSET = 2048;

/** control_if_t (1040 bytes): two ctrl_sring_t of 520 bytes. */
export const ControlIf = Object.freeze({
  /** guest -> controller: the guest produces requests, the controller responses. */
  tx_ring: 0,
  /** controller -> guest: the controller produces requests, the guest responses. */
  rx_ring: 520,
  SIZE: 1040,
} as const);

/** ctrl_sring_t: free-running u32 indices, masked with CONTROL_RING_SIZE - 1. */
export const CtrlSring = Object.freeze({ req_prod: 0, rsp_prod: 4, ring: 8, SIZE: 520 } as const);
export const CONTROL_RING_SIZE = 8;

/** control_msg_t (64 bytes). */
export const ControlMsg = Object.freeze({
  type: 0,
  subtype: 1,
  id: 2,
  length: 3,
  msg: 4,
  MSG_MAX: 60,
  SIZE: 64,
} as const);

/** Top-level message types (CMSG_*). */
export const Cmsg = Object.freeze({
  CONSOLE: 0,
  BLKIF_BE: 1,
  BLKIF_FE: 2,
  NETIF_BE: 3,
  NETIF_FE: 4,
  SHUTDOWN: 6,
  MEM_REQUEST: 7,
  USBIF_BE: 8,
  USBIF_FE: 9,
} as const);

/** CMSG_CONSOLE subtypes. */
export const CMSG_CONSOLE_DATA = 0;

/** CMSG_SHUTDOWN subtypes (no payload). */
export const CmsgShutdown = Object.freeze({
  POWEROFF: 0,
  REBOOT: 1,
  SUSPEND: 2,
  SYSRQ: 3,
} as const);

/** shutdown_sysrq_t, CMSG_SHUTDOWN_SYSRQ's payload (4 bytes): the key XenLinux hands to handle_sysrq. */
export const ShutdownSysrq = Object.freeze({ key: 0, SIZE: 4 } as const);

/** CMSG_MEM_REQUEST subtype and mem_request_t (8 bytes). */
export const CMSG_MEM_REQUEST_SET = 0;
export const MemRequest = Object.freeze({ target: 0, status: 4, SIZE: 8 } as const);

/** The remote port xend asks for the control channel (start_info.domain_controller_evtchn). */
export const CONTROL_REMOTE_PORT = 1;

// ------------------------------------------------------------------ block-device interface

/** CMSG_BLKIF_FE subtypes: 0 controller -> guest; 32.. guest -> controller. */
export const CmsgBlkifFe = Object.freeze({
  INTERFACE_STATUS: 0,
  DRIVER_STATUS: 32,
  INTERFACE_CONNECT: 33,
  INTERFACE_DISCONNECT: 34,
  INTERFACE_QUERY: 35,
} as const);

/** BLKIF_INTERFACE_STATUS_* (also NETIF_INTERFACE_STATUS_*: the same numbers). */
export const IfStatus = Object.freeze({ CLOSED: 0, DISCONNECTED: 1, CONNECTED: 2, CHANGED: 3 } as const);
/** BLKIF_DRIVER_STATUS_* / NETIF_DRIVER_STATUS_*. */
export const DriverStatus = Object.freeze({ DOWN: 0, UP: 1 } as const);

/** blkif_fe_interface_status_t (12 bytes). */
export const BlkifFeInterfaceStatus = Object.freeze({
  handle: 0,
  status: 4,
  evtchn: 8,
  domid: 10,
  SIZE: 12,
} as const);
/** blkif_fe_driver_status_t (8 bytes). */
export const FeDriverStatus = Object.freeze({ status: 0, max_handle: 4, SIZE: 8 } as const);
/** blkif_fe_interface_connect_t (16 bytes). */
export const BlkifFeInterfaceConnect = Object.freeze({ handle: 0, shmem_frame: 8, SIZE: 16 } as const);
/** blkif_fe_interface_disconnect_t / netif_fe_interface_disconnect_t (4 bytes). */
export const FeInterfaceDisconnect = Object.freeze({ handle: 0, SIZE: 4 } as const);
/** blkif_fe_interface_query_t (12 bytes): handle in, the rest out. */
export const BlkifFeInterfaceQuery = BlkifFeInterfaceStatus;

/** CMSG_BLKIF_BE subtypes: controller -> backend driver, and its DRIVER_STATUS. */
export const CmsgBlkifBe = Object.freeze({
  CREATE: 0,
  DESTROY: 1,
  CONNECT: 2,
  DISCONNECT: 3,
  VBD_CREATE: 4,
  VBD_DESTROY: 5,
  VBD_GROW: 6,
  VBD_SHRINK: 7,
  DRIVER_STATUS: 32,
} as const);

/** BLKIF_BE_STATUS_*: the backend's answer in each message's status field. */
export const BlkifBeStatus = Object.freeze({
  OKAY: 0,
  ERROR: 1,
  INTERFACE_EXISTS: 2,
  INTERFACE_NOT_FOUND: 3,
  INTERFACE_CONNECTED: 4,
  VBD_EXISTS: 5,
  VBD_NOT_FOUND: 6,
  OUT_OF_MEMORY: 7,
  EXTENT_NOT_FOUND: 8,
  MAPPING_ERROR: 9,
} as const);

/** blkif_be_create_t, blkif_be_destroy_t, blkif_be_disconnect_t (12 bytes). */
export const BlkifBeIf = Object.freeze({ domid: 0, blkif_handle: 4, status: 8, SIZE: 12 } as const);
/** blkif_be_connect_t (24 bytes). */
export const BlkifBeConnect = Object.freeze({
  domid: 0,
  blkif_handle: 4,
  shmem_frame: 8,
  evtchn: 16,
  status: 20,
  SIZE: 24,
} as const);
/** blkif_be_vbd_create_t (16 bytes). */
export const BlkifBeVbdCreate = Object.freeze({
  domid: 0,
  blkif_handle: 4,
  vdevice: 8,
  readonly: 10,
  status: 12,
  SIZE: 16,
} as const);
/** blkif_be_vbd_destroy_t and blkif_be_vbd_shrink_t (16 bytes). */
export const BlkifBeVbd = Object.freeze({
  domid: 0,
  blkif_handle: 4,
  vdevice: 8,
  status: 12,
  SIZE: 16,
} as const);
/** blkif_be_vbd_grow_t (36 bytes), with its blkif_extent_t at 8 (u64 start, u64 length, u32 device). */
export const BlkifBeVbdGrow = Object.freeze({
  domid: 0,
  blkif_handle: 4,
  sector_start: 8,
  sector_length: 16,
  device: 24,
  vdevice: 28,
  status: 32,
  SIZE: 36,
} as const);
/** blkif_be_driver_status_t / netif_be_driver_status_t (4 bytes). */
export const BeDriverStatus = Object.freeze({ status: 0, SIZE: 4 } as const);

// ------------------------------------------------------------------ network interface

/** CMSG_NETIF_FE subtypes (the same numbering as blkif's). */
export const CmsgNetifFe = CmsgBlkifFe;

/** netif_fe_interface_status_t (18 bytes). */
export const NetifFeInterfaceStatus = Object.freeze({
  handle: 0,
  status: 4,
  evtchn: 8,
  mac: 10,
  domid: 16,
  SIZE: 18,
} as const);
/** netif_fe_interface_connect_t (24 bytes). */
export const NetifFeInterfaceConnect = Object.freeze({
  handle: 0,
  tx_shmem_frame: 8,
  rx_shmem_frame: 16,
  SIZE: 24,
} as const);
/** netif_fe_interface_query_t (18 bytes): handle in, the rest out. */
export const NetifFeInterfaceQuery = NetifFeInterfaceStatus;

/** CMSG_NETIF_BE subtypes. */
export const CmsgNetifBe = Object.freeze({
  CREATE: 0,
  DESTROY: 1,
  CONNECT: 2,
  DISCONNECT: 3,
  CREDITLIMIT: 4,
  DRIVER_STATUS: 32,
} as const);

/** NETIF_BE_STATUS_*. */
export const NetifBeStatus = Object.freeze({
  OKAY: 0,
  ERROR: 1,
  INTERFACE_EXISTS: 2,
  INTERFACE_NOT_FOUND: 3,
  INTERFACE_CONNECTED: 4,
  OUT_OF_MEMORY: 5,
  MAPPING_ERROR: 6,
} as const);

/** netif_be_create_t (28 bytes). */
export const NetifBeCreate = Object.freeze({
  domid: 0,
  netif_handle: 4,
  mac: 8,
  be_mac: 16,
  status: 24,
  SIZE: 28,
} as const);
/** netif_be_destroy_t and netif_be_disconnect_t (12 bytes). */
export const NetifBeIf = Object.freeze({ domid: 0, netif_handle: 4, status: 8, SIZE: 12 } as const);
/** netif_be_connect_t (32 bytes). */
export const NetifBeConnect = Object.freeze({
  domid: 0,
  netif_handle: 4,
  tx_shmem_frame: 8,
  rx_shmem_frame: 16,
  evtchn: 24,
  status: 28,
  SIZE: 32,
} as const);
/** netif_be_creditlimit_t (20 bytes). */
export const NetifBeCreditLimit = Object.freeze({
  domid: 0,
  netif_handle: 4,
  credit_bytes: 8,
  period_usec: 12,
  status: 16,
  SIZE: 20,
} as const);
