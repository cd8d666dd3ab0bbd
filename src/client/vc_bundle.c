/* Key bundles (vc_bundle.h; layout in docs/FORMAT.md).
 *
 * The key store's own files are read and written only through its rules:
 * keys are loaded with vc_key_load (which checks the mode and the format);
 * the directory is listed here for names "parcel-NAME.key" and
 * "group-NAME.key" with NAME valid, and a key is written as the key store
 * writes one ("vmcas-key 1", 64 hex digits; 0600; atomically). */
#include "client/vc_bundle.h"
#include "client/vc_keystore.h"
#include "core/vc_seal.h"
#include "core/vc_util.h"
#include "repo/vc_repo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define MAGIC "VBUN"
#define VERSION 1
#define KDF_SCRYPT 1
#define LOG2_N 15
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SALT_LEN 16
#define HDR_LEN 44                       /* magic .. uuid: the GCM's associated data */
#define KEY_MAGIC "vmcas-key 1\n"
#define MAXMEM (1ull << 30)

enum { KIND_PARCEL = 0, KIND_GROUP = 1 };
static const char *const kinds[] = { "parcel", "group" };

typedef struct Key {
        uint8_t kind;
        char name[VC_NAME_MAX + 1];
        uint8_t secret[VC_KEY_LEN];
} Key;

typedef struct Keys {
        Key *v;
        size_t n, cap;
} Keys;

static void keys_clear(Keys *k)
{
        if (k->v)
                vc_wipe(k->v, k->cap * sizeof *k->v);
        free(k->v);
        memset(k, 0, sizeof *k);
}

static int keys_push(Keys *k, const Key *x)
{
        if (k->n == VC_BUNDLE_KEYS_MAX)
                return vc_errf(-EFBIG, "more than %u keys for one store", VC_BUNDLE_KEYS_MAX);
        if (k->n == k->cap) {
                size_t nc = k->cap ? 2 * k->cap : 16;
                Key *v = malloc(nc * sizeof *v);
                if (!v)
                        return -ENOMEM;
                if (k->v) {
                        memcpy(v, k->v, k->n * sizeof *v);
                        vc_wipe(k->v, k->cap * sizeof *k->v);
                        free(k->v);
                }
                k->v = v;
                k->cap = nc;
        }
        k->v[k->n++] = *x;
        return 0;
}

/* "parcel-NAME.key" -> kind, NAME; false for any other file. */
static bool key_file_name(const char *f, uint8_t *kind, char name[VC_NAME_MAX + 1])
{
        size_t n = strlen(f);
        for (uint8_t k = 0; k < 2; k++) {
                size_t pl = strlen(kinds[k]);
                if (n > pl + 1 + 4 && strncmp(f, kinds[k], pl) == 0 && f[pl] == '-' && strcmp(f + n - 4, ".key") == 0 &&
                    n - pl - 5 <= VC_NAME_MAX) {
                        memcpy(name, f + pl + 1, n - pl - 5);
                        name[n - pl - 5] = 0;
                        *kind = k;
                        return vc_name_valid(name);
                }
        }
        return false;
}

static int cmp_key(const void *a, const void *b)
{
        const Key *x = a, *y = b;
        return x->kind != y->kind ? x->kind - y->kind : strcmp(x->name, y->name);
}

/* Every key of store uuid in the key store, sorted. */
static int collect(const uint8_t uuid[VC_UUID_LEN], Keys *k)
{
        char dir[PATH_MAX];
        int r = vc_keystore_dir(uuid, dir, sizeof dir);
        if (r < 0)
                return r;
        DIR *d = opendir(dir);
        if (!d) {
                if (errno == ENOENT)
                        return 0;
                return vc_errf(-errno, "cannot read the key directory %s: %s", dir, strerror(errno));
        }
        struct dirent *e;
        while (r >= 0 && (e = readdir(d))) {
                Key x = { 0 };
                if (!key_file_name(e->d_name, &x.kind, x.name))
                        continue;
                if ((r = vc_key_load(uuid, kinds[x.kind], x.name, x.secret)) >= 0)
                        r = keys_push(k, &x);
                vc_wipe(&x, sizeof x);
        }
        closedir(d);
        if (r >= 0)
                qsort(k->v, k->n, sizeof *k->v, cmp_key);
        return r;
}

