/* vc_keystore — the client's keys. The store holds no secret of any parcel
 * or group: each parcel's secret and each group's secret live in a file of
 * their own on the client, mode 0600:
 *
 *   $VMCAS_KEYS (or $XDG_CONFIG_HOME/vmcas/keys, or ~/.config/vmcas/keys)
 *       /<store uuid>/parcel-<name>.key
 *       /<store uuid>/group-<name>.key
 *
 * A key file is two lines: "vmcas-key 1" and 64 hex digits.
 * To use a parcel from another machine, copy its key file there. */
#ifndef VC_KEYSTORE_H
#define VC_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_seal.h"
#include "store/vc_store.h"

/* The directory holding the keys of store uuid. */
int vc_keystore_dir(const uint8_t uuid[VC_UUID_LEN], char *buf, size_t len);

/* Loads the secret of kind ("parcel" or "group") name. -ENOKEY with a
 * message naming the file if it does not exist; -EINVAL if malformed;
 * -EPERM if others can read it. */
int vc_key_load(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name, uint8_t key[VC_KEY_LEN]);

/* Loads the secret, or if there is none creates a random one (atomically,
 * 0600). Sets *created. */
int vc_key_load_or_create(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name,
                          uint8_t key[VC_KEY_LEN], int *created);

#endif
