#include "core/vc_seal.h"
#include "core/vc_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

struct VcSealer {
        VcPolicy policy;
        VcComp comp;
        int level;                      /* zstd level, 0: default */
        uint8_t secret[VC_KEY_LEN];     /* parcel or group secret */
        uint8_t data_key[VC_KEY_LEN];   /* delta: derived data key */
        uint8_t salt[8];
        EVP_CIPHER_CTX *ctx;
        EVP_CIPHER *aes;
        VcCompressor *cz;
        uint8_t *buf;                   /* compression scratch */
        size_t bufcap;
};

static const char *const policy_names[] = { "delta", "ip", "group", "all" };

static bool name_ok(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > 64)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '.' || *s == '_' || *s == '-'))
                        return false;
        return true;
}

int vc_policy_parse(const char *s, VcPolicy *ret, char *group, size_t glen)
{
        if (group && glen)
                group[0] = 0;
        if (strcmp(s, "delta") == 0) *ret = VC_POLICY_DELTA;
        else if (strcmp(s, "ip") == 0) *ret = VC_POLICY_IP;
        else if (strcmp(s, "all") == 0) *ret = VC_POLICY_ALL;
        else if (strncmp(s, "group:", 6) == 0) {
                if (!name_ok(s + 6) || !group || strlen(s + 6) >= glen)
                        return vc_errf(-EINVAL, "invalid group name in '%s' (use letters, digits, '.', '_', '-')", s);
                strcpy(group, s + 6);
                *ret = VC_POLICY_GROUP;
        } else
                return vc_errf(-EINVAL, "unknown policy '%s' (expected delta, ip, all or group:NAME)", s);
        return 0;
}

const char *vc_policy_name(VcPolicy p)
{
        return (unsigned)p < VC_ARRAY_SIZE(policy_names) ? policy_names[p] : "?";
}

void vc_derive(const uint8_t secret[VC_KEY_LEN], const char *label, uint8_t out[VC_KEY_LEN])
{
        vc_hmac256_label(secret, label, NULL, 0, out);
}

int vc_sealer_new(VcPolicy p, VcComp comp, const uint8_t *secret, VcSealer **ret)
{
        VcSealer *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->policy = p;
        s->comp = comp;
        if (secret)
                memcpy(s->secret, secret, VC_KEY_LEN);
        else if (p != VC_POLICY_ALL) {
                free(s);
                return -EINVAL;
        }
        if (p == VC_POLICY_DELTA)
                vc_derive(s->secret, "delta-data", s->data_key);
        s->ctx = EVP_CIPHER_CTX_new();
        s->aes = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
        int r = vc_compressor_new(&s->cz);
        if (!s->ctx || !s->aes || r < 0) {
                vc_sealer_free(s);
                return -ENOMEM;
        }
        *ret = s;
        return 0;
}

void vc_sealer_set_level(VcSealer *s, int level)
{
        s->level = level;
}

void vc_sealer_free(VcSealer *s)
{
        if (!s)
                return;
        EVP_CIPHER_CTX_free(s->ctx);
        EVP_CIPHER_free(s->aes);
        vc_compressor_free(s->cz);
        free(s->buf);
        vc_wipe(s, sizeof *s);
        free(s);
}

void vc_sealer_set_salt(VcSealer *s, const uint8_t salt[8])
{
        memcpy(s->salt, salt, 8);
}

void vc_chunk_key(const VcSealer *s, const void *data, size_t n, uint8_t key[VC_KEY_LEN])
{
        switch (s->policy) {
        case VC_POLICY_ALL: vc_sha256(data, n, key); break;
        case VC_POLICY_IP: vc_hmac256_label(s->secret, "ip-chunk", data, n, key); break;
        case VC_POLICY_GROUP: vc_hmac256_label(s->secret, "group-chunk", data, n, key); break;
        case VC_POLICY_DELTA: vc_hmac256_label(s->secret, "delta-id", data, n, key); break;
        }
}

size_t vc_seal_bound(size_t n)
{
        return VC_SEAL_HDR + VC_SEAL_NONCE + n;  /* compression is kept only if smaller */
}

