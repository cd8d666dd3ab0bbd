/* fuzz_wire — the chunk head of the server's binary request bodies:
 * vc_wire_head_parse (src/remote/vc_wire.c), which `vmcas serve` runs on
 * the first bytes of every missing, get and put request, as they arrive.
 *
 * Input: the body's first bytes.
 *
 * Checks: every prefix of the input parses as the whole would, or asks for
 * more (0) when the head is not complete yet, or fails the same way; a
 * head it accepts holds a valid parcel name and domain name, and
 * vc_wire_head writes the same bytes back.
 */
#include "fuzz.h"
#include "remote/vc_wire.h"
#include "repo/vc_repo.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        vc_errclear();
        char parcel[65], domain[80];
        uint32_t n = 0;
        int r = vc_wire_head_parse(data, size, parcel, domain, &n);
        fuzz_note("wire_head_parse %zu bytes: %d", size, r);
        FUZZ_CHECK(r >= 0 || r == -EINVAL);
        if (r > 0) {
                FUZZ_CHECK((size_t)r <= size && r <= VC_WIRE_HEAD_MAX);
                FUZZ_CHECK(vc_name_valid(parcel) && vc_domain_name_valid(domain));
                uint8_t b[VC_WIRE_HEAD_MAX];
                FUZZ_CHECK(vc_wire_head(b, parcel, domain, n) == (size_t)r && memcmp(b, data, (size_t)r) == 0);
        }
        /* As the body arrives: each prefix, in a buffer of its own size. */
        size_t upto = size < VC_WIRE_HEAD_MAX + 8 ? size : VC_WIRE_HEAD_MAX + 8;
        for (size_t k = 0; k < upto; k++) {
                uint8_t *p = malloc(k ? k : 1);
                FUZZ_CHECK(p);
                memcpy(p, data, k);
                char pp[65], dd[80];
                uint32_t m = 0;
                vc_errclear();
                int q = vc_wire_head_parse(p, k, pp, dd, &m);
                free(p);
                if (q == 0)
                        continue;       /* not complete yet */
                /* decided on a prefix: the whole input must say the same */
                FUZZ_CHECK(q == r);
                if (q > 0)
                        FUZZ_CHECK(strcmp(pp, parcel) == 0 && strcmp(dd, domain) == 0 && m == n);
                break;
        }
        return 0;
}
