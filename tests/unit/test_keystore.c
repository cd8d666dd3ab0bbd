/* Unit tests of client/vc_keystore: a key store that cannot be planted,
 * redirected or read by others. Each refusal is checked for its code and
 * for a message that says why and what to run. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "client/vc_keystore.h"
#include "core/vc_util.h"

/* snprintf into a path buffer, failing the test on truncation */
#define PATHF(buf, len, ...) assert_true((size_t)snprintf(buf, len, __VA_ARGS__) < (size_t)(len))

static const uint8_t uuid[VC_UUID_LEN] = { 0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 };
static char top[PATH_MAX], root[PATH_MAX], dir[PATH_MAX];
static int serial;

/* A fresh key store root for each test: TOP/ks-N/keys. */
static int setup(void **state)
{
        (void)state;
        const char *t = getenv("TMPDIR");
        PATHF(top, sizeof top, "%s/ks-%d-%d", t && *t ? t : "/tmp", (int)getpid(), serial++);
        mkdir(top, 0755);
        PATHF(root, sizeof root, "%s/keys", top);
        setenv("VMCAS_KEYS", root, 1);
        assert_int_equal(vc_keystore_dir(uuid, dir, sizeof dir), 0);
        vc_errclear();
        return 0;
}

static const char *at(const char *name, char *buf)
{
        PATHF(buf, PATH_MAX, "%s/%s", dir, name);
        return buf;
}

static void write_key_file(const char *path, mode_t mode)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs("vmcas-key 1\n0101010101010101010101010101010101010101010101010101010101010101\n", f);
        fclose(f);
        assert_int_equal(chmod(path, mode), 0);
}

static void assert_msg(int code, const char *want)
{
        const char *m = vc_errmsg(code);
        if (!strstr(m, want))
                fail_msg("message '%s' lacks '%s'", m, want);
}

static mode_t mode_of(const char *path)
{
        struct stat st;
        assert_int_equal(lstat(path, &st), 0);
        return st.st_mode & 07777;
}

static uid_t nobody(void)
{
        struct passwd *pw = getpwnam("nobody");
        return pw ? pw->pw_uid : 65534;
}

/* a parcel key made in the store's directory, so that the directories exist */
static void make_parcel(const char *name, uint8_t key[VC_KEY_LEN])
{
        assert_int_equal(vc_key_create(uuid, "parcel", name, key), 0);
}

static void test_create_load(void **state)
{
        (void)state;
        char p[PATH_MAX];
        uint8_t k[VC_KEY_LEN], l[VC_KEY_LEN];
        mode_t old = umask(0);            /* no matter the umask */
        make_parcel("a", k);
        umask(old);
        assert_int_equal(mode_of(root), 0700);
        assert_int_equal(mode_of(dir), 0700);
        assert_int_equal(mode_of(at("parcel-a.key", p)), 0600);
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), 0);
        assert_memory_equal(k, l, VC_KEY_LEN);
        /* the format: two lines */
        char text[200] = "", hex[65];
        FILE *f = fopen(p, "r");
        assert_non_null(f);
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        vc_hex(k, VC_KEY_LEN, hex);
        assert_int_equal(n, 12 + 65);
        assert_memory_equal(text, "vmcas-key 1\n", 12);
        assert_memory_equal(text + 12, hex, 64);
        /* two parcels, two keys */
        make_parcel("b", l);
        assert_memory_not_equal(k, l, VC_KEY_LEN);
        /* the store's directory made by vc_keystore_mkdir, with a default root */
        char d2[PATH_MAX];
        assert_int_equal(vc_keystore_mkdir(uuid, d2, sizeof d2), 0);
        assert_string_equal(d2, dir);
        /* a missing key */
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "nope", l), -ENOKEY);
        assert_msg(-ENOKEY, "no key for parcel 'nope'");
        assert_msg(-ENOKEY, "copy the key file");
        /* a missing key store */
        setenv("VMCAS_KEYS", "/nonexistent/keys", 1);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -ENOKEY);
        assert_msg(-ENOKEY, "/nonexistent/keys/");
        vc_errclear();
}

