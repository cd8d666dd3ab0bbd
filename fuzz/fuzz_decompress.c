/* fuzz_decompress — vc_decompress (src/core/vc_compress.c): gzip, zstd and
 * none, on hostile streams, with a bounded output.
 *
 * Input: u8 algorithm (mod 3: none, gzip, zstd) ‖ u24 LE wanted length
 * (mod VC_CHUNK_MAX + 1) ‖ the compressed stream.
 *
 * Checks: nothing is written past the `want` bytes of the output (guard
 * bytes, since zlib and libzstd are not instrumented); the result is 0 or -EBADMSG; a second decompression
 * with the same (reset) context gives the same answer and bytes; and the
 * stream bytes, compressed by vc_compress, decompress back to themselves.
 */
#include "fuzz.h"
#include "core/vc_compress.h"
#include "core/vc_seal.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 4)
                return 0;
        vc_errclear();
        VcComp alg = (VcComp)(data[0] % 3);
        size_t want = (data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16) % (VC_CHUNK_MAX + 1);
        const uint8_t *src = data + 4;
        size_t n = size - 4;

        VcCompressor *c;
        FUZZ_CHECK(vc_compressor_new(&c) == 0);
        uint8_t *out = fuzz_guarded(want), *again = fuzz_guarded(want);
        int r = vc_decompress(c, alg, out, want, src, n);
        fuzz_guard_check(out, want);
        fuzz_note("decompress %s want %zu from %zu: %d", vc_comp_name(alg), want, n, r);
        FUZZ_CHECK(r == 0 || r == -EBADMSG);
        int r2 = vc_decompress(c, alg, again, want, src, n);
        fuzz_guard_check(again, want);
        FUZZ_CHECK(r2 == r);
        if (r == 0)
                FUZZ_CHECK(memcmp(out, again, want) == 0);
        free(out);
        free(again);

        /* Round trip: compress the stream bytes as if they were a chunk. */
        if (n > 0 && n <= VC_CHUNK_MAX) {
                uint8_t *z = malloc(n), *back = malloc(n);
                FUZZ_CHECK(z && back);
                ssize_t k = vc_compress(c, alg, z, n, src, n);
                FUZZ_CHECK(k >= 0 && (size_t)k < n);
                if (alg == VC_COMP_NONE)
                        FUZZ_CHECK(k == 0);
                if (k > 0) {
                        FUZZ_CHECK(vc_decompress(c, alg, back, n, z, (size_t)k) == 0);
                        FUZZ_CHECK(memcmp(back, src, n) == 0);
                }
                free(z);
                free(back);
        }
        vc_compressor_free(c);
        return 0;
}
