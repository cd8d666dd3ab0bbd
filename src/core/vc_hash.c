#include "core/vc_hash.h"

/* The low-level SHA256_* calls are deprecated in OpenSSL 3 but still
 * supported; for 4 KiB inputs they cost a third of EVP_Digest*, which
 * allocates and fetches per call. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <errno.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

void vc_sha256(const void *data, size_t len, uint8_t out[VC_HASH_LEN])
{
        /* Not SHA256(): in OpenSSL 3 it is EVP_Q_digest, which fetches the
         * algorithm on every call (a tenth of the cost of a 4 KiB chunk).
         * SHA256_Update takes the same SHA-NI code path. */
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, data, len);
        SHA256_Final(out, &c);
}

void vc_sha256_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[VC_HASH_LEN])
{
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, a, alen);
        SHA256_Update(&c, b, blen);
        SHA256_Final(out, &c);
}

/* HMAC per RFC 2104 over SHA-256 with the low-level API: HMAC() from
 * OpenSSL 3 fetches an algorithm per call, which costs more than hashing a
 * 4 KiB chunk. */
static void hmac_parts(const uint8_t key[VC_HASH_LEN], const void *a, size_t alen, const void *b, size_t blen,
                       uint8_t out[VC_HASH_LEN])
{
        uint8_t pad[64], inner[VC_HASH_LEN];
        SHA256_CTX c;
        memset(pad, 0x36, sizeof pad);
        for (int i = 0; i < VC_HASH_LEN; i++)
                pad[i] ^= key[i];
        SHA256_Init(&c);
        SHA256_Update(&c, pad, sizeof pad);
        if (alen)
                SHA256_Update(&c, a, alen);
        if (blen)
                SHA256_Update(&c, b, blen);
        SHA256_Final(inner, &c);
        memset(pad, 0x5c, sizeof pad);
        for (int i = 0; i < VC_HASH_LEN; i++)
                pad[i] ^= key[i];
        SHA256_Init(&c);
        SHA256_Update(&c, pad, sizeof pad);
        SHA256_Update(&c, inner, sizeof inner);
        SHA256_Final(out, &c);
        OPENSSL_cleanse(pad, sizeof pad);
        OPENSSL_cleanse(inner, sizeof inner);
        OPENSSL_cleanse(&c, sizeof c);
}

void vc_hmac256(const uint8_t key[VC_HASH_LEN], const void *data, size_t len, uint8_t out[VC_HASH_LEN])
{
        hmac_parts(key, data, len, NULL, 0, out);
}

void vc_hmac256_label(const uint8_t key[VC_HASH_LEN], const char *label, const void *data, size_t len,
                      uint8_t out[VC_HASH_LEN])
{
        hmac_parts(key, label, strlen(label) + 1, data, len, out);
}

bool vc_hash_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
        return CRYPTO_memcmp(a, b, n) == 0;
}

bool vc_is_zero(const void *p, size_t n)
{
        const uint8_t *b = p;
        while (n && ((uintptr_t)b & 7)) {
                if (*b)
                        return false;
                b++;
                n--;
        }
        const uint64_t *w = (const uint64_t *)(const void *)b;
        for (; n >= 32; n -= 32, w += 4)
                if (w[0] | w[1] | w[2] | w[3])
                        return false;
        b = (const uint8_t *)w;
        while (n--)
                if (*b++)
                        return false;
        return true;
}

int vc_random(void *buf, size_t n)
{
        return RAND_bytes(buf, (int)n) == 1 ? 0 : -EIO;
}
