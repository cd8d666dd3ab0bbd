/* Compressed sizes of single chunks, exactly as the spec defines them
 * (internal). One VcCoster per thread: it keeps its zlib and zstd contexts
 * and output buffer, so costing a chunk allocates nothing. */
#ifndef VC_COSTER_H
#define VC_COSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct VcCoster VcCoster;

/* gzip / zstd: which costs vc_coster_cost computes; maxlen: the largest
 * chunk it will be given. */
int vc_coster_new(bool gzip, bool zstd, uint32_t maxlen, VcCoster **ret);
void vc_coster_free(VcCoster *c);
/* out[0] = min(len, gzip length), out[1] = min(len, zstd length); a cost
 * not asked for is set to len. -EIO (with message) if a library fails. */
int vc_coster_cost(VcCoster *c, const uint8_t *buf, uint32_t len, uint32_t out[2]);

#endif
