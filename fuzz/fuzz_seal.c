/* fuzz_seal — opening a sealed chunk: vc_unseal (src/core/vc_seal.c), which
 * checks the tag, parses the header, decrypts and decompresses, and with
 * check_key re-derives the key from the content.
 *
 * Input: u8 control ‖ u8[32] entry key ‖ the sealed chunk.
 *   control bits 0-1: policy (delta, ip, group, all), under fixed secrets
 *           bit 2: check_key
 *           bit 3: spoil the tag (else the tag is SHA-256 of the chunk, so
 *                  that mutations reach the parser behind the tag check)
 *           bits 4-5: the wanted length is the header's plain length,
 *                  1: minus one, 2: plus one, 3: the header's as well
 * The seeds (fuzz/gen_corpus.c) are real chunks sealed under these secrets
 * with every policy and compression, so mutations of their ciphertext
 * reach the decompressors.
 *
 * Checks: nothing is written past the `want` bytes of the output (guard
 * bytes: the decompressors are not instrumented); the result is 0 or
 * -EBADMSG; whatever opens, sealed again under its own key, opens again
 * with check_key to the same bytes; and with check_key, its key is the
 * entry key.
 */
#include "fuzz.h"
#include "core/vc_hash.h"
#include "core/vc_seal.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The fixed secrets of the seeds (fuzz/gen_corpus.c uses the same). */
#define FUZZ_PARCEL_SECRET 0x5a
#define FUZZ_GROUP_SECRET 0xa7

static VcSealer *sealers[4][3];   /* [policy][compression] */

static VcSealer *sealer(VcPolicy p, VcComp c)
{
        if (!sealers[p][c]) {
                uint8_t secret[VC_KEY_LEN];
                memset(secret, p == VC_POLICY_GROUP ? FUZZ_GROUP_SECRET : FUZZ_PARCEL_SECRET, sizeof secret);
                FUZZ_CHECK(vc_sealer_new(p, c, p == VC_POLICY_ALL ? NULL : secret, &sealers[p][c]) == 0);
                static const uint8_t salt[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
                vc_sealer_set_salt(sealers[p][c], salt);
        }
        return sealers[p][c];
}

static void free_sealers(void)
{
        for (int p = 0; p < 4; p++)
                for (int c = 0; c < 3; c++)
                        vc_sealer_free(sealers[p][c]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static int registered;
        if (!registered++)
                atexit(free_sealers);
        if (size < 1 + VC_KEY_LEN)
                return 0;
        vc_errclear();
        unsigned ctl = data[0];
        VcPolicy pol = (VcPolicy)(ctl & 3);
        bool check_key = ctl & 4;
        const uint8_t *key = data + 1;
        const uint8_t *sealed = data + 1 + VC_KEY_LEN;
        size_t len = size - 1 - VC_KEY_LEN;

        uint8_t tag[VC_HASH_LEN];
        vc_sha256(sealed, len, tag);
        if (ctl & 8)
                tag[ctl % VC_HASH_LEN] ^= 1;
        uint64_t want = len >= VC_SEAL_HDR ? vc_get32(sealed + 4) : 0;
        if (((ctl >> 4) & 3) == 1)
                want = want ? want - 1 : 1;
        else if (((ctl >> 4) & 3) == 2)
                want++;
        if (want > VC_CHUNK_MAX + 1)
                want = VC_CHUNK_MAX + 1;        /* rejected; no need to allocate more */

        VcComp comp = len >= VC_SEAL_HDR && (sealed[3] & 3) <= VC_COMP_ZSTD ? (VcComp)(sealed[3] & 3) : VC_COMP_NONE;
        VcSealer *s = sealer(pol, comp);
        uint8_t *out = fuzz_guarded(want);
        int r = vc_unseal(s, sealed, len, tag, key, out, want, check_key);
        fuzz_guard_check(out, want);
        fuzz_note("unseal %s want %llu check_key %d: %d %s", vc_policy_name(pol), (unsigned long long)want,
                  check_key, r, r ? vc_errmsg(r) : "");
        FUZZ_CHECK(r == 0 || r == -EBADMSG);
        if (r == 0) {
                FUZZ_CHECK(!(ctl & 8) && want <= VC_CHUNK_MAX);
                uint8_t k2[VC_KEY_LEN], tag2[VC_HASH_LEN];
                vc_chunk_key(s, out, want, k2);
                if (check_key)
                        FUZZ_CHECK(memcmp(k2, key, VC_KEY_LEN) == 0);
                size_t cap = vc_seal_bound(want), len2 = 0;
                uint8_t *sealed2 = malloc(cap), *back = malloc(want ? want : 1);
                FUZZ_CHECK(sealed2 && back);
                FUZZ_CHECK(vc_seal(s, out, want, k2, 7, sealed2, cap, &len2, tag2) == 0);
                FUZZ_CHECK(len2 <= cap);
                FUZZ_CHECK(vc_unseal(s, sealed2, len2, tag2, k2, back, want, true) == 0);
                FUZZ_CHECK(memcmp(back, out, want) == 0);
                free(sealed2);
                free(back);
        }
        free(out);
        return 0;
}
