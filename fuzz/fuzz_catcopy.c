/* fuzz_catcopy — the catalog copies in the packs (src/repo/vc_catalog.c):
 * vc_catcopy_unpack, which the rebuild of a lost catalog runs on every
 * record of kind catalog. The input is one copy's bytes.
 *
 * Checks: unpack gives 0 or -EBADMSG; what it accepts has a known type, a
 * valid parcel name, a terminated owner, a record that lies inside the
 * input and has the length its type implies; and packing it gives the
 * input back whenever the name and owner hold no NUL (which unpack lets
 * through, cut there).
 */
#include "fuzz.h"
#include "repo/vc_repo.h"
#include "core/vc_util.h"

#include <errno.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        vc_errclear();
        VcCatCopy c;
        int r = vc_catcopy_unpack(data, size, &c);
        fuzz_note("catcopy_unpack %zu bytes: %d", size, r);
        FUZZ_CHECK(r == 0 || r == -EBADMSG);
        if (r < 0)
                return 0;
        FUZZ_CHECK(c.type >= VC_CAT_PARCEL && c.type <= VC_CAT_PRUNE);
        FUZZ_CHECK(vc_name_valid(c.name) && memchr(c.owner, 0, sizeof c.owner));
        FUZZ_CHECK(c.rec >= data && c.rec + c.rec_len == data + size);
        if (c.type == VC_CAT_VERSION)
                FUZZ_CHECK(vc_version_rec_len_ok(c.rec_len));
        else if (c.type == VC_CAT_PRUNE)
                FUZZ_CHECK(c.rec_len == 0);
        else
                FUZZ_CHECK(c.rec_len <= VC_PARCEL_REC_MAX);
        uint8_t buf[VC_CATCOPY_MAX];
        size_t len = 0;
        FUZZ_CHECK(vc_catcopy_pack(&c, buf, sizeof buf, &len) == 0);
        bool clean = strlen(c.name) == data[6] && (c.type != VC_CAT_PARCEL || strlen(c.owner) == data[7 + data[6]]);
        if (clean)
                FUZZ_CHECK(len == size && memcmp(buf, data, size) == 0);
        return 0;
}
