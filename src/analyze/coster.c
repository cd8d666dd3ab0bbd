/* c(x) = min(|x|, compressed length of x alone), spec section 2, on top of
 * core's per-chunk compressors: gzip is zlib deflate level 6, windowBits
 * 31, memLevel 8, default strategy, one deflate(Z_FINISH); zstd is level 3.
 * Core stops a compression as soon as it is no smaller than the chunk,
 * which gives the same minimum: deflate's output bytes do not depend on the
 * room it is given, only whether it finishes in it. */
#include "analyze/coster.h"
#include "core/vc_compress.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdlib.h>

struct VcCoster {
        bool gzip, zstd;
        VcCompressor *cz;
        uint8_t *out;
};

void vc_coster_free(VcCoster *c)
{
        if (!c)
                return;
        vc_compressor_free(c->cz);
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
        c->out = malloc(VC_MAX(maxlen, 1u));
        if (!c->out || vc_compressor_new(&c->cz) < 0) {
                vc_coster_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

static int cost(VcCoster *c, VcComp alg, const uint8_t *buf, uint32_t len, uint32_t *out)
{
        ssize_t k = vc_compress(c->cz, alg, c->out, len, buf, len);
        if (k < 0)
                return vc_errf((int)k, "%s compression failed", vc_comp_name(alg));
        *out = k > 0 ? (uint32_t)k : len;
        return 0;
}

int vc_coster_cost(VcCoster *c, const uint8_t *buf, uint32_t len, uint32_t out[2])
{
        out[0] = out[1] = len;
        int r = 0;
        if (c->gzip)
                r = cost(c, VC_COMP_GZIP, buf, len, &out[0]);
        if (r == 0 && c->zstd)
                r = cost(c, VC_COMP_ZSTD, buf, len, &out[1]);
        return r;
}
