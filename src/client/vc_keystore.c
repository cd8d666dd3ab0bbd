#include "client/vc_keystore.h"
#include "core/vc_hash.h"
#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAGIC "vmcas-key 1\n"
#define KEY_TEXT_LEN (sizeof KEY_MAGIC - 1 + 2 * VC_KEY_LEN + 1)

/* ---- paths ---------------------------------------------------------------- */

/* The key store root, without trailing slashes. */
static int keystore_root(char *buf, size_t len)
{
        const char *k = getenv("VMCAS_KEYS"), *x = getenv("XDG_CONFIG_HOME"), *h = getenv("HOME");
        int n;
        if (k && *k)
                n = snprintf(buf, len, "%s", k);
        else if (x && *x)
                n = snprintf(buf, len, "%s/vmcas/keys", x);
        else if (h && *h)
                n = snprintf(buf, len, "%s/.config/vmcas/keys", h);
        else
                return vc_errf(-ENOENT, "no key directory: set VMCAS_KEYS or HOME");
        if (n < 0 || (size_t)n >= len)
                return vc_errf(-ENAMETOOLONG, "the key store path is too long");
        while (n > 1 && buf[n - 1] == '/')
                buf[--n] = 0;
        return 0;
}

int vc_keystore_dir(const uint8_t uuid[VC_UUID_LEN], char *buf, size_t len)
{
        char root[PATH_MAX], hex[2 * VC_UUID_LEN + 1];
        int r = keystore_root(root, sizeof root);
        if (r < 0)
                return r;
        vc_hex(uuid, VC_UUID_LEN, hex);
        size_t rl = strlen(root), need = rl + 1 + strlen(hex) + 1;
        if (need > len)
                return -ENAMETOOLONG;
        /* built piece by piece: the lengths are checked above */
        memcpy(buf, root, rl);
        if (strcmp(root, "/") != 0)
                buf[rl++] = '/';
        memcpy(buf + rl, hex, strlen(hex) + 1);
        return 0;
}

static int key_name(const char *kind, const char *name, char *buf, size_t len)
{
        if (strchr(name, '/') || !*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return vc_errf(-EINVAL, "invalid %s name '%s'", kind, name);
        return (size_t)snprintf(buf, len, "%s-%s.key", kind, name) < len ? 0 : -ENAMETOOLONG;
}

/* ---- checks --------------------------------------------------------------- */

/* "uid 65534 (nobody)" */
static const char *who(uid_t uid, char *buf, size_t len)
{
        struct passwd pw, *res = NULL;
        char tmp[1024];
        if (getpwuid_r(uid, &pw, tmp, sizeof tmp, &res) == 0 && res)
                snprintf(buf, len, "uid %u (%s)", (unsigned)uid, res->pw_name);
        else
                snprintf(buf, len, "uid %u", (unsigned)uid);
        return buf;
}

static bool owner_ok(const struct stat *st, bool root_ok)
{
        return st->st_uid == geteuid() || (root_ok && st->st_uid == 0);
}

static int refuse_owner(const char *what, const char *path, const struct stat *st)
{
        char a[128], b[128];
        return vc_errf(-EPERM, "%s %s is owned by %s, and you are %s: whoever owns it can plant, swap or "
                       "read keys, so vmcas will not use it; if it is yours, run: chown %u %s",
                       what, path, who(st->st_uid, a, sizeof a), who(geteuid(), b, sizeof b), (unsigned)geteuid(),
                       path);
}

static const char *access_words(mode_t m)
{
        bool rd = m & 044, wr = m & 022;
        return rd && wr ? "readable and writable" : rd ? "readable" : wr ? "writable" : "usable";
}

enum { DIR_ABOVE, DIR_ROOT, DIR_STORE };

static int check_dir(int level, const char *path, const struct stat *st)
{
        mode_t m = st->st_mode & 07777;
        if (!S_ISDIR(st->st_mode))
                return vc_errf(-ENOTDIR, "%s %s is not a directory", level == DIR_ABOVE ? "path" : "key store",
                               path);
        if (level == DIR_ABOVE) {
                if (!owner_ok(st, true)) {
                        char a[128];
                        return vc_errf(-EPERM, "directory %s, which holds the key store, is owned by %s, neither "
                                       "you nor root: its owner could replace the key store; set VMCAS_KEYS to a "
                                       "directory of yours", path, who(st->st_uid, a, sizeof a));
                }
                if ((m & S_IWOTH) && !(m & S_ISVTX))
                        return vc_errf(-EPERM, "directory %s, which holds the key store, is writable by everyone "
                                       "(mode %04o) and not sticky: anyone could replace the key store; run: "
                                       "chmod o-w %s (or set VMCAS_KEYS to a directory of yours)",
                                       path, (unsigned)m, path);
                return 0;
        }
        const char *what = level == DIR_ROOT ? "key store" : "key directory";
        if (!owner_ok(st, true))
                return refuse_owner(what, path, st);
        if (level == DIR_ROOT && (m & 022))
                return vc_errf(-EPERM, "%s %s is writable by others (mode %04o): they could plant or swap keys; "
                               "run: chmod go-w %s", what, path, (unsigned)m, path);
        if (level == DIR_STORE && (m & 077))
                return vc_errf(-EPERM, "%s %s is %s by others (mode %04o): they could plant, swap or see keys; "
                               "run: chmod 700 %s", what, path, access_words(m & 077), (unsigned)m, path);
        return 0;
}

static int refuse_link(const char *what, const char *path)
{
        char target[PATH_MAX];
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0)
                n = 0;
        target[n] = 0;
        return vc_errf(-EPERM, "%s %s is a symbolic link (to %s): vmcas follows no link in the key store, "
                       "since a link can point it at a key someone else made or can read; replace the link by the "
                       "%s itself (rm %s, then move or copy %s there)", what, path, n ? target : "?",
                       strcmp(what, "key file") == 0 ? "file" : "directory", path, n ? target : "its target");
}

