/* fuzz_keyfile — the client's key files: vc_key_load
 * (src/client/vc_keystore.c). Parsing is not separate from reading, so
 * the input is written as the key file of parcel "fuzz" under a scratch
 * $VMCAS_KEYS, mode 0600, and loaded; then once more with mode 0640,
 * which must be refused whatever the file holds.
 *
 * Checks: the load gives 0, -EINVAL (malformed) or -EFBIG (over 4 KiB);
 * a key it accepts is the one the file spells, after the magic line, in
 * hex; a file others can read gives -EPERM.
 */
#include "fuzz.h"
#include "client/vc_keystore.h"
#include "core/vc_util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAGIC "vmcas-key 1\n"

static const uint8_t uuid[VC_UUID_LEN] = "vmcas-fuzz-store";
static char path[PATH_MAX];

static void setup(void)
{
        char keys[PATH_MAX], dir[PATH_MAX];
        snprintf(keys, sizeof keys, "%s/keys", fuzz_tmpdir());
        FUZZ_CHECK(setenv("VMCAS_KEYS", keys, 1) == 0);
        FUZZ_CHECK(vc_keystore_dir(uuid, dir, sizeof dir) == 0);
        FUZZ_CHECK(vc_mkdir_p(dir, 0700) == 0);
        FUZZ_CHECK((size_t)snprintf(path, sizeof path, "%s/parcel-fuzz.key", dir) < sizeof path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!path[0])
                setup();
        vc_errclear();
        uint8_t key[VC_KEY_LEN];
        fuzz_write_file(path, data, size, 0600);
        int r = vc_key_load(uuid, "parcel", "fuzz", key);
        fuzz_note("key_load %zu bytes: %d", size, r);
        FUZZ_CHECK(r == 0 || r == -EINVAL || r == -EFBIG);
        if (r == 0) {
                size_t m = strlen(MAGIC);
                FUZZ_CHECK(size >= m + 64 && memcmp(data, MAGIC, m) == 0);
                char hex[65];
                vc_hex(key, VC_KEY_LEN, hex);
                for (size_t i = 0; i < 64; i++)
                        FUZZ_CHECK(tolower(data[m + i]) == hex[i]);
        }
        vc_errclear();
        FUZZ_CHECK(chmod(path, 0640) == 0);
        FUZZ_CHECK(vc_key_load(uuid, "parcel", "fuzz", key) == -EPERM);
        return 0;
}