static int derive(const char *pass, const uint8_t *salt, unsigned log2n, unsigned rr, unsigned p,
                  uint8_t key[VC_KEY_LEN])
{
        if (EVP_PBE_scrypt(pass, strlen(pass), salt, SALT_LEN, 1ull << log2n, rr, p, MAXMEM, key, VC_KEY_LEN) != 1)
                return vc_errf(-ENOMEM, "scrypt failed (N=2^%u, r=%u, p=%u)", log2n, rr, p);
        return 0;
}

/* Plain text: u32 count, then per key u8 kind ‖ u8 name length ‖ name ‖ u8[32] secret. */
static int pack_keys(const Keys *k, uint8_t **ret, size_t *len)
{
        size_t cap = 4 + k->n * (2 + VC_NAME_MAX + VC_KEY_LEN), o = 4;
        uint8_t *b = malloc(cap);
        if (!b)
                return -ENOMEM;
        vc_put32(b, (uint32_t)k->n);
        for (size_t i = 0; i < k->n; i++) {
                size_t nl = strlen(k->v[i].name);
                b[o++] = k->v[i].kind;
                b[o++] = (uint8_t)nl;
                memcpy(b + o, k->v[i].name, nl);
                o += nl;
                memcpy(b + o, k->v[i].secret, VC_KEY_LEN);
                o += VC_KEY_LEN;
        }
        *ret = b;
        *len = o;
        return 0;
}

static int unpack_keys(const uint8_t *b, size_t len, Keys *k)
{
        if (len < 4)
                return vc_errf(-EBADMSG, "the key bundle is malformed");
        uint32_t n = vc_get32(b);
        size_t o = 4;
        int r = 0;
        for (uint32_t i = 0; i < n && r >= 0; i++) {
                Key x = { 0 };
                if (o + 2 > len || b[o] > KIND_GROUP || b[o + 1] == 0 || b[o + 1] > VC_NAME_MAX ||
                    o + 2 + b[o + 1] + VC_KEY_LEN > len)
                        return vc_errf(-EBADMSG, "the key bundle is malformed");
                size_t nl = b[o + 1];
                x.kind = b[o];
                memcpy(x.name, b + o + 2, nl);
                o += 2 + nl;
                memcpy(x.secret, b + o, VC_KEY_LEN);
                o += VC_KEY_LEN;
                if (strlen(x.name) != nl || !vc_name_valid(x.name))
                        r = vc_errf(-EBADMSG, "the key bundle names an invalid key");
                else
                        r = keys_push(k, &x);
                vc_wipe(&x, sizeof x);
        }
        if (r >= 0 && o != len)
                r = vc_errf(-EBADMSG, "the key bundle is malformed");
        return r;
}

int vc_bundle_seal(const uint8_t uuid[VC_UUID_LEN], const char *passphrase, uint8_t **ret, size_t *ret_len,
                   VcBundleStats *st)
{
        Keys k = { 0 };
        uint8_t *plain = NULL, key[VC_KEY_LEN];
        size_t plen = 0;
        int r = collect(uuid, &k);
        if (r >= 0)
                r = pack_keys(&k, &plain, &plen);
        if (st)
                st->keys = (unsigned)k.n;
        keys_clear(&k);
        if (r < 0)
                return r;
        size_t total = HDR_LEN + plen + VC_GCM_OVERHEAD;
        uint8_t *b = calloc(1, total);
        if (!b) {
                vc_wipe(plain, plen);
                free(plain);
                return -ENOMEM;
        }
        memcpy(b, MAGIC, 4);
        b[4] = VERSION;
        b[5] = KDF_SCRYPT;
        b[6] = LOG2_N;
        b[7] = SCRYPT_R;
        b[8] = SCRYPT_P;
        memcpy(b + 28, uuid, VC_UUID_LEN);
        if ((r = vc_random(b + 12, SALT_LEN)) >= 0 && (r = derive(passphrase, b + 12, LOG2_N, SCRYPT_R, SCRYPT_P, key)) >= 0)
                r = vc_gcm_seal(key, b, HDR_LEN, plain, plen, b + HDR_LEN);   /* nonce ‖ ciphertext ‖ tag */
        vc_wipe(key, sizeof key);
        vc_wipe(plain, plen);
        free(plain);
        if (r < 0) {
                free(b);
                return r;
        }
        *ret = b;
        *ret_len = total;
        return 0;
}