static void test_never_adopts(void **state)
{
        (void)state;
        char p[PATH_MAX], q[PATH_MAX];
        uint8_t k[VC_KEY_LEN], l[VC_KEY_LEN];
        make_parcel("a", k);
        /* a second create of the same parcel */
        vc_errclear();
        assert_int_equal(vc_key_create(uuid, "parcel", "a", l), -EEXIST);
        assert_msg(-EEXIST, "a key file for parcel 'a' already exists in");
        assert_msg(-EEXIST, "vmcas never adopts a key it did not make");
        assert_msg(-EEXIST, "mv ");
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), 0);
        assert_memory_equal(k, l, VC_KEY_LEN);
        /* a planted key file, as safe-looking as can be */
        write_key_file(at("parcel-planted.key", p), 0600);
        vc_errclear();
        assert_int_equal(vc_key_create(uuid, "parcel", "planted", l), -EEXIST);
        assert_msg(-EEXIST, "never adopts");
        assert_int_equal(vc_key_load(uuid, "parcel", "planted", l), 0);
        uint8_t ones[VC_KEY_LEN];
        memset(ones, 1, sizeof ones);
        assert_memory_equal(l, ones, VC_KEY_LEN);     /* left as it was */
        /* a planted link, dangling: nothing is written where it points */
        PATHF(q, sizeof q, "%s/elsewhere.key", top);
        assert_int_equal(symlink(q, at("parcel-link.key", p)), 0);
        vc_errclear();
        assert_int_equal(vc_key_create(uuid, "parcel", "link", l), -EEXIST);
        assert_int_equal(access(q, F_OK), -1);
        vc_errclear();
}

static void test_key_file_checks(void **state)
{
        (void)state;
        char p[PATH_MAX], q[PATH_MAX];
        uint8_t k[VC_KEY_LEN], l[VC_KEY_LEN];
        make_parcel("a", k);
        at("parcel-a.key", p);
        struct { mode_t mode; const char *words; } modes[] = {
                { 0640, "is readable by others (mode 0640)" }, { 0604, "is readable by others (mode 0604)" },
                { 0620, "is writable by others (mode 0620)" }, { 0602, "is writable by others (mode 0602)" },
                { 0666, "is readable and writable by others (mode 0666)" }, { 0610, "(mode 0610)" },
        };
        for (size_t i = 0; i < VC_ARRAY_SIZE(modes); i++) {
                chmod(p, modes[i].mode);
                vc_errclear();
                assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -EPERM);
                assert_msg(-EPERM, modes[i].words);
                assert_msg(-EPERM, "run: chmod 600 ");
        }
        chmod(p, 0400);                  /* read-only for the user is fine */
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), 0);
        chmod(p, 0600);
        /* a symbolic link to a good key file */
        assert_int_equal(symlink("parcel-a.key", at("parcel-l.key", q)), 0);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "l", l), -EPERM);
        assert_msg(-EPERM, "is a symbolic link (to parcel-a.key)");
        assert_msg(-EPERM, "replace the link by the file itself");
        /* a FIFO: refused at once, never waited on */
        assert_int_equal(mkfifo(at("parcel-f.key", q), 0600), 0);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "f", l), -EPERM);
        assert_msg(-EPERM, "not a regular file");
        /* a directory */
        assert_int_equal(mkdir(at("parcel-d.key", q), 0700), 0);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "d", l), -EPERM);
        /* malformed */
        FILE *f = fopen(at("parcel-m.key", q), "w");
        fputs("vmcas-key 1\nnot hex\n", f);
        fclose(f);
        chmod(q, 0600);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "m", l), -EINVAL);
        assert_msg(-EINVAL, "malformed");
        /* a name that would leave the directory */
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "../x", l), -EINVAL);
        assert_int_equal(vc_key_create(uuid, "parcel", "../x", l), -EINVAL);
        /* owned by someone else */
        if (geteuid() != 0) {
                print_message("not root: the test of a key file owned by someone else is skipped\n");
                return;
        }
        assert_int_equal(chown(p, nobody(), (gid_t)-1), 0);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -EPERM);
        assert_msg(-EPERM, "is owned by uid 65534");
        assert_msg(-EPERM, "run: chown 0 ");
        vc_errclear();
}

