/* vc_chunk — cutting an image into chunks. Fixed-size chunks today: chunk
 * i of an image of `size` bytes is [i·cs, min((i+1)·cs, size)). Everything
 * that maps image offsets to chunks (checkin, checkout, the disk plugin)
 * asks here, so that content-defined chunking can come in one place. */
#ifndef VC_CHUNK_H
#define VC_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VC_CHUNK_MIN (4u << 10)
#define VC_CHUNK_MAX (512u << 10)

/* A power of two from VC_CHUNK_MIN to VC_CHUNK_MAX. */
static inline bool vc_chunk_size_valid(uint64_t cs)
{
        return cs >= VC_CHUNK_MIN && cs <= VC_CHUNK_MAX && (cs & (cs - 1)) == 0;
}

/* Number of chunks of an image of size bytes. */
static inline uint64_t vc_chunk_count(uint64_t size, uint32_t cs)
{
        return (size + cs - 1) / cs;
}

/* Length of chunk i (the last one may be short). */
static inline size_t vc_chunk_len(uint64_t size, uint32_t cs, uint64_t i)
{
        uint64_t end = (i + 1) * (uint64_t)cs;
        return (size_t)((end <= size ? end : size) - i * (uint64_t)cs);
}

/* The chunk holding byte off. */
static inline uint64_t vc_chunk_of(uint64_t off, uint32_t cs)
{
        return off / cs;
}

#endif
