/**
 * The network rings (Xen's public io/netif.h of March 2005): a transmit page and a receive
 * page the frontend shares by machine frame number. Transmit requests carry the machine
 * address of a frame in the guest's memory; receive requests carry only an id, and the backend
 * answers with the machine address of a page it has given the guest (page flipping). Indices
 * are free-running u32s; each end asks to be notified when the other's producer reaches its
 * `event` index. The control messages that set the rings up are in control_if.ts.
 */

export const NETIF_TX_RING_SIZE = 256;
export const NETIF_RX_RING_SIZE = 256;

/** netif_tx_interface_t (packed): req_prod, req_cons, resp_prod, event, then 12-byte entries. */
export const NetifTxRing = Object.freeze({
  req_prod: 0,
  req_cons: 4,
  resp_prod: 8,
  event: 12,
  ring: 16,
  ENTRY: 12,
} as const);
/** netif_rx_interface_t (packed): req_prod, resp_prod, event, then 12-byte entries. */
export const NetifRxRing = Object.freeze({
  req_prod: 0,
  resp_prod: 4,
  event: 8,
  ring: 12,
  ENTRY: 12,
} as const);

/** netif_tx_request_t (12 bytes): the packet's machine address (with MEMORY_PADDING), id, size. */
export const NetifTxRequest = Object.freeze({ addr: 0, id: 8, size: 10, SIZE: 12 } as const);
/** netif_tx_response_t (4 bytes). */
export const NetifTxResponse = Object.freeze({ id: 0, status: 2, SIZE: 4 } as const);
/** netif_rx_request_t (2 bytes). */
export const NetifRxRequest = Object.freeze({ id: 0, SIZE: 2 } as const);
/** netif_rx_response_t (12 bytes): status is the packet's size, or a negative NETIF_RSP_*. */
export const NetifRxResponse = Object.freeze({ addr: 0, id: 8, status: 10, SIZE: 12 } as const);

export const NetifRsp = Object.freeze({ DROPPED: -2, ERROR: -1, OKAY: 0 } as const);

/** Ethernet sizes netback checks a transmitted frame against (ETH_HLEN, ETH_FRAME_LEN). */
export const ETH_HLEN = 14;
/** A MAC's length: the source address starts at this offset of a frame. */
export const ETH_ALEN = 6;
export const ETH_FRAME_LEN = 1514;