/* Checks the directories above the key store root, realroot (no links). */
static int check_above(const char *realroot)
{
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s", realroot);
        for (char *s = strrchr(p, '/'); s; s = strrchr(p, '/')) {
                if (s == p) {
                        if (p[1] == 0)
                                break;    /* the root itself was "/" */
                        p[1] = 0;
                } else
                        *s = 0;
                struct stat st;
                if (stat(p, &st) < 0)
                        return vc_errf(-errno, "cannot check %s, which holds the key store: %s", p, strerror(errno));
                int r = check_dir(DIR_ABOVE, p, &st);
                if (r < 0)
                        return r;
                if (strcmp(p, "/") == 0)
                        break;
        }
        return 0;
}

/* Opens (with create, makes) the key directory of store uuid after the
 * checks of the whole chain; sets *fd and dir (the path the user sees). */
static int keydir_open(const uint8_t uuid[VC_UUID_LEN], bool create, int *fd, char *dir, size_t dirlen)
{
        char root[PATH_MAX], real[PATH_MAX], hex[2 * VC_UUID_LEN + 1];
        struct stat st;
        bool made_root = false, made_dir = false;
        int r = keystore_root(root, sizeof root);
        if (r < 0)
                return r;
        vc_hex(uuid, VC_UUID_LEN, hex);
        if ((size_t)snprintf(dir, dirlen, "%s%s%s", root, strcmp(root, "/") ? "/" : "", hex) >= dirlen)
                return -ENAMETOOLONG;
        if (lstat(root, &st) < 0) {
                if (errno != ENOENT)
                        return vc_errf(-errno, "cannot use key store %s: %s", root, strerror(errno));
                if (!create)
                        return -ENOENT;
                char parent[PATH_MAX];
                snprintf(parent, sizeof parent, "%s", root);
                char *s = strrchr(parent, '/');
                if (s && s != parent) {
                        *s = 0;
                        if ((r = vc_mkdir_p(parent, 0700)) < 0)
                                return vc_errf(r, "cannot make %s for the key store: %s", parent, strerror(-r));
                }
                if (mkdir(root, 0700) == 0)
                        made_root = true;
                else if (errno != EEXIST)
                        return vc_errf(-errno, "cannot make key store %s: %s", root, strerror(errno));
                if (lstat(root, &st) < 0)
                        return vc_errf(-errno, "cannot use key store %s: %s", root, strerror(errno));
        }
        if (S_ISLNK(st.st_mode))
                return refuse_link("key store", root);
        if (!S_ISDIR(st.st_mode))
                return check_dir(DIR_ROOT, root, &st);
        if (!realpath(root, real))
                return vc_errf(-errno, "cannot use key store %s: %s", root, strerror(errno));
        if ((r = check_above(real)) < 0)
                return r;
        int rfd = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (rfd < 0) {
                if (errno == ELOOP)
                        return refuse_link("key store", root);
                return vc_errf(-errno, "cannot open key store %s: %s", root, strerror(errno));
        }
        if (made_root)
                (void)fchmod(rfd, 0700);
        if (fstat(rfd, &st) < 0 || (r = check_dir(DIR_ROOT, root, &st)) < 0) {
                r = r < 0 ? r : -errno;
                close(rfd);
                return r;
        }
        if (create) {
                if (mkdirat(rfd, hex, 0700) == 0) {
                        made_dir = true;
                        (void)fsync(rfd);
                } else if (errno != EEXIST) {
                        r = vc_errf(-errno, "cannot make key directory %s: %s", dir, strerror(errno));
                        close(rfd);
                        return r;
                }
        }
        if (fstatat(rfd, hex, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                r = errno == ENOENT ? -ENOENT : vc_errf(-errno, "cannot use key directory %s: %s", dir, strerror(errno));
                close(rfd);
                return r;
        }
        if (S_ISLNK(st.st_mode)) {
                close(rfd);
                return refuse_link("key directory", dir);
        }
        int dfd = openat(rfd, hex, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        r = dfd < 0 ? -errno : 0;
        close(rfd);
        if (dfd < 0)
                return r == -ELOOP ? refuse_link("key directory", dir)
                                   : vc_errf(r, "cannot open key directory %s: %s", dir, strerror(-r));
        if (made_dir)
                (void)fchmod(dfd, 0700);    /* whatever the umask */
        if (fstat(dfd, &st) < 0 || (r = check_dir(DIR_STORE, dir, &st)) < 0) {
                r = r < 0 ? r : -errno;
                close(dfd);
                return r;
        }
        *fd = dfd;
        return 0;
}

int vc_keystore_mkdir(const uint8_t uuid[VC_UUID_LEN], char *buf, size_t len)
{
        char dir[PATH_MAX];
        int fd, r = keydir_open(uuid, true, &fd, dir, sizeof dir);
        if (r < 0)
                return r;
        close(fd);
        if (buf && (size_t)snprintf(buf, len, "%s", dir) >= len)
                return -ENAMETOOLONG;
        return 0;
}

/* ---- key files ------------------------------------------------------------ */

static int no_key(const char *kind, const char *name, const char *dir, const char *fname)
{
        return vc_errf(-ENOKEY, "no key for %s '%s': %s/%s does not exist (keys stay on the client; copy the "
                       "key file from the machine that created it)", kind, name, dir, fname);
}

/* Reads the key file fname of directory dfd after its checks. */
static int key_read(int dfd, const char *dir, const char *fname, const char *kind, const char *name,
                    uint8_t key[VC_KEY_LEN])
{
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, fname);
        int fd = openat(dfd, fname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return no_key(kind, name, dir, fname);
                if (errno == ELOOP)
                        return refuse_link("key file", path);
                return vc_errf(-errno, "cannot read key file %s: %s", path, strerror(errno));
        }
        struct stat st;
        int r = 0;
        mode_t m;
        if (fstat(fd, &st) < 0)
                r = vc_errf(-errno, "cannot read key file %s: %s", path, strerror(errno));
        else if (!S_ISREG(st.st_mode))
                r = vc_errf(-EPERM, "key file %s is not a regular file", path);
        else if (!owner_ok(&st, false))
                r = refuse_owner("key file", path, &st);
        else if ((m = st.st_mode & 07777) & 077)
                r = vc_errf(-EPERM, "key file %s is %s by others (mode %04o): vmcas uses only a key that only you "
                            "can read and write; if no one else can have read or changed it, run: chmod 600 %s",
                            path, access_words(m & 077), (unsigned)m, path);
        else if (st.st_size > 4096)
                r = vc_errf(-EINVAL, "key file %s is malformed", path);
        if (r < 0) {
                close(fd);
                return r;
        }
        uint8_t buf[4097];
        size_t n = (size_t)st.st_size;
        r = vc_pread_full(fd, buf, n, 0);
        close(fd);
        if (r < 0) {
                vc_wipe(buf, sizeof buf);
                return vc_errf(r, "cannot read key file %s: %s", path, r == -EIO ? "it was cut short" : strerror(-r));
        }
        char hex[2 * VC_KEY_LEN + 1];
        size_t mlen = strlen(KEY_MAGIC);
        if (n < mlen + 64 || memcmp(buf, KEY_MAGIC, mlen) != 0 || (n > mlen + 64 && buf[mlen + 64] != '\n')) {
                r = vc_errf(-EINVAL, "key file %s is malformed", path);
        } else {
                memcpy(hex, buf + mlen, 64);
                hex[64] = 0;
                if (vc_unhex(hex, key, VC_KEY_LEN) < 0)
                        r = vc_errf(-EINVAL, "key file %s is malformed", path);
        }
        vc_wipe(hex, sizeof hex);
        vc_wipe(buf, sizeof buf);
        return r;
}

int vc_key_load(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name, uint8_t key[VC_KEY_LEN])
{
        char dir[PATH_MAX] = "", fname[NAME_MAX + 1];
        int dfd, r = key_name(kind, name, fname, sizeof fname);
        if (r < 0)
                return r;
        if ((r = keydir_open(uuid, false, &dfd, dir, sizeof dir)) < 0)
                return r == -ENOENT ? no_key(kind, name, dir, fname) : r;
        r = key_read(dfd, dir, fname, kind, name, key);
        close(dfd);
        return r;
}

static int refuse_existing(const char *kind, const char *name, const char *dir, const char *fname)
{
        return vc_errf(-EEXIST, "a key file for %s '%s' already exists in %s%s: vmcas never adopts a key it did "
                       "not make, since whoever made it could read the %s; if it is yours, from an earlier store "
                       "or a parcel create that did not finish, move it away (mv %s/%s %s/%s.old) and run parcel "
                       "create again", kind, name, dir,
                       strcmp(kind, "group") == 0 ? ", but this store has no parcel of that group" : "",
                       strcmp(kind, "group") == 0 ? "group's parcels" : "parcel", dir, fname, dir, fname);
}

int vc_key_create(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name, uint8_t key[VC_KEY_LEN])
{
        char dir[PATH_MAX], fname[NAME_MAX + 1];
        int dfd, r = key_name(kind, name, fname, sizeof fname);
        if (r < 0)
                return r;
        if ((r = keydir_open(uuid, true, &dfd, dir, sizeof dir)) < 0)
                return r;
        int fd = openat(dfd, fname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = errno == EEXIST ? refuse_existing(kind, name, dir, fname)
                                    : vc_errf(-errno, "cannot create key file %s/%s: %s", dir, fname, strerror(errno));
                close(dfd);
                return r;
        }
        char text[KEY_TEXT_LEN + 1];
        if ((r = vc_random(key, VC_KEY_LEN)) == 0) {
                memcpy(text, KEY_MAGIC, strlen(KEY_MAGIC));
                vc_hex(key, VC_KEY_LEN, text + strlen(KEY_MAGIC));
                text[KEY_TEXT_LEN - 1] = '\n';
                r = vc_write_full(fd, text, KEY_TEXT_LEN);
                vc_wipe(text, sizeof text);
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && fsync(dfd) < 0)
                r = -errno;
        if (r < 0) {
                unlinkat(dfd, fname, 0);    /* ours: O_EXCL made it */
                (void)fsync(dfd);
                vc_wipe(key, VC_KEY_LEN);
                r = vc_errf(r, "cannot write key file %s/%s: %s", dir, fname, strerror(-r));
        }
        close(dfd);
        return r;
}

void vc_key_check(const uint8_t secret[VC_KEY_LEN], uint8_t out[VC_KEY_CHECK_LEN])
{
        uint8_t h[VC_KEY_LEN];
        vc_derive(secret, "check", h);
        memcpy(out, h, VC_KEY_CHECK_LEN);
        vc_wipe(h, sizeof h);
}

int vc_key_create_or_load_group(const uint8_t uuid[VC_UUID_LEN], const char *group,
                                const uint8_t group_check[VC_KEY_CHECK_LEN], uint8_t key[VC_KEY_LEN],
                                int *created)
{
        *created = 0;
        if (!group_check) {
                int r = vc_key_create(uuid, "group", group, key);
                if (r == 0)
                        *created = 1;
                return r;
        }
        int r = vc_key_load(uuid, "group", group, key);
        if (r == -ENOKEY) {
                char dir[PATH_MAX];
                vc_keystore_dir(uuid, dir, sizeof dir);
                return vc_errf_replace(-ENOKEY, "group '%s' already has parcels in this store, but its key is not "
                                       "on this machine: copy %s/group-%s.key from the machine that made the group",
                                       group, dir, group);
        }
        if (r < 0)
                return r;
        uint8_t chk[VC_KEY_CHECK_LEN];
        vc_key_check(key, chk);
        if (!vc_hash_eq(chk, group_check, VC_KEY_CHECK_LEN)) {
                vc_wipe(key, VC_KEY_LEN);
                return vc_errf(-EKEYREJECTED, "the key file of group '%s' holds the wrong key (not the key of the "
                               "group's parcels in this store)", group);
        }
        return 0;
}

int vc_key_discard(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name,
                   const uint8_t key[VC_KEY_LEN])
{
        char dir[PATH_MAX], fname[NAME_MAX + 1];
        uint8_t have[VC_KEY_LEN];
        int dfd, r = key_name(kind, name, fname, sizeof fname);
        if (r < 0)
                return r;
        if ((r = keydir_open(uuid, false, &dfd, dir, sizeof dir)) < 0)
                return r == -ENOENT ? 0 : r;
        r = key_read(dfd, dir, fname, kind, name, have);
        if (r == -ENOKEY) {
                vc_errclear();
                r = 0;
        } else if (r == 0) {
                if (!vc_hash_eq(have, key, VC_KEY_LEN))
                        r = vc_errf(-EEXIST, "key file %s/%s holds another key: left alone", dir, fname);
                else if (unlinkat(dfd, fname, 0) < 0 || fsync(dfd) < 0)
                        r = vc_errf(-errno, "cannot remove key file %s/%s: %s", dir, fname, strerror(errno));
        }
        vc_wipe(have, sizeof have);
        close(dfd);
        return r;
}

int vc_key_load_or_create(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name,
                          uint8_t key[VC_KEY_LEN], int *created)
{
        *created = 0;
        if (strcmp(kind, "group") != 0) {
                int r = vc_key_create(uuid, kind, name, key);
                if (r == 0)
                        *created = 1;
                return r;
        }
        for (int tries = 0; tries < 2; tries++) {
                int r = vc_key_load(uuid, kind, name, key);
                if (r != -ENOKEY)
                        return r;
                vc_errclear();
                r = vc_key_create(uuid, kind, name, key);
                if (r != -EEXIST) {
                        *created = r == 0;
                        return r;
                }
                vc_errclear();     /* made meanwhile by another parcel create: load it */
        }
        return vc_errf(-EAGAIN, "the key of group '%s' changed while it was read", name);
}
