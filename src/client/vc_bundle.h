/* vc_bundle — a user's keys, sealed under a passphrase, so that they can
 * follow the user from host to host through a server that keeps the
 * bundle and can never read it (architecture.md, part 4).
 *
 * A bundle holds every key file of one store (src/client/vc_keystore.h):
 * the secrets of its parcels and groups. It is sealed with a key derived
 * from the passphrase by scrypt (N = 2^15, r = 8, p = 1; a random salt per
 * bundle) and AES-256-GCM; the layout is in docs/FORMAT.md ("Key bundle").
 * A wrong passphrase, a bundle of another store and a damaged bundle are
 * told apart only as far as GCM allows: "wrong passphrase, or the bundle
 * is damaged" (-EKEYREJECTED).
 */
#ifndef VC_BUNDLE_H
#define VC_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/vc_backend.h"
#include "store/vc_store.h"

#define VC_PASSPHRASE_MAX 1024
#define VC_BUNDLE_KEYS_MAX 10000

typedef struct VcBundleStats {
        unsigned keys;                   /* in the bundle */
        unsigned imported;               /* written to the key store */
        unsigned present;                /* already there, the same */
        unsigned conflicts;              /* already there, different: left alone */
} VcBundleStats;

/* Seals every key of store uuid found in the key store. *ret is malloc'ed;
 * st->keys counts them. Costs one scrypt (~0.1 s, 32 MiB). */
int vc_bundle_seal(const uint8_t uuid[VC_UUID_LEN], const char *passphrase, uint8_t **ret, size_t *ret_len,
                   VcBundleStats *st);

/* Opens blob and writes its keys into the key store of uuid (mode 0600,
 * atomically). A key file already there is never overwritten: the same
 * secret counts as present, another as a conflict (reported on stderr).
 * -EKEYREJECTED for a wrong passphrase or a damaged bundle; -EINVAL (with
 * message) for a bundle of another store or that is not a bundle. Refuses
 * KDF parameters costing more than 1 GiB of memory. */
int vc_bundle_open(const uint8_t uuid[VC_UUID_LEN], const char *passphrase, const uint8_t *blob, size_t len,
                   VcBundleStats *st);

/* The passphrase from $VMCAS_PASSPHRASE, or else asked on the terminal
 * without echo (twice with confirm). -ENOKEY if neither is possible. */
int vc_bundle_passphrase(bool confirm, char *buf, size_t len);

/* Seals this host's keys of uuid and uploads them to b (vc_bundle_put),
 * with the passphrase of vc_bundle_passphrase (a prompt only if prompt). */
int vc_bundle_push(VcBackend *b, const uint8_t uuid[VC_UUID_LEN], bool prompt, VcBundleStats *st);

/* For the client after a parcel create or checkin over a URL: uploads the
 * current bundle if $VMCAS_PASSPHRASE is set; if not, prints a one-line
 * note on stderr and returns 0. Errors of the upload are returned. */
int vc_bundle_sync(VcBackend *b, const uint8_t uuid[VC_UUID_LEN]);

#endif
