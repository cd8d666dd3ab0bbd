/* c(x) = min(|x|, compressed length of x alone), spec section 2. */
#include "analyze/coster.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#define ZSTD_LEVEL 3

struct VcCoster {
        bool gzip, zstd;
        bool zinit;
        z_stream z;
        ZSTD_CCtx *zc;
        uint8_t *out;
        size_t outcap;
};

void vc_coster_free(VcCoster *c)
{
        if (!c)
                return;
        if (c->zinit)
                deflateEnd(&c->z);
        ZSTD_freeCCtx(c->zc);
        free(c->out);
        free(c);
}

int vc_coster_new(bool gzip, bool zstd, uint32_t maxlen, VcCoster **ret)
{
        VcCoster *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->gzip = gzip;
        c->zstd = zstd;
        size_t cap = 0;
        if (gzip) {
                /* The spec's settings: level 6, deflate, windowBits 31 (a gzip
                 * wrapper), memLevel 8, default strategy. */
                if (deflateInit2(&c->z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
                        vc_coster_free(c);
                        return vc_errf(-ENOMEM, "zlib: deflateInit2 failed");
                }
                c->zinit = true;
                cap = deflateBound(&c->z, maxlen);
        }
        if (zstd) {
                c->zc = ZSTD_createCCtx();
                if (!c->zc) {
                        vc_coster_free(c);
                        return -ENOMEM;
                }
                cap = VC_MAX(cap, ZSTD_compressBound(maxlen));
        }
        c->outcap = cap;
        c->out = cap ? malloc(cap) : NULL;
        if (cap && !c->out) {
                vc_coster_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

int vc_coster_cost(VcCoster *c, const uint8_t *buf, uint32_t len, uint32_t out[2])
{
        out[0] = out[1] = len;
        if (c->gzip) {
                /* deflateReset keeps the parameters and gives the same stream
                 * as a fresh deflateInit2; the output buffer is at least
                 * deflateBound, so one deflate(Z_FINISH) ends the stream. */
                if (deflateReset(&c->z) != Z_OK)
                        return vc_errf(-EIO, "zlib: deflateReset failed");
                c->z.next_in = (Bytef *)buf;
                c->z.avail_in = len;
                c->z.next_out = c->out;
                c->z.avail_out = (uInt)c->outcap;
                int zr = deflate(&c->z, Z_FINISH);
                if (zr != Z_STREAM_END)
                        return vc_errf(-EIO, "zlib: deflate returned %d", zr);
                if (c->z.total_out < len)
                        out[0] = (uint32_t)c->z.total_out;
        }
        if (c->zstd) {
                size_t n = ZSTD_compressCCtx(c->zc, c->out, c->outcap, buf, len, ZSTD_LEVEL);
                if (ZSTD_isError(n))
                        return vc_errf(-EIO, "zstd: %s", ZSTD_getErrorName(n));
                if (n < len)
                        out[1] = (uint32_t)n;
        }
        return 0;
}