static void test_dir_checks(void **state)
{
        (void)state;
        char p[PATH_MAX], real[PATH_MAX];
        uint8_t k[VC_KEY_LEN], l[VC_KEY_LEN];
        make_parcel("a", k);
        /* the store's directory must be 0700 */
        mode_t bad[] = { 0755, 0750, 0710, 0701, 0770, 0707, 0777 };
        for (size_t i = 0; i < VC_ARRAY_SIZE(bad); i++) {
                chmod(dir, bad[i]);
                vc_errclear();
                assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -EPERM);
                assert_msg(-EPERM, "key directory ");
                assert_msg(-EPERM, "by others");
                assert_msg(-EPERM, "run: chmod 700 ");
                vc_errclear();
                assert_int_equal(vc_key_create(uuid, "parcel", "new", l), -EPERM);
                assert_int_equal(access(at("parcel-new.key", p), F_OK), -1);
                vc_errclear();
                assert_int_equal(vc_keystore_mkdir(uuid, NULL, 0), -EPERM);
        }
        chmod(dir, 0700);
        /* the root may be readable, not writable by others */
        chmod(root, 0755);
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), 0);
        mode_t badroot[] = { 0775, 0757, 0777, 01777 };
        for (size_t i = 0; i < VC_ARRAY_SIZE(badroot); i++) {
                chmod(root, badroot[i]);
                vc_errclear();
                assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -EPERM);
                assert_msg(-EPERM, "key store ");
                assert_msg(-EPERM, "is writable by others");
                assert_msg(-EPERM, "run: chmod go-w ");
                vc_errclear();
                assert_int_equal(vc_key_create(uuid, "parcel", "new", l), -EPERM);
        }
        chmod(root, 0700);
        /* the store's directory as a symbolic link */
        PATHF(real, sizeof real, "%s/real", top);
        assert_int_equal(rename(dir, real), 0);
        assert_int_equal(symlink(real, dir), 0);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -EPERM);
        assert_msg(-EPERM, "is a symbolic link");
        assert_msg(-EPERM, "replace the link by the directory itself");
        vc_errclear();
        assert_int_equal(vc_key_create(uuid, "parcel", "new", l), -EPERM);
        assert_int_equal(access(at("parcel-new.key", p), F_OK), -1);
        unlink(dir);
        assert_int_equal(rename(real, dir), 0);
        /* the root as a symbolic link */
        assert_int_equal(rename(root, real), 0);
        assert_int_equal(symlink(real, root), 0);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -EPERM);
        assert_msg(-EPERM, "key store ");
        assert_msg(-EPERM, "is a symbolic link");
        vc_errclear();
        assert_int_equal(vc_key_create(uuid, "parcel", "new", l), -EPERM);
        unlink(root);
        assert_int_equal(rename(real, root), 0);
        /* but a link above the root is resolved and its target checked */
        char alias[PATH_MAX], viaalias[PATH_MAX];
        PATHF(alias, sizeof alias, "%s-alias", top);
        assert_int_equal(symlink(top, alias), 0);
        PATHF(viaalias, sizeof viaalias, "%s/keys", alias);
        setenv("VMCAS_KEYS", viaalias, 1);
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), 0);
        setenv("VMCAS_KEYS", root, 1);
        unlink(alias);
        /* a directory above the root writable by everyone, not sticky */
        chmod(top, 0777);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -EPERM);
        assert_msg(-EPERM, "which holds the key store, is writable by everyone");
        assert_msg(-EPERM, "chmod o-w ");
        chmod(top, 01777);              /* sticky, like /tmp: fine */
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), 0);
        chmod(top, 0775);               /* group-writable: not checked above the root */
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), 0);
        chmod(top, 0755);
        if (geteuid() != 0) {
                print_message("not root: the tests of directories owned by someone else are skipped\n");
                return;
        }
        assert_int_equal(chown(dir, nobody(), (gid_t)-1), 0);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -EPERM);
        assert_msg(-EPERM, "key directory ");
        assert_msg(-EPERM, "is owned by uid 65534");
        assert_msg(-EPERM, "run: chown 0 ");
        chown(dir, 0, (gid_t)-1);
        assert_int_equal(chown(root, nobody(), (gid_t)-1), 0);
        vc_errclear();
        assert_int_equal(vc_key_create(uuid, "parcel", "new", l), -EPERM);
        assert_msg(-EPERM, "is owned by uid 65534");
        chown(root, 0, (gid_t)-1);
        assert_int_equal(chown(top, nobody(), (gid_t)-1), 0);
        vc_errclear();
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), -EPERM);
        assert_msg(-EPERM, "which holds the key store, is owned by uid 65534");
        assert_msg(-EPERM, "set VMCAS_KEYS");
        chown(top, 0, (gid_t)-1);
        assert_int_equal(vc_key_load(uuid, "parcel", "a", l), 0);
        vc_errclear();
}

