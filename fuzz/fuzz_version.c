/* fuzz_version — the version record: vc_version_unpack
 * (src/repo/vc_record.c). The input is the record's bytes. unpack checks
 * the layout only; the GCM tag that authenticates every field is the
 * client's.
 *
 * Checks: unpack gives 0 or -EBADMSG, accepts only records of the fixed
 * length, and keeps the store's commit sequence it is given; packing what
 * it accepts gives the input back.
 */
#include "fuzz.h"
#include "repo/vc_repo.h"
#include "core/vc_util.h"

#include <errno.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        vc_errclear();
        VcVersion v;
        memset(&v, 0xee, sizeof v);
        v.seq = 0x0123456789abcdefull;
        int r = vc_version_unpack(data, size, &v);
        fuzz_note("version_unpack %zu bytes: %d", size, r);
        FUZZ_CHECK(r == 0 || r == -EBADMSG);
        FUZZ_CHECK(v.seq == 0x0123456789abcdefull);
        if (r < 0)
                return 0;
        FUZZ_CHECK(vc_version_rec_len_ok(size) && v.format == (size == VC_VERSION_REC_LEN ? 3 : 2));
        uint8_t buf[VC_VERSION_REC_MAX];
        FUZZ_CHECK(vc_version_pack(&v, buf) == size);
        FUZZ_CHECK(memcmp(buf, data, size) == 0);
        return 0;
}
