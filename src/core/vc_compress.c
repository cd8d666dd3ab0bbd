#include "core/vc_compress.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

struct VcCompressor {
        ZSTD_CCtx *zc;
        uint8_t *zbuf;          /* ZSTD_compressBound-sized output */
        size_t zcap;
        ZSTD_DCtx *zd;
        z_stream def, inf;
        int def_ok, inf_ok;
};

int vc_comp_parse(const char *s, VcComp *ret)
{
        if (strcmp(s, "none") == 0) *ret = VC_COMP_NONE;
        else if (strcmp(s, "gzip") == 0) *ret = VC_COMP_GZIP;
        else if (strcmp(s, "zstd") == 0) *ret = VC_COMP_ZSTD;
        else return vc_errf(-EINVAL, "unknown compression '%s' (expected none, gzip or zstd)", s);
        return 0;
}

const char *vc_comp_name(VcComp c)
{
        switch (c) {
        case VC_COMP_NONE: return "none";
        case VC_COMP_GZIP: return "gzip";
        case VC_COMP_ZSTD: return "zstd";
        }
        return "?";
}

int vc_compressor_new(VcCompressor **ret)
{
        VcCompressor *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

void vc_compressor_free(VcCompressor *c)
{
        if (!c)
                return;
        ZSTD_freeCCtx(c->zc);
        ZSTD_freeDCtx(c->zd);
        free(c->zbuf);
        if (c->def_ok)
                deflateEnd(&c->def);
        if (c->inf_ok)
                inflateEnd(&c->inf);
        free(c);
}

int vc_zstd_level_parse(const char *s, int *level)
{
        if (strcmp(s, "zstd") == 0) {
                *level = 0;
                return 0;
        }
        if (strncmp(s, "zstd:", 5) == 0) {
                const char *v = s + 5;
                char *end;
                errno = 0;
                long l = strtol(v, &end, 10);
                if (*v >= '0' && *v <= '9' && !*end && !errno && l >= VC_ZSTD_LEVEL_MIN && l <= VC_ZSTD_LEVEL_MAX) {
                        *level = (int)l;
                        return 0;
                }
        }
        return vc_errf(-EINVAL, "invalid compression '%s' (expected zstd or zstd:LEVEL, LEVEL from %d to %d)", s,
                       VC_ZSTD_LEVEL_MIN, VC_ZSTD_LEVEL_MAX);
}

ssize_t vc_compress(VcCompressor *c, VcComp alg, void *dst, size_t cap, const void *src, size_t n)
{
        return vc_compress_level(c, alg, 0, dst, cap, src, n);
}

ssize_t vc_compress_level(VcCompressor *c, VcComp alg, int level, void *dst, size_t cap, const void *src, size_t n)
{
        if (alg == VC_COMP_NONE || n == 0)
                return 0;
        if (alg == VC_COMP_ZSTD) {
                if (!c->zc && !(c->zc = ZSTD_createCCtx()))
                        return -ENOMEM;
                /* zstd needs room beyond its result to produce it: with a
                 * buffer of the chunk's size it gives up on some chunks
                 * that compress to just under that size. */
                size_t bound = ZSTD_compressBound(n);
                if (c->zcap < bound) {
                        uint8_t *b = realloc(c->zbuf, bound);
                        if (!b)
                                return -ENOMEM;
                        c->zbuf = b;
                        c->zcap = bound;
                }
                size_t k = ZSTD_compressCCtx(c->zc, c->zbuf, c->zcap, src, n, level ? level : VC_ZSTD_LEVEL_DEFAULT);
                if (ZSTD_isError(k))
                        return -EIO;
                if (k >= n || k > cap)
                        return 0;
                memcpy(dst, c->zbuf, k);
                return (ssize_t)k;
        }
        /* gzip: one deflate(Z_FINISH) per chunk, the settings of the study's
         * analysis (level 6, windowBits 31, memLevel 8). */
        if (!c->def_ok) {
                if (deflateInit2(&c->def, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                        return -ENOMEM;
                c->def_ok = 1;
        } else
                deflateReset(&c->def);
        c->def.next_in = (Bytef *)src;
        c->def.avail_in = (uInt)n;
        c->def.next_out = dst;
        c->def.avail_out = (uInt)VC_MIN(cap, n);
        int zr = deflate(&c->def, Z_FINISH);
        if (zr != Z_STREAM_END)
                return 0; /* did not fit in fewer than n bytes */
        size_t k = c->def.total_out;
        return k < n ? (ssize_t)k : 0;
}

int vc_decompress(VcCompressor *c, VcComp alg, void *dst, size_t want, const void *src, size_t n)
{
        if (alg == VC_COMP_ZSTD) {
                if (!c->zd && !(c->zd = ZSTD_createDCtx()))
                        return -ENOMEM;
                size_t k = ZSTD_decompressDCtx(c->zd, dst, want, src, n);
                if (ZSTD_isError(k) || k != want)
                        return -EBADMSG;
                return 0;
        }
        if (alg == VC_COMP_GZIP) {
                if (!c->inf_ok) {
                        memset(&c->inf, 0, sizeof c->inf);
                        if (inflateInit2(&c->inf, 31) != Z_OK)
                                return -ENOMEM;
                        c->inf_ok = 1;
                } else
                        inflateReset(&c->inf);
                c->inf.next_in = (Bytef *)src;
                c->inf.avail_in = (uInt)n;
                c->inf.next_out = dst;
                c->inf.avail_out = (uInt)want;
                int zr = inflate(&c->inf, Z_FINISH);
                if (zr != Z_STREAM_END || c->inf.total_out != want || c->inf.avail_in != 0)
                        return -EBADMSG;
                return 0;
        }
        if (n != want)
                return -EBADMSG;
        memcpy(dst, src, n);
        return 0;
}
