/* vc_keystore — the client's keys. The store holds no secret of any parcel
 * or group: each parcel's secret and each group's secret live in a file of
 * their own on the client, mode 0600:
 *
 *   $VMCAS_KEYS (or $XDG_CONFIG_HOME/vmcas/keys, or ~/.config/vmcas/keys)
 *       /<store uuid>/parcel-<name>.key
 *       /<store uuid>/group-<name>.key
 *
 * A key file is two lines: "vmcas-key 1" and 64 hex digits.
 * To use a parcel from another machine, copy its key file there.
 *
 * Nobody but the user can plant, swap or read a key. vmcas uses a key
 * file, and creates one, only if
 *   - the key store root (the first line above) is a directory, not a
 *     symbolic link, owned by the user or root, not writable by group or
 *     others; every directory above it (symbolic links resolved) is owned
 *     by the user or root and not writable by others unless sticky (/tmp);
 *   - the store's directory <store uuid> is a directory, not a symbolic
 *     link, owned by the user or root, and group and others have no access
 *     to it (0700);
 *   - the key file is a regular file, not a symbolic link, owned by the
 *     user, and group and others have no access to it (0600).
 * Anything else is refused with -EPERM and a message that says why and
 * what to run. Directories vmcas makes are 0700; key files are created
 * with O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600, and fsync'ed with their
 * directory.
 *
 * A new parcel's key is always new: vc_key_create never adopts a file that
 * is already there (a key someone else made would let them read the
 * parcel). A group's key is shared by every parcel of the group, so
 * vc_key_create_or_load_group loads it for a group the store already has
 * parcels of, checked against their key check, and makes it only for a
 * group the store has none of. */
#ifndef VC_KEYSTORE_H
#define VC_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_seal.h"
#include "store/vc_store.h"

#define VC_KEY_CHECK_LEN 16

/* The directory holding the keys of store uuid (a path only: nothing is
 * checked or made). */
int vc_keystore_dir(const uint8_t uuid[VC_UUID_LEN], char *buf, size_t len);

/* Makes the key directory of store uuid (and the key store root and its
 * missing parents), each 0700, or checks the existing ones as above.
 * Sets buf to its path if buf is not NULL. -EPERM with a message if a
 * directory is unsafe. */
int vc_keystore_mkdir(const uint8_t uuid[VC_UUID_LEN], char *buf, size_t len);

/* Loads the secret of kind ("parcel" or "group") name. -ENOKEY with a
 * message naming the file if it does not exist; -EINVAL if malformed;
 * -EPERM if the file or a directory above it fails the checks above. */
int vc_key_load(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name, uint8_t key[VC_KEY_LEN]);

/* Creates a random secret for kind name in a new file. -EEXIST with a
 * message if a file (or link) of that name is already there: it is never
 * adopted. -EPERM if a directory fails the checks above. */
int vc_key_create(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name, uint8_t key[VC_KEY_LEN]);

/* The secret of group for a new parcel of the group. group_check is the
 * key check of the group's secret held by a parcel of the group already in
 * the store, or NULL if the store has no parcel of the group:
 *   - NULL: creates it as vc_key_create does (-EEXIST if a file is there:
 *     no parcel of this store made it), and sets *created = 1;
 *   - not NULL: loads it as vc_key_load does (-ENOKEY if missing: copy it
 *     from the machine that made the group), -EKEYREJECTED if it does not
 *     match group_check; *created = 0. */
int vc_key_create_or_load_group(const uint8_t uuid[VC_UUID_LEN], const char *group,
                                const uint8_t group_check[VC_KEY_CHECK_LEN], uint8_t key[VC_KEY_LEN],
                                int *created);

/* Removes the key file of kind name if, and only if, it holds key: for
 * undoing a vc_key_create whose parcel was not committed. 0 if removed or
 * absent; -EEXIST (file left alone) if it holds another key. */
int vc_key_discard(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name,
                   const uint8_t key[VC_KEY_LEN]);

/* The key check of a secret that a parcel record holds (an HMAC of the
 * secret): tells a wrong key before anything is read or written. */
void vc_key_check(const uint8_t secret[VC_KEY_LEN], uint8_t out[VC_KEY_CHECK_LEN]);

/* Deprecated, for the client until it calls the functions above: "parcel"
 * is vc_key_create (never adopts); "group" loads an existing group key
 * (after the checks) or creates one, without the check against the
 * group's parcels. Sets *created. */
int vc_key_load_or_create(const uint8_t uuid[VC_UUID_LEN], const char *kind, const char *name,
                          uint8_t key[VC_KEY_LEN], int *created);

#endif
