#include "client/vc_keystore.h"
#include "core/vc_util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEY_MAGIC "vmcas-key 1\n"

int vc_keystore_dir(const uint8_t uuid[VC_UUID_LEN], char *buf, size_t len)
{
        char hex[2 * VC_UUID_LEN + 1];
        vc_hex(uuid, VC_UUID_LEN, hex);
        const char *k = getenv("VMCAS_KEYS"), *x = getenv("XDG_CONFIG_HOME"), *h = getenv("HOME");
        int n;
        if (k && *k)
                n = snprintf(buf, len, "%s/%s", k, hex);
        else if (x && *x)
                n = snprintf(buf, len, "%s/vmcas/keys/%s", x, hex);
        else if (h && *h)
                n = snprintf(buf, len, "%s/.config/vmcas/keys/%s", h, hex);
        else
                return vc_errf(-ENOENT, "no key directory: set VMCAS_KEYS or HOME");
        return (size_t)n < len ? 0 : -ENAMETOOLONG;
}

static int key_path(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name, char *buf, size_t len)
{
        char dir[PATH_MAX];
        int r = vc_keystore_dir(uuid, dir, sizeof dir);
        if (r < 0)
                return r;
        return (size_t)snprintf(buf, len, "%s/%s-%s.key", dir, kind, name) < len ? 0 : -ENAMETOOLONG;
}

int vc_key_load(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name, uint8_t key[VC_KEY_LEN])
{
        char path[PATH_MAX];
        int r = key_path(uuid, kind, name, path, sizeof path);
        if (r < 0)
                return r;
        struct stat st;
        if (stat(path, &st) < 0) {
                if (errno == ENOENT)
                        return vc_errf(-ENOKEY, "no key for %s '%s': %s does not exist (keys stay on the "
                                       "client; copy the key file from the machine that created it)",
                                       kind, name, path);
                return vc_errf(-errno, "cannot read key file %s: %s", path, strerror(errno));
        }
        if (st.st_mode & 077)
                return vc_errf(-EPERM, "key file %s is readable by others (mode %03o); run: chmod 600 %s",
                               path, (unsigned)(st.st_mode & 0777), path);
        uint8_t *buf = NULL;
        size_t n = 0;
        r = vc_read_file(path, &buf, &n, 4096);
        if (r < 0)
                return vc_errf(r, "cannot read key file %s: %s", path, strerror(-r));
        char hex[65];
        size_t m = strlen(KEY_MAGIC);
        if (n < m + 64 || memcmp(buf, KEY_MAGIC, m) != 0 || (n > m + 64 && buf[m + 64] != '\n')) {
                r = vc_errf(-EINVAL, "key file %s is malformed", path);
        } else {
                memcpy(hex, buf + m, 64);
                hex[64] = 0;
                r = vc_unhex(hex, key, VC_KEY_LEN);
                if (r < 0)
                        r = vc_errf(-EINVAL, "key file %s is malformed", path);
        }
        vc_wipe(hex, sizeof hex);
        vc_wipe(buf, n);
        free(buf);
        return r;
}

int vc_key_load_or_create(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name,
                          uint8_t key[VC_KEY_LEN], int *created)
{
        *created = 0;
        vc_errclear();
        int r = vc_key_load(uuid, kind, name, key);
        if (r != -ENOKEY)
                return r;
        vc_errclear();
        char dir[PATH_MAX], path[PATH_MAX];
        if ((r = vc_keystore_dir(uuid, dir, sizeof dir)) < 0 || (r = key_path(uuid, kind, name, path, sizeof path)) < 0)
                return r;
        if ((r = vc_mkdir_p(dir, 0700)) < 0)
                return vc_errf(r, "cannot create key directory %s: %s", dir, strerror(-r));
        if ((r = vc_random(key, VC_KEY_LEN)) < 0)
                return r;
        char text[sizeof KEY_MAGIC + 66];
        memcpy(text, KEY_MAGIC, strlen(KEY_MAGIC));
        vc_hex(key, VC_KEY_LEN, text + strlen(KEY_MAGIC));
        strcat(text, "\n");
        r = vc_write_file_atomic(path, text, strlen(text), 0600);
        vc_wipe(text, sizeof text);
        if (r < 0)
                return vc_errf(r, "cannot write key file %s: %s", path, strerror(-r));
        *created = 1;
        return 0;
}
