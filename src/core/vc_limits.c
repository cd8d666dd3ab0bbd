#include "core/vc_limits.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

/* "4 KiB", "4 TiB" for exact multiples of a unit, else as vc_fmt_size. */
static const char *size_str(uint64_t n, char *buf, size_t len)
{
        static const char *units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        int u = -1;
        while (u + 1 < (int)VC_ARRAY_SIZE(units) && n >= 1024 && n % 1024 == 0) {
                n /= 1024;
                u++;
        }
        if (u < 0)
                return vc_fmt_size(n, buf, len);
        snprintf(buf, len, "%" PRIu64 " %s", n, units[u]);
        return buf;
}

int vc_chunk_size_check(uint32_t chunk_size)
{
        if (!vc_chunk_size_valid(chunk_size))
                return vc_errf(-EINVAL, "chunk size %" PRIu32 " is not a power of two from 4 KiB to 512 KiB",
                               chunk_size);
        return 0;
}

int vc_image_size_check(const char *what, uint64_t size, uint32_t chunk_size)
{
        char a[32], b[32];
        int r = vc_chunk_size_check(chunk_size);
        if (r < 0)
                return r;
        if (size > VC_IMAGE_MAX)
                return vc_errf(-EINVAL, "%s %" PRIu64 " bytes (%s) is too large: vmcas accepts images of at most %s",
                               what, size, size_str(size, a, sizeof a), size_str(VC_IMAGE_MAX, b, sizeof b));
        uint64_t n = vc_chunk_count(size, chunk_size);     /* size <= VC_IMAGE_MAX: no overflow */
        if (n > VC_IMAGE_CHUNKS_MAX) {
                /* the smallest chunk size that fits; one exists because
                 * VC_IMAGE_MAX fits VC_IMAGE_CHUNKS_MAX chunks of VC_CHUNK_MAX */
                uint32_t cs = chunk_size;
                while (cs < VC_CHUNK_MAX && vc_chunk_count(size, cs) > VC_IMAGE_CHUNKS_MAX)
                        cs <<= 1;
                char c[32], d[32];
                return vc_errf(-EINVAL, "%s %s in chunks of %s is %" PRIu64 " chunks, more than the %" PRIu64
                               " vmcas accepts in one image (their keyring entries alone would take %s of "
                               "memory); use a chunk size of %s or more",
                               what, size_str(size, a, sizeof a), size_str(chunk_size, b, sizeof b), n,
                               (uint64_t)VC_IMAGE_CHUNKS_MAX, size_str(n * 64, c, sizeof c),
                               size_str(cs, d, sizeof d));
        }
        return 0;
}