/* Writes a key file as the key store does: 0600, atomically. */
static int write_key(const uint8_t uuid[VC_UUID_LEN], const Key *x)
{
        char dir[PATH_MAX], path[PATH_MAX + 100], text[sizeof KEY_MAGIC + 66];
        int r = vc_keystore_dir(uuid, dir, sizeof dir);
        if (r < 0)
                return r;
        if ((r = vc_mkdir_p(dir, 0700)) < 0)
                return vc_errf(r, "cannot create key directory %s: %s", dir, strerror(-r));
        snprintf(path, sizeof path, "%s/%s-%s.key", dir, kinds[x->kind], x->name);
        memcpy(text, KEY_MAGIC, strlen(KEY_MAGIC));
        vc_hex(x->secret, VC_KEY_LEN, text + strlen(KEY_MAGIC));
        strcat(text, "\n");
        r = vc_write_file_atomic(path, text, strlen(text), 0600);
        vc_wipe(text, sizeof text);
        return r < 0 ? vc_errf(r, "cannot write key file %s: %s", path, strerror(-r)) : 0;
}

/* Puts one key of a bundle into the key store, never over another. */
static int import(const uint8_t uuid[VC_UUID_LEN], const Key *x, VcBundleStats *st)
{
        uint8_t have[VC_KEY_LEN];
        vc_errclear();
        int r = vc_key_load(uuid, kinds[x->kind], x->name, have);
        if (r == 0) {
                bool same = vc_hash_eq(have, x->secret, VC_KEY_LEN);
                vc_wipe(have, sizeof have);
                if (same)
                        st->present++;
                else {
                        st->conflicts++;
                        fprintf(stderr, "vmcas: the key of %s '%s' on this host differs from the bundle's; "
                                "kept this host's\n", kinds[x->kind], x->name);
                }
                return 0;
        }
        if (r != -ENOKEY)
                return r;
        vc_errclear();
        if ((r = write_key(uuid, x)) >= 0)
                st->imported++;
        return r;
}

int vc_bundle_open(const uint8_t uuid[VC_UUID_LEN], const char *passphrase, const uint8_t *blob, size_t len,
                   VcBundleStats *st)
{
        memset(st, 0, sizeof *st);
        if (len < HDR_LEN + VC_GCM_OVERHEAD + 4 || memcmp(blob, MAGIC, 4) != 0)
                return vc_errf(-EINVAL, "this is not a vmcas key bundle");
        if (blob[4] != VERSION || blob[5] != KDF_SCRYPT)
                return vc_errf(-EPROTO, "a key bundle of version %u (KDF %u): this vmcas reads version %u", blob[4],
                               blob[5], VERSION);
        unsigned log2n = blob[6], rr = blob[7], p = blob[8];
        /* scrypt takes 128 r N bytes: refuse what a hostile server could
         * make cost more than MAXMEM, or take minutes */
        if (log2n < 10 || log2n > 22 || rr < 1 || rr > 32 || p < 1 || p > 16 || (128ull * rr << log2n) > MAXMEM / 2)
                return vc_errf(-EINVAL, "the key bundle asks for scrypt N=2^%u r=%u p=%u, which this vmcas refuses",
                               log2n, rr, p);
        if (memcmp(blob + 28, uuid, VC_UUID_LEN) != 0)
                return vc_errf(-EINVAL, "the key bundle is one of another store");
        uint8_t key[VC_KEY_LEN];
        size_t plen = len - HDR_LEN - VC_GCM_OVERHEAD;
        uint8_t *plain = malloc(plen);
        if (!plain)
                return -ENOMEM;
        int r = derive(passphrase, blob + 12, log2n, rr, p, key);
        if (r >= 0 && vc_gcm_open(key, blob, HDR_LEN, blob + HDR_LEN, len - HDR_LEN, plain) < 0)
                r = vc_errf(-EKEYREJECTED, "cannot open the key bundle: wrong passphrase, or the bundle is damaged");
        vc_wipe(key, sizeof key);
        Keys k = { 0 };
        if (r >= 0)
                r = unpack_keys(plain, plen, &k);
        vc_wipe(plain, plen);
        free(plain);
        st->keys = (unsigned)k.n;
        for (size_t i = 0; r >= 0 && i < k.n; i++)
                r = import(uuid, &k.v[i], st);
        keys_clear(&k);
        return r;
}