static int ctr(VcSealer *s, const uint8_t *key, const uint8_t *iv, const void *in, void *out, size_t n)
{
        int outl = 0;
        if (EVP_EncryptInit_ex2(s->ctx, s->aes, key, iv, NULL) != 1 ||
            EVP_EncryptUpdate(s->ctx, out, &outl, in, (int)n) != 1 || (size_t)outl != n)
                return vc_errf(-EIO, "AES-256-CTR failed");
        return 0;
}

/* AES-256-CTR fetched once: an implicit fetch at every call (a keyring
 * node is one call) was a sixth of reading a keyring */
static EVP_CIPHER *ctr_cipher;
static pthread_once_t ctr_once = PTHREAD_ONCE_INIT;

static void ctr_fetch(void)
{
        ctr_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
}

int vc_ctr(const uint8_t key[VC_KEY_LEN], const uint8_t iv[16], const void *in, void *out, size_t n)
{
        pthread_once(&ctr_once, ctr_fetch);
        const EVP_CIPHER *ci = ctr_cipher ? ctr_cipher : EVP_aes_256_ctr();
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        int outl = 0, r = 0;
        if (!c || EVP_EncryptInit_ex2(c, ci, key, iv, NULL) != 1 ||
            EVP_EncryptUpdate(c, out, &outl, in, (int)n) != 1 || (size_t)outl != n)
                r = vc_errf(-EIO, "AES-256-CTR failed");
        EVP_CIPHER_CTX_free(c);
        return r;
}

/* The delta nonce: 8 bytes of per-checkin salt, then the chunk position
 * shifted left by 20 bits as a big-endian counter, so the CTR counter of
 * one chunk (at most 512 KiB = 2^15 blocks) never runs into the next. */
static void delta_nonce(const uint8_t salt[8], uint64_t index, uint8_t iv[16])
{
        memcpy(iv, salt, 8);
        vc_put64be(iv + 8, index << 20);
}

int vc_seal(VcSealer *s, const void *data, size_t n, const uint8_t key[VC_KEY_LEN], uint64_t index,
            uint8_t *out, size_t cap, size_t *out_len, uint8_t tag[VC_HASH_LEN])
{
        if (n > VC_CHUNK_MAX || cap < vc_seal_bound(n))
                return -EINVAL;
        bool nonce = s->policy == VC_POLICY_DELTA;
        size_t hdr = VC_SEAL_HDR + (nonce ? VC_SEAL_NONCE : 0);
        const void *payload = data;
        size_t plen = n;
        VcComp used = VC_COMP_NONE;
        if (s->comp != VC_COMP_NONE) {
                if (s->bufcap < n) {
                        uint8_t *b = realloc(s->buf, n);
                        if (!b)
                                return -ENOMEM;
                        s->buf = b;
                        s->bufcap = n;
                }
                ssize_t k = vc_compress_level(s->cz, s->comp, s->level, s->buf, n, data, n);
                if (k < 0)
                        return (int)k;
                if (k > 0) {
                        payload = s->buf;
                        plen = (size_t)k;
                        used = s->comp;
                }
        }
        out[0] = 'V';
        out[1] = 'C';
        out[2] = 1;
        out[3] = (uint8_t)(used | (nonce ? 4 : 0));
        vc_put32(out + 4, (uint32_t)n);
        static const uint8_t zero_iv[16];
        const uint8_t *iv = zero_iv;
        const uint8_t *k = key;
        if (nonce) {
                delta_nonce(s->salt, index, out + VC_SEAL_HDR);
                iv = out + VC_SEAL_HDR;
                k = s->data_key;
        }
        int r = ctr(s, k, iv, payload, out + hdr, plen);
        if (r < 0)
                return r;
        *out_len = hdr + plen;
        vc_sha256(out, *out_len, tag);
        return 0;
}

