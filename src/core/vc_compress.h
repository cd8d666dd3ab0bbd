/* vc_compress — per-chunk compression: none, gzip (zlib) or zstd.
 *
 * A VcCompressor holds the library contexts for one thread, so a chunk
 * costs no allocation. Compressed output is kept only when it is smaller
 * than the input (as Venti does): vc_compress returns 0 otherwise. */
#ifndef VC_COMPRESS_H
#define VC_COMPRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum { VC_COMP_NONE = 0, VC_COMP_GZIP = 1, VC_COMP_ZSTD = 2 } VcComp;

/* "none", "gzip", "zstd" -> VcComp; -EINVAL with a message otherwise. */
int vc_comp_parse(const char *s, VcComp *ret);
const char *vc_comp_name(VcComp c);

typedef struct VcCompressor VcCompressor;
int vc_compressor_new(VcCompressor **ret);
void vc_compressor_free(VcCompressor *c);   /* NULL ok */

/* Compresses src[0..n) with algorithm alg (gzip: level 6; zstd: level 3)
 * into dst[0..cap). Returns the compressed length if it is < n and fits,
 * 0 if the chunk should be stored raw, -errno on failure. */
ssize_t vc_compress(VcCompressor *c, VcComp alg, void *dst, size_t cap, const void *src, size_t n);
/* The same at a zstd level (VC_ZSTD_LEVEL_MIN..MAX; 0: the default,
 * VC_ZSTD_LEVEL_DEFAULT); other algorithms ignore it. Decompression needs
 * no level: it is stored nowhere. */
#define VC_ZSTD_LEVEL_DEFAULT 3
#define VC_ZSTD_LEVEL_MIN 1
#define VC_ZSTD_LEVEL_MAX 19
ssize_t vc_compress_level(VcCompressor *c, VcComp alg, int level, void *dst, size_t cap, const void *src, size_t n);
/* Parses "zstd" or "zstd:LEVEL" (the level of a checkin's new chunks):
 * *level is 0 for the default. -EINVAL with a message otherwise. */
int vc_zstd_level_parse(const char *s, int *level);

/* Decompresses exactly `want` bytes. -EBADMSG if src is not a valid stream
 * of that length (the input may be hostile: never writes past dst+want). */
int vc_decompress(VcCompressor *c, VcComp alg, void *dst, size_t want, const void *src, size_t n);

#endif