static void test_mkdir(void **state)
{
        (void)state;
        /* missing parents are made too, each 0700 */
        char deep[PATH_MAX], d[PATH_MAX];
        PATHF(deep, sizeof deep, "%s/x/y/keys", top);
        setenv("VMCAS_KEYS", deep, 1);
        mode_t old = umask(0);
        assert_int_equal(vc_keystore_mkdir(uuid, d, sizeof d), 0);
        umask(old);
        assert_int_equal(mode_of(deep), 0700);
        assert_int_equal(mode_of(d), 0700);
        PATHF(deep, sizeof deep, "%s/x", top);
        assert_int_equal(mode_of(deep), 0700);
        /* again: fine */
        assert_int_equal(vc_keystore_mkdir(uuid, NULL, 0), 0);
        /* with a umask that takes the user's bits: still usable */
        setenv("VMCAS_KEYS", root, 1);
        old = umask(0277);
        assert_int_equal(vc_keystore_mkdir(uuid, NULL, 0), 0);
        umask(old);
        assert_int_equal(mode_of(root), 0700);
        assert_int_equal(mode_of(dir), 0700);
        /* a trailing slash is the same root */
        char slash[PATH_MAX];
        PATHF(slash, sizeof slash, "%s//", root);
        setenv("VMCAS_KEYS", slash, 1);
        assert_int_equal(vc_keystore_mkdir(uuid, d, sizeof d), 0);
        assert_string_equal(d, dir);
        /* the root as a file */
        PATHF(deep, sizeof deep, "%s/file", top);
        close(open(deep, O_CREAT | O_WRONLY, 0600));
        setenv("VMCAS_KEYS", deep, 1);
        vc_errclear();
        assert_int_equal(vc_keystore_mkdir(uuid, NULL, 0), -ENOTDIR);
        assert_msg(-ENOTDIR, "not a directory");
        vc_errclear();
}

static void test_group(void **state)
{
        (void)state;
        char p[PATH_MAX];
        uint8_t k[VC_KEY_LEN], l[VC_KEY_LEN], chk[VC_KEY_CHECK_LEN], want[VC_KEY_LEN];
        int created = -1;
        /* the first parcel of a group makes the group's key */
        assert_int_equal(vc_key_create_or_load_group(uuid, "staff", NULL, k, &created), 0);
        assert_int_equal(created, 1);
        assert_int_equal(mode_of(at("group-staff.key", p)), 0600);
        vc_key_check(k, chk);
        vc_derive(k, "check", want);
        assert_memory_equal(chk, want, VC_KEY_CHECK_LEN);
        /* the next ones load it, checked against the group's parcels */
        assert_int_equal(vc_key_create_or_load_group(uuid, "staff", chk, l, &created), 0);
        assert_int_equal(created, 0);
        assert_memory_equal(k, l, VC_KEY_LEN);
        /* a group key file while the store has no parcel of the group: planted */
        vc_errclear();
        assert_int_equal(vc_key_create_or_load_group(uuid, "staff", NULL, l, &created), -EEXIST);
        assert_msg(-EEXIST, "a key file for group 'staff' already exists");
        assert_msg(-EEXIST, "this store has no parcel of that group");
        assert_msg(-EEXIST, "never adopts");
        assert_int_equal(created, 0);
        /* the wrong key for the group's parcels */
        uint8_t other[VC_KEY_CHECK_LEN];
        memcpy(other, chk, sizeof other);
        other[0] ^= 1;
        vc_errclear();
        assert_int_equal(vc_key_create_or_load_group(uuid, "staff", other, l, &created), -EKEYREJECTED);
        assert_msg(-EKEYREJECTED, "the key file of group 'staff' holds the wrong key");
        /* the group's key missing on this machine */
        vc_errclear();
        assert_int_equal(vc_key_create_or_load_group(uuid, "gone", chk, l, &created), -ENOKEY);
        assert_msg(-ENOKEY, "group 'gone' already has parcels in this store");
        assert_msg(-ENOKEY, "copy ");
        assert_msg(-ENOKEY, "group-gone.key");
        /* the same checks as any key file */
        chmod(p, 0644);
        vc_errclear();
        assert_int_equal(vc_key_create_or_load_group(uuid, "staff", chk, l, &created), -EPERM);
        assert_msg(-EPERM, "readable by others");
        chmod(p, 0600);
        char real[PATH_MAX];
        PATHF(real, sizeof real, "%s/g.key", top);
        rename(p, real);
        symlink(real, p);
        vc_errclear();
        assert_int_equal(vc_key_create_or_load_group(uuid, "staff", chk, l, &created), -EPERM);
        assert_msg(-EPERM, "symbolic link");
        vc_errclear();
}

