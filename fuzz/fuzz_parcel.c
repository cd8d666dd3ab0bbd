/* fuzz_parcel — the parcel record: vc_parcel_unpack (src/repo/vc_record.c).
 * The input is the record's bytes, as the client made them and the store
 * keeps them. unpack checks the layout only; the MAC needs the parcel's
 * key and is the client's (not fuzzed here: a forged record fails it).
 *
 * Checks: unpack gives 0, -EBADMSG or -EPROTO (format 1); what it accepts
 * can be used: a known policy and compression, a chunk size that parcel
 * creation would have allowed (checkout divides by it), a group name iff
 * the policy is group, domain names that are valid; and packing it gives
 * the input back, but for the reserved u32 at 28, which pack writes as 0.
 */
#include "fuzz.h"
#include "repo/vc_repo.h"
#include "core/vc_util.h"

#include <errno.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        vc_errclear();
        VcParcel p;
        int r = vc_parcel_unpack(data, size, "fuzz", &p);
        fuzz_note("parcel_unpack %zu bytes: %d", size, r);
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EPROTO);
        if (r < 0)
                return 0;
        FUZZ_CHECK(p.policy <= VC_POLICY_ALL && p.comp <= VC_COMP_ZSTD);
        FUZZ_CHECK(vc_chunk_size_valid(p.chunk_size));
        FUZZ_CHECK(memchr(p.group, 0, sizeof p.group) && memchr(p.node_dom, 0, sizeof p.node_dom) &&
                   memchr(p.data_dom, 0, sizeof p.data_dom));
        FUZZ_CHECK(p.policy == VC_POLICY_GROUP ? vc_name_valid(p.group) : p.group[0] == 0);
        FUZZ_CHECK(vc_domain_name_valid(p.node_dom) && vc_domain_name_valid(p.data_dom));
        FUZZ_CHECK(strcmp(p.name, "fuzz") == 0);
        uint8_t buf[VC_PARCEL_REC_MAX], want[VC_PARCEL_REC_MAX];
        size_t len = 0;
        FUZZ_CHECK(vc_parcel_pack(&p, buf, sizeof buf, &len) == 0);
        FUZZ_CHECK(len == size && size <= sizeof want);
        memcpy(want, data, size);
        memset(want + 28, 0, 4);
        FUZZ_CHECK(memcmp(buf, want, size) == 0);
        return 0;
}
