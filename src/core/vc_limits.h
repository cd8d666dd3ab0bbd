/* vc_limits — the largest numbers vmcas accepts, in one place.
 *
 * Every number that sizes an allocation or feeds a nonce is checked against
 * these before it is used, whether it comes from the command line, the
 * environment or the store (whose records are not trusted: see README,
 * Security model).
 *
 * Images. An image is at most VC_IMAGE_MAX bytes and at most
 * VC_IMAGE_CHUNKS_MAX chunks:
 *
 *   - Chunks. Checkin and checkout hold every keyring entry of a version in
 *     memory, 64 bytes a chunk, and a checkin also holds the previous
 *     version's entries, a copy of them for the content look-up (ip, group,
 *     all), that look-up table (about 96 bytes an entry) and the set of
 *     chunks it re-checks at commit. That is about 350 bytes a chunk. At
 *     2^24 chunks an image, a checkin of a parcel whose two images are both
 *     at the limit needs about 12 GiB: it fits a 16-24 GiB machine. So an
 *     image may be 64 GiB with 4 KiB chunks, 512 GiB with 32 KiB, 2 TiB with
 *     128 KiB (the default) and 4 TiB from 256 KiB.
 *   - Bytes. 4 TiB is more than any VM image a parcel holds in practice,
 *     and a checkin reads the whole image (over an hour at 1 GB/s). It
 *     keeps every byte count of a version (two images: 2^43) and every
 *     offset (chunk index x chunk size) far from overflowing 64 bits.
 *   - Nonces. Delta chunks are encrypted under one key with the nonce
 *     salt ‖ (position << 20): memory positions count from 0 and disk
 *     positions from VC_DELTA_DISK_BASE = 2^43 (see vc_seal.h). Positions
 *     below 2^24 keep the two ranges apart, and (2^43 + 2^24) << 20 still
 *     fits the 64-bit counter, so no nonce is ever used twice.
 *
 * Everything else: chunk sizes are a power of two from VC_CHUNK_MIN to
 * VC_CHUNK_MAX (vc_chunk.h); at most VC_THREADS_MAX worker threads
 * (VMCAS_THREADS); version numbers, --keep and --from's version fit 32
 * bits (a version record holds a u32); gc --grace is at most VC_GRACE_MAX
 * seconds (it is subtracted from the time). */
#ifndef VC_LIMITS_H
#define VC_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_chunk.h"

#define VC_IMAGE_MAX (4ULL << 40)             /* bytes of one image */
#define VC_IMAGE_CHUNKS_MAX (1ULL << 24)      /* chunks of one image */
#define VC_DELTA_DISK_BASE (1ULL << 43)       /* delta nonce position of the disk's chunk 0 */
#define VC_DELTA_MACHINE_BASE (1ULL << 41)    /* ... of a version's machine (vc_repo.h) */
#define VC_DELTA_ORDER_BASE (1ULL << 42)      /* ... of its read order */
#define VC_CHUNK_DEFAULT (128u << 10)         /* chunk size of a parcel made from sizes alone */
#define VC_THREADS_MAX 16                     /* worker threads of one checkin or checkout */
#define VC_VERSION_MAX UINT32_MAX             /* version numbers, --keep */
#define VC_GRACE_MAX (1ULL << 40)             /* seconds (35000 years) */

_Static_assert(VC_IMAGE_CHUNKS_MAX <= VC_DELTA_MACHINE_BASE && VC_DELTA_MACHINE_BASE + VC_IMAGE_CHUNKS_MAX <=
               VC_DELTA_ORDER_BASE && VC_DELTA_ORDER_BASE + VC_IMAGE_CHUNKS_MAX <= VC_DELTA_DISK_BASE,
               "delta nonces of a version's trees would overlap");
_Static_assert(((VC_DELTA_DISK_BASE + VC_IMAGE_CHUNKS_MAX) >> 44) == 0, "delta nonce counter would overflow");
_Static_assert(VC_IMAGE_MAX <= VC_IMAGE_CHUNKS_MAX * (uint64_t)VC_CHUNK_MAX, "an image at the size limit must fit");
_Static_assert((VC_IMAGE_CHUNKS_MAX + 1) * 64 <= SIZE_MAX, "keyring entries of an image must be allocatable");

/* 0 if chunk_size is a power of two from VC_CHUNK_MIN to VC_CHUNK_MAX;
 * otherwise -EINVAL with a message. */
int vc_chunk_size_check(uint32_t chunk_size);

/* 0 if an image of size bytes in chunks of chunk_size is within the limits
 * above; otherwise -EINVAL with a message that names what ("memory size",
 * "disk size", "the disk image of 'p' version 3") and says what to change.
 * Use it on every image size before it sizes anything: sizes given by the
 * user, and sizes read from the store. */
int vc_image_size_check(const char *what, uint64_t size, uint32_t chunk_size);

/* After vc_image_size_check, vc_chunk_count (vc_chunk.h) of the size is
 * at most VC_IMAGE_CHUNKS_MAX and cannot overflow. */

#endif
