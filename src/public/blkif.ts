/**
 * The block-device ring (Xen's public io/blkif.h and io/ring.h of March 2005): one shared page
 * the frontend grants by machine frame number (no grant tables for blkif at this date), with
 * free-running u32 indices and a union of 60-byte requests and 7-byte responses. The control
 * messages that set it up are in control_if.ts.
 */

export const BlkifOp = Object.freeze({ READ: 0, WRITE: 1, PROBE: 2 } as const);

/** Requests in the ring: (4096 - 8) / 60 rounded down to a power of two. */
export const BLKIF_RING_SIZE = 64;
export const BLKIF_MAX_SEGMENTS_PER_REQUEST = 11;

/** blkif_sring_t: req_prod, rsp_prod, then ring[64] of 60-byte entries. */
export const BlkifSring = Object.freeze({ req_prod: 0, rsp_prod: 4, ring: 8, ENTRY: 60 } as const);

/** blkif_request_t (packed, 60 bytes). */
export const BlkifRequest = Object.freeze({
  operation: 0,
  nr_segments: 1,
  device: 2,
  id: 4,
  /** u64 */
  sector_number: 8,
  /** u32[11]: frame << 12 | first_sect << 3 | last_sect. */
  frame_and_sects: 16,
  SIZE: 60,
} as const);

/** frame_and_sects: bits 2:0 last sector, 5:3 first sector (inclusive, 512-byte units), 31:12 MFN. */
export const FAS_LAST_MASK = 7;
export const FAS_FIRST_SHIFT = 3;
export const FAS_FIRST_MASK = 7;
export const FAS_FRAME_SHIFT = 12;
export const SECTOR_SIZE = 512;
export const SECTORS_PER_PAGE = 8;

/** blkif_response_t (packed, 7 bytes). */
export const BlkifResponse = Object.freeze({ id: 0, operation: 4, status: 5, SIZE: 7 } as const);

export const BlkifRsp = Object.freeze({ ERROR: -1, OKAY: 0 } as const);

/** vdisk_t (packed, 12 bytes): a PROBE answer's entries in the frontend's buffer page. */
export const Vdisk = Object.freeze({ capacity: 0, device: 8, info: 10, SIZE: 12 } as const);

/** vdisk_t.info: type in bits 5:0, flags above. */
export const VdiskType = Object.freeze({
  FLOPPY: 0x00,
  TAPE: 0x01,
  CDROM: 0x05,
  OPTICAL: 0x07,
  DISK: 0x20,
} as const);
export const VDISK_FLAG_RO = 0x40;
export const VDISK_FLAG_VIRT = 0x80;
