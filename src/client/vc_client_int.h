/* What the client's files share: keys, authenticated records, reading a
 * version's keyrings through the store interface, image sources, the
 * host's leases. Not a public interface (vc_client.h is). */
#ifndef VC_CLIENT_INT_H
#define VC_CLIENT_INT_H

#include "client/vc_client.h"
#include "core/vc_keyring.h"
#include "core/vc_limits.h"
#include "core/vc_util.h"

#include <pthread.h>

#define VC_MAX_THREADS 16

typedef struct Keys {
        uint8_t parcel[VC_KEY_LEN];   /* the parcel secret */
        uint8_t group[VC_KEY_LEN];    /* the group secret (group policy) */
        uint8_t node[VC_KEY_LEN];     /* keyring nodes */
        uint8_t wrap[VC_KEY_LEN];     /* version roots */
        uint8_t record[VC_KEY_LEN];   /* the parcel record's MAC */
} Keys;

void keys_wipe(Keys *k);
/* The 16-byte check value of a secret, kept in the parcel record so that
 * a wrong key file is told apart from a changed record. */
void key_check(const uint8_t secret[VC_KEY_LEN], uint8_t out[16]);
void keys_derive(Keys *k);
/* The MAC of a packed parcel record (its last 32 bytes excluded). */
void record_mac(const Keys *k, const char *name, const uint8_t *rec, size_t len, uint8_t mac[32]);

/* Reads parcel name from the back end, loads its keys and authenticates
 * its record: -EKEYREJECTED for a wrong key file, -EBADMSG "the record of
 * parcel X was changed outside vmcas" for a record that fails its MAC. */
int parcel_open(VcBackend *b, const char *name, VcParcel *p, Keys *k);

/* Version `version` of p, authenticated: its record opens under the
 * parcel's wrap key, names p and that version, and has p's sizes. Sets
 * the two roots (tag, key). */
int version_open(VcBackend *b, const VcParcel *p, const Keys *k, uint32_t version, VcVersion *v, VcEntry *mem_root,
                 VcEntry *disk_root);
/* The same, and the roots of the machine and read-order trees (aux[0],
 * aux[1]; all-zero entries where the version has none). */
int version_open_aux(VcBackend *b, const VcParcel *p, const Keys *k, uint32_t version, VcVersion *v,
                     VcEntry *mem_root, VcEntry *disk_root, VcEntry aux[2]);
/* The bytes of an aux tree of version v (root from version_open_aux, size
 * from v): *buf malloc'ed (NULL and 0 for none). */
int read_aux(VcBackend *b, const VcParcel *p, const Keys *k, const VcVersion *v, int which, const VcEntry *root,
             uint8_t **buf, size_t *len);
/* The largest machine blob (kernel, initrd and device state) a version
 * may hold, and the largest read order. */
#define VC_MACHINE_MAX (512ull << 20)
#define VC_ORDER_MAX (8ull * VC_IMAGE_CHUNKS_MAX)

/* Reads the entries of both images of version v (roots from version_open),
 * keyring nodes fetched level by level in batches. */
int read_entries(VcBackend *b, const VcParcel *p, const Keys *k, const VcVersion *v, const VcEntry *rm,
                 const VcEntry *rd, VcEntry **mem, uint64_t *nmem, VcEntry **disk, uint64_t *ndisk);
/* The same, keeping the trees' node entries (vc_tree_build_from). */
int read_entries_nodes(VcBackend *b, const VcParcel *p, const Keys *k, const VcVersion *v, const VcEntry *rm,
                       const VcEntry *rd, VcEntry **mem, uint64_t *nmem, VcEntry **disk, uint64_t *ndisk,
                       VcTreeNodes *mem_nodes, VcTreeNodes *disk_nodes);

int sealer_for(const VcParcel *p, const Keys *k, VcSealer **ret);

/* Fetches keyring nodes of p through b (for vc_tree_read_levels). */
typedef struct NodesCtxPub {
        VcBackend *b;
        const VcParcel *p;
} NodesCtxPub;
int nodes_get_pub(const uint8_t *tags, size_t n, vc_node_got_fn got, void *gctx, void *ctx);

/* ---- image sources: a file, or a version of a parcel (for --from) ---------- */

typedef struct Source {
        uint64_t size;
        const char *what;
        int fd;                       /* a file ... */
        VcBackend *b;                 /* ... or a version */
        const VcParcel *p;
        const VcEntry *e;
        VcSealer *sealer;
        /* a workspace's disk (vc_workspace.c): only the chunks whose bit
         * is set in dirty are read from fd (the overlay) and hashed; every
         * other chunk keeps its entry in base */
        const uint8_t *dirty;
        const VcEntry *base;
        VcEntry *out;                 /* not NULL: do_checkin copies the new entries here */
        const uint8_t *mem;           /* ... or bytes in memory (fd -1, b NULL) */
        bool zeros;                   /* ... or all zeros */
} Source;

int source_open_file(const char *path, const char *what, uint64_t want, Source *src);
/* Reads [off, off+len) of src: a file with pread; a version by fetching
 * its chunks in one batch. */
int source_read(Source *src, uint64_t off, uint8_t *buf, size_t len);

/* ---- checkin (vc_checkin.c) --------------------------------------------------- */

/* aux: the machine and read-order bytes of the new version (NULL: none). */
typedef struct VcAuxIn {
        const uint8_t *machine;
        size_t machine_len;
        const uint8_t *order;
        size_t order_len;
} VcAuxIn;
/* Checks (mem, disk) in as version p->latest+1 of *p. lease: the token
 * the commit presents, or NULL. do_checkin_level: new chunks compressed
 * at that zstd level (0: the default; do_checkin). */
int do_checkin_level(VcBackend *b, VcParcel *p, const Keys *k, Source *mem, Source *disk, const VcAuxIn *aux,
                     const uint8_t *lease, bool quiet, int level, VcCheckinStats *st);
int do_checkin(VcBackend *b, VcParcel *p, const Keys *k, Source *mem, Source *disk, const VcAuxIn *aux,
               const uint8_t *lease, bool quiet, VcCheckinStats *st);

/* ---- checkout (vc_checkout.c) ---------------------------------------------------- */

/* Writes an image of version `version` (entries e[0..n), size bytes) to
 * path atomically (temp file beside it, fsync, rename). */
int checkout_file(VcBackend *b, const VcParcel *p, const Keys *k, uint32_t version, const VcEntry *e, uint64_t n,
                  uint64_t size, const char *path, const char *what, bool quiet);
/* Takes parcel name's lease for this host and saves its token. */
int take_lease(VcBackend *b, const char *name);

/* ---- this host's leases ------------------------------------------------------------ */

/* The token this host holds for parcel name of the store, if it saved one
 * (1), or 0. Kept beside the keys: <key dir>/lease-<name>@<host>, mode 0600. */
int lease_token_load(const uint8_t uuid[16], const char *name, uint8_t token[VC_LEASE_TOKEN_LEN]);
int lease_token_save(const uint8_t uuid[16], const char *name, const uint8_t token[VC_LEASE_TOKEN_LEN]);
void lease_token_forget(const uint8_t uuid[16], const char *name);
/* The lease a checkin commits under: the saved token, or the lease taken
 * now if nobody holds it (or this host does). */
int lease_for_checkin(VcBackend *b, const char *name, uint8_t token[VC_LEASE_TOKEN_LEN]);
/* (returns 1 if it took the lease now, 0 if it had one saved) */

#endif
