/* Compact tables of distinct chunks for the analysis (internal).
 *
 * VcChunkTab holds the distinct chunks of the whole trace at one chunk size:
 * a 32-byte entry per chunk (128-bit hash, length, compressed sizes, first
 * day) and an open-addressing index of 8-byte slots, so a lookup touches one
 * cache line of slots and, on a tag match, one entry. Ids are dense and given
 * in order of first insertion, which the analysis uses to tell a chunk's
 * first occurrence in the global order without storing anything more.
 *
 * VcIpSet holds the distinct chunks of one parcel as 12-byte slots (id and
 * the last version whose memory / disk image held the chunk), which answers
 * every IP and cache question (spec sections 4 and 5) with one lookup. */
#ifndef VC_CHUNKTAB_H
#define VC_CHUNKTAB_H

#include <stdbool.h>
#include <stdint.h>

#define VC_CT_KEY_LEN 16

typedef struct VcChunkEnt {
        uint8_t key[VC_CT_KEY_LEN];
        uint32_t len;
        uint32_t minday;     /* first day any parcel held it (ALL storage) */
        uint32_t cost[2];    /* c(x) for gzip and zstd, when computed */
} VcChunkEnt;

typedef struct VcChunkTab {
        VcChunkEnt *ents;
        uint32_t n, cap;
        uint64_t *slots;     /* tag << 32 | (id + 1); 0 = empty */
        uint64_t mask;
} VcChunkTab;

void vc_chunktab_done(VcChunkTab *t);
/* Finds key or inserts it with length len; *id its id, *isnew whether it
 * was inserted now. -ENOMEM, or -E2BIG past 2^32 - 2 chunks. */
int vc_chunktab_get(VcChunkTab *t, const uint8_t key[VC_CT_KEY_LEN], uint32_t len, uint32_t *id, bool *isnew);
/* Bytes of memory used (for the report of memory use). */
uint64_t vc_chunktab_bytes(const VcChunkTab *t);

typedef struct VcIpEnt {
        uint32_t id1;        /* id + 1; 0 = empty slot */
        uint32_t last[2];    /* last version with the chunk in memory, disk */
} VcIpEnt;

typedef struct VcIpSet {
        VcIpEnt *slots;
        uint32_t n;
        uint8_t bits;        /* 2^bits slots */
} VcIpSet;

void vc_ipset_done(VcIpSet *s);
/* The slot of id, inserted (with last[] = 0) if missing, *inserted then
 * true. NULL when out of memory. */
VcIpEnt *vc_ipset_get(VcIpSet *s, uint32_t id, bool *inserted);
uint64_t vc_ipset_bytes(const VcIpSet *s);

#endif