static int ask(const char *prompt, char *buf, size_t len)
{
        int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return vc_errf(-ENOKEY, "no passphrase: set VMCAS_PASSPHRASE (there is no terminal to ask on)");
        struct termios old, quiet;
        bool tty = tcgetattr(fd, &old) == 0;
        if (tty) {
                quiet = old;
                quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
                quiet.c_lflag |= ICANON;
                tcsetattr(fd, TCSAFLUSH, &quiet);
        }
        if (write(fd, prompt, strlen(prompt)) < 0) {
                /* the prompt is a courtesy */
        }
        size_t n = 0;
        char c;
        ssize_t k;
        while ((k = read(fd, &c, 1)) == 1 && c != '\n' && c != '\r')
                if (n + 1 < len)
                        buf[n++] = c;
        buf[n] = 0;
        if (tty)
                tcsetattr(fd, TCSAFLUSH, &old);
        if (write(fd, "\n", 1) < 0) {
        }
        close(fd);
        vc_wipe(&c, sizeof c);
        return n ? 0 : vc_errf(-ENOKEY, "no passphrase given");
}

int vc_bundle_passphrase(bool confirm, char *buf, size_t len)
{
        const char *e = getenv("VMCAS_PASSPHRASE");
        if (e && *e) {
                if (strlen(e) >= len)
                        return vc_errf(-EINVAL, "VMCAS_PASSPHRASE is longer than %zu bytes", len - 1);
                snprintf(buf, len, "%s", e);
                return 0;
        }
        int r = ask("vmcas: passphrase of your key bundle: ", buf, len);
        if (r < 0 || !confirm)
                return r;
        char again[VC_PASSPHRASE_MAX];
        if ((r = ask("vmcas: the same again: ", again, sizeof again)) >= 0 && strcmp(again, buf) != 0)
                r = vc_errf(-EINVAL, "the two passphrases differ");
        vc_wipe(again, sizeof again);
        return r;
}

int vc_bundle_push(VcBackend *b, const uint8_t uuid[VC_UUID_LEN], bool prompt, VcBundleStats *st)
{
        char pass[VC_PASSPHRASE_MAX];
        uint8_t *blob = NULL;
        size_t len = 0;
        int r;
        const char *e = getenv("VMCAS_PASSPHRASE");
        if (!prompt && !(e && *e))
                return vc_errf(-ENOKEY, "no passphrase: set VMCAS_PASSPHRASE");
        if ((r = vc_bundle_passphrase(true, pass, sizeof pass)) >= 0)
                r = vc_bundle_seal(uuid, pass, &blob, &len, st);
        vc_wipe(pass, sizeof pass);
        if (r >= 0)
                r = vc_bundle_put(b, blob, len);
        free(blob);
        return r;
}

int vc_bundle_sync(VcBackend *b, const uint8_t uuid[VC_UUID_LEN])
{
        const char *e = getenv("VMCAS_PASSPHRASE");
        if (!e || !*e) {
                fprintf(stderr, "vmcas: note: VMCAS_PASSPHRASE is not set, so the server's copy of your keys "
                        "was not updated (run 'vmcas login --push URL')\n");
                return 0;
        }
        VcBundleStats st;
        return vc_bundle_push(b, uuid, false, &st);
}
