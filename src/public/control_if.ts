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

/** CMSG_MEM_REQUEST subtype and mem_request_t (8 bytes). */
export const CMSG_MEM_REQUEST_SET = 0;
export const MemRequest = Object.freeze({ target: 0, status: 4, SIZE: 8 } as const);

/** The remote port xend asks for the control channel (start_info.domain_controller_evtchn). */
export const CONTROL_REMOTE_PORT = 1;
