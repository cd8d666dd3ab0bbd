/* vc_seal — turning a chunk into the bytes a store keeps, and back.
 *
 *   seal: compress (if it helps) ▸ encrypt (AES-256-CTR) ▸ tag = SHA-256
 *   open: check tag ▸ decrypt ▸ decompress ▸ check the key against the content
 *
 * Every chunk of a version is described by a keyring entry (tag, key):
 *   all    key = SHA-256(content)                (convergent: anyone with the
 *                                                 content derives the key)
 *   ip     key = HMAC(parcel secret, "ip-chunk" ‖ content)
 *   group  key = HMAC(group secret, "group-chunk" ‖ content)
 *   delta  key = HMAC(parcel secret, "delta-id" ‖ content): a content id for
 *          finding unchanged positions; the data is encrypted under the
 *          parcel's data key with a fresh nonce (per-checkin random salt ‖
 *          chunk position, disk positions counted from 2^43), so no key+nonce
 *          pair is ever used twice.
 * For ip/group/all the key is unique per content, so the IV is zero and the
 * same content always seals to the same bytes and tag: that is the dedup.
 *
 * Sealed chunk (all integers little-endian):
 *   0  u8[2]  magic "VC"
 *   2  u8     format version (1)
 *   3  u8     flags: bits 0-1 compression (0 none, 1 gzip, 2 zstd), bit 2 nonce
 *   4  u32    plain length
 *   8  u8[16] nonce (only with flag bit 2)
 *   .. ciphertext of the (compressed) payload
 * The tag covers the header, so a server can check an upload without a key.
 */
#ifndef VC_SEAL_H
#define VC_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_chunk.h"
#include "core/vc_compress.h"
#include "core/vc_hash.h"

#define VC_KEY_LEN 32
#define VC_SEAL_HDR 8
#define VC_SEAL_NONCE 16

typedef enum { VC_POLICY_DELTA = 0, VC_POLICY_IP = 1, VC_POLICY_GROUP = 2, VC_POLICY_ALL = 3 } VcPolicy;

/* "delta", "ip", "all", "group:NAME" (NAME: [A-Za-z0-9._-]{1,64}). */
int vc_policy_parse(const char *s, VcPolicy *ret, char *group, size_t glen);
const char *vc_policy_name(VcPolicy p);

/* A keyring entry. The all-zero entry stands for an all-zero chunk (or a
 * whole all-zero subtree of the keyring): never stored, never sent. */
typedef struct VcEntry {
        uint8_t tag[VC_HASH_LEN];
        uint8_t key[VC_KEY_LEN];
} VcEntry;

static inline bool vc_entry_is_zero(const VcEntry *e)
{
        static const uint8_t z[VC_HASH_LEN];
        return __builtin_memcmp(e->tag, z, VC_HASH_LEN) == 0;
}

typedef struct VcSealer VcSealer;

/* One sealer per thread. secret is the parcel secret (delta, ip) or the
 * group secret (group); NULL for all. It is copied and wiped on free. */
int vc_sealer_new(VcPolicy p, VcComp comp, const uint8_t *secret, VcSealer **ret);
void vc_sealer_free(VcSealer *s);             /* NULL ok */
/* Delta only: the per-checkin random salt of the nonces. */
void vc_sealer_set_salt(VcSealer *s, const uint8_t salt[8]);
/* The zstd level of what this sealer compresses (0: the default). The
 * sealed bytes, and so the tags of policy all, depend on it. */
void vc_sealer_set_level(VcSealer *s, int level);

/* The entry key of content (see the table above). One hash pass. */
void vc_chunk_key(const VcSealer *s, const void *data, size_t n, uint8_t key[VC_KEY_LEN]);

/* Worst-case sealed size of an n-byte chunk. */
size_t vc_seal_bound(size_t n);

/* Seals data[0..n) (n <= VC_CHUNK_MAX) whose entry key is key, at chunk
 * position index (used for the delta nonce), into out[0..cap) with
 * cap >= vc_seal_bound(n). Sets *out_len and tag. */
int vc_seal(VcSealer *s, const void *data, size_t n, const uint8_t key[VC_KEY_LEN], uint64_t index,
            uint8_t *out, size_t cap, size_t *out_len, uint8_t tag[VC_HASH_LEN]);

/* Opens sealed[0..len) into out[0..want): want must be the chunk's length.
 * -EBADMSG if SHA-256(sealed) != tag, the header or stream is malformed,
 * or, with check_key, the content does not match key (a wrong key, or a
 * forged chunk).
 *
 * check_key costs a second hash pass. It is needed when the entry (tag,
 * key) is not known to be authentic. An entry read from a version's
 * keyring is: the root is sealed with AES-GCM and every node is
 * authenticated by its HMAC key under the parcel secret, so the tag is the
 * one this parcel's owner computed over the bytes it sealed, and the tag
 * check alone proves the bytes are those (SHA-256 collision resistance).
 * Checkout therefore passes false and runs at one hash pass per byte. */
int vc_unseal(VcSealer *s, const uint8_t *sealed, size_t len, const uint8_t tag[VC_HASH_LEN],
              const uint8_t key[VC_KEY_LEN], uint8_t *out, size_t want, bool check_key);

/* Secrets derived from a parcel secret for one purpose (label), e.g.
 * "delta-data", "node", "version-wrap", "check". */
void vc_derive(const uint8_t secret[VC_KEY_LEN], const char *label, uint8_t out[VC_KEY_LEN]);

/* AES-256-CTR of n bytes in place-or-out with key and 16-byte iv. */
int vc_ctr(const uint8_t key[VC_KEY_LEN], const uint8_t iv[16], const void *in, void *out, size_t n);

/* AES-256-GCM for small secrets (version roots): out = nonce(12) ‖ ct ‖ tag(16).
 * vc_gcm_open returns -EKEYREJECTED if authentication fails. */
#define VC_GCM_OVERHEAD 28
int vc_gcm_seal(const uint8_t key[VC_KEY_LEN], const void *aad, size_t alen, const void *in, size_t n, uint8_t *out);
int vc_gcm_open(const uint8_t key[VC_KEY_LEN], const void *aad, size_t alen, const uint8_t *in, size_t n, uint8_t *out);

#endif
