/* fuzz_users — the users file of `vmcas serve`: vc_users_load
 * (src/server/vc_users.c). Parsing is not separate from reading, so the
 * input is written as a scratch users file, mode 0600, and loaded.
 *
 * Checks: the load gives 0, -EBADMSG or -EFBIG (over 4 MiB); the users it
 * accepts have valid, distinct names, and each is found by name; a
 * token's hash never matches a user unless it is that user's.
 */
#include "fuzz.h"
#include "server/vc_users.h"
#include "core/vc_hash.h"
#include "core/vc_util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static char path[PATH_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!path[0])
                snprintf(path, sizeof path, "%s/users", fuzz_tmpdir());
        vc_errclear();
        fuzz_write_file(path, data, size, 0600);
        VcUsers u;
        int r = vc_users_load(path, &u);
        fuzz_note("users_load %zu bytes: %d %s", size, r, r ? vc_errmsg(r) : "");
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EFBIG);
        if (r < 0) {
                FUZZ_CHECK(u.n == 0 && u.v == NULL);
                return 0;
        }
        for (size_t i = 0; i < u.n; i++) {
                FUZZ_CHECK(vc_name_valid(u.v[i].name));
                FUZZ_CHECK(vc_users_find(&u, u.v[i].name) == &u.v[i]);
        }
        /* a token nobody has (all zero bytes, unless a user's hash is its) */
        static const char zero_tok[VC_TOKEN_HEX + 1] =
                "0000000000000000000000000000000000000000000000000000000000000000";
        uint8_t tok[VC_TOKEN_LEN] = { 0 }, h[32];
        vc_sha256(tok, sizeof tok, h);
        const VcUser *who = vc_users_check(&u, zero_tok);
        FUZZ_CHECK(!who || memcmp(who->hash, h, 32) == 0);
        FUZZ_CHECK(vc_users_check(&u, "not a token") == NULL);
        vc_users_clear(&u);
        return 0;
}
