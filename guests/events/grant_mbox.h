/*
 * The grant pair's conventions (grant_a grants, grant_b maps): the grant refs A fills in its
 * table, the ref B offers for the page transfer, and the mailbox at the start of the shared
 * page. Events on the interdomain channel (B's port 1) say "look at the mailbox".
 */
#ifndef GRANT_MBOX_H
#define GRANT_MBOX_H
#include "lib.h"

#define REF_RW 5        /* A's data page, writable */
#define REF_RO 6        /* A's second page, read-only */
#define REF_OTHER 7     /* granted to some other domain */
#define REF_INVALID 8   /* left invalid */
#define REF_MANY 10     /* 10..18: read-only grants of the second page, to exhaust maptrack */
#define NR_MANY 9
#define REF_XFER 20     /* in B's table: accept_transfer from A */
#define REF_XFER_BAD 21 /* in B's table: left invalid */

#define MAGIC_A 0x6772616eu /* "gran" */
#define RO_FILL 0x3C

struct mbox {
	volatile u32 magic; /* MAGIC_A once A has filled the page */
	volatile u32 mfn;   /* the frame of this page, for B's device-map check */
	volatile u32 ping;  /* B -> A */
	volatile u32 pong;  /* A -> B */
	volatile u32 sum_b; /* checksum of blk_b as written by B */
	volatile u32 sum_a; /* checksum of blk_a as written by A */
	volatile u32 blk_b[256];
	volatile u32 blk_a[256];
};

static inline u32 mbox_pattern(u32 round, u32 i, u32 who)
{
	return (round * 2654435761u) ^ (i * 40503u) ^ who;
}

#endif