static void test_discard(void **state)
{
        (void)state;
        char p[PATH_MAX];
        uint8_t k[VC_KEY_LEN] = { 0 }, other[VC_KEY_LEN];
        /* nothing there yet */
        assert_int_equal(vc_key_discard(uuid, "parcel", "a", k), 0);
        make_parcel("a", k);
        memcpy(other, k, sizeof other);
        other[5] ^= 0x40;
        vc_errclear();
        assert_int_equal(vc_key_discard(uuid, "parcel", "a", other), -EEXIST);
        assert_msg(-EEXIST, "holds another key: left alone");
        assert_int_equal(access(at("parcel-a.key", p), F_OK), 0);
        assert_int_equal(vc_key_discard(uuid, "parcel", "a", k), 0);
        assert_int_equal(access(p, F_OK), -1);
        assert_int_equal(vc_key_discard(uuid, "parcel", "a", k), 0);
        /* and a parcel create can then run again */
        make_parcel("a", k);
        vc_errclear();
}

static void test_legacy(void **state)
{
        (void)state;
        char p[PATH_MAX];
        uint8_t k[VC_KEY_LEN], l[VC_KEY_LEN];
        int created = -1;
        /* a parcel's key: never adopted */
        assert_int_equal(vc_key_load_or_create(uuid, "parcel", "a", k, &created), 0);
        assert_int_equal(created, 1);
        vc_errclear();
        assert_int_equal(vc_key_load_or_create(uuid, "parcel", "a", l, &created), -EEXIST);
        assert_int_equal(created, 0);
        write_key_file(at("parcel-planted.key", p), 0600);
        vc_errclear();
        assert_int_equal(vc_key_load_or_create(uuid, "parcel", "planted", l, &created), -EEXIST);
        /* a group's key: made once, then loaded after the checks */
        assert_int_equal(vc_key_load_or_create(uuid, "group", "g", k, &created), 0);
        assert_int_equal(created, 1);
        assert_int_equal(vc_key_load_or_create(uuid, "group", "g", l, &created), 0);
        assert_int_equal(created, 0);
        assert_memory_equal(k, l, VC_KEY_LEN);
        chmod(at("group-g.key", p), 0640);
        vc_errclear();
        assert_int_equal(vc_key_load_or_create(uuid, "group", "g", l, &created), -EPERM);
        vc_errclear();
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup(test_create_load, setup),
                cmocka_unit_test_setup(test_never_adopts, setup),
                cmocka_unit_test_setup(test_key_file_checks, setup),
                cmocka_unit_test_setup(test_dir_checks, setup),
                cmocka_unit_test_setup(test_mkdir, setup),
                cmocka_unit_test_setup(test_group, setup),
                cmocka_unit_test_setup(test_discard, setup),
                cmocka_unit_test_setup(test_legacy, setup),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