int vc_unseal(VcSealer *s, const uint8_t *sealed, size_t len, const uint8_t tag[VC_HASH_LEN],
              const uint8_t key[VC_KEY_LEN], uint8_t *out, size_t want, bool check_key)
{
        uint8_t h[VC_HASH_LEN];
        vc_sha256(sealed, len, h);
        if (!vc_hash_eq(h, tag, VC_HASH_LEN))
                return vc_errf(-EBADMSG, "its bytes do not match its tag (damaged)");
        if (len < VC_SEAL_HDR || sealed[0] != 'V' || sealed[1] != 'C' || sealed[2] != 1)
                return vc_errf(-EBADMSG, "not a sealed chunk of a known format");
        unsigned comp = sealed[3] & 3;
        bool nonce = sealed[3] & 4;
        size_t hdr = VC_SEAL_HDR + (nonce ? VC_SEAL_NONCE : 0);
        if (comp > VC_COMP_ZSTD || (sealed[3] & ~7u) || vc_get32(sealed + 4) != want || len < hdr ||
            want > VC_CHUNK_MAX || (comp == VC_COMP_NONE && len - hdr != want) || len - hdr > want ||
            nonce != (s->policy == VC_POLICY_DELTA))
                return vc_errf(-EBADMSG, "malformed sealed chunk header");
        size_t plen = len - hdr;
        static const uint8_t zero_iv[16];
        const uint8_t *iv = nonce ? sealed + VC_SEAL_HDR : zero_iv;
        const uint8_t *k = nonce ? s->data_key : key;
        int r;
        if (comp == VC_COMP_NONE) {
                r = ctr(s, k, iv, sealed + hdr, out, plen);
        } else {
                if (s->bufcap < plen) {
                        uint8_t *b = realloc(s->buf, VC_MAX(plen, 4096));
                        if (!b)
                                return -ENOMEM;
                        s->buf = b;
                        s->bufcap = VC_MAX(plen, 4096);
                }
                r = ctr(s, k, iv, sealed + hdr, s->buf, plen);
                if (r == 0 && vc_decompress(s->cz, comp, out, want, s->buf, plen) < 0)
                        r = vc_errf(-EBADMSG, "its compressed data does not decompress (wrong key?)");
        }
        if (r < 0 || !check_key)
                return r;
        vc_chunk_key(s, out, want, h);
        if (!vc_hash_eq(h, key, VC_KEY_LEN))
                return vc_errf(-EBADMSG, "its content does not match its key (wrong key, or a forged chunk)");
        return 0;
}

int vc_gcm_seal(const uint8_t key[VC_KEY_LEN], const void *aad, size_t alen, const void *in, size_t n, uint8_t *out)
{
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        int l = 0, r = vc_random(out, 12);
        if (!c)
                return -ENOMEM;
        if (r == 0 && (EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key, out, NULL) != 1 ||
                       EVP_EncryptUpdate(c, NULL, &l, aad, (int)alen) != 1 ||
                       EVP_EncryptUpdate(c, out + 12, &l, in, (int)n) != 1 ||
                       EVP_EncryptFinal_ex(c, out + 12 + l, &l) != 1 ||
                       EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + 12 + n) != 1))
                r = -EIO;
        EVP_CIPHER_CTX_free(c);
        return r;
}

int vc_gcm_open(const uint8_t key[VC_KEY_LEN], const void *aad, size_t alen, const uint8_t *in, size_t n, uint8_t *out)
{
        if (n < VC_GCM_OVERHEAD)
                return -EBADMSG;
        size_t ct = n - VC_GCM_OVERHEAD;
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        int l = 0, r = 0;
        if (!c)
                return -ENOMEM;
        uint8_t tagbuf[16];
        memcpy(tagbuf, in + 12 + ct, 16);
        if (EVP_DecryptInit_ex2(c, EVP_aes_256_gcm(), key, in, NULL) != 1 ||
            EVP_DecryptUpdate(c, NULL, &l, aad, (int)alen) != 1 ||
            EVP_DecryptUpdate(c, out, &l, in + 12, (int)ct) != 1 ||
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tagbuf) != 1)
                r = -EIO;
        else if (EVP_DecryptFinal_ex(c, out + l, &l) != 1)
                r = -EKEYREJECTED;
        EVP_CIPHER_CTX_free(c);
        if (r < 0)
                vc_wipe(out, ct);
        return r;
}
