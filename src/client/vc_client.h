/* vc_client — the operations that need keys: creating a parcel, checking
 * a version in and checking one out, against any back end of the store
 * interface (src/backend/vc_backend.h): a local store, a server, a server
 * behind the host cache.
 *
 * Checkin cuts each image into fixed-size chunks and, for each chunk,
 * derives its key (one hash pass); a chunk whose key equals the previous
 * version's at the same position (or, for ip/group/all, anywhere in the
 * previous version) is reused without sealing. Others are sealed on every
 * core; the back end is asked, a batch at a time, which of their tags it
 * lacks, and only those are sent. Then the keyring trees are built
 * (unchanged leaves dedup to the previous version's), and the version is
 * committed in one atomic call that first checks the lease, the base
 * version and that every chunk it names is stored.
 *
 * Everything the client takes from the store that decides how it seals
 * or what it believes is authenticated with a key only the client holds:
 * the parcel record by its MAC, version records by AES-GCM, keyring nodes
 * by their HMAC keys, chunks by their tags from those authenticated
 * keyrings. */
#ifndef VC_CLIENT_H
#define VC_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/vc_backend.h"
#include "repo/vc_repo.h"

typedef struct VcCheckinStats {
        uint32_t version;
        uint64_t chunks;          /* positions in memory + disk */
        uint64_t zero_chunks;     /* all-zero: keyring sentinel, not stored */
        uint64_t reused_chunks;   /* found in the previous version by key */
        uint64_t new_chunks;      /* sealed chunks the store did not have */
        uint64_t new_bytes;       /* their sealed bytes */
        uint64_t meta_bytes;      /* new keyring nodes + the version record */
        uint64_t bytes_in;        /* image bytes read */
        double seconds;
        VcTraffic traffic;        /* what the back end moved for it */
} VcCheckinStats;

typedef struct VcCheckoutStats {
        uint32_t version;
        uint64_t chunks, zero_chunks;
        uint64_t bytes_out;       /* image bytes written */
        double seconds;
        VcTraffic traffic;
} VcCheckoutStats;

typedef struct VcCreateOpts {
        const char *name;
        VcPolicy policy;
        char group[VC_NAME_MAX + 1];
        VcComp comp;
        uint32_t chunk_size;      /* 0: the source's, or 128 KiB */
        uint64_t mem_size, disk_size;
        const char *from;         /* NULL, or a gold image parcel ... */
        uint32_t from_version;    /* ... and its version (0: latest) */
        const char *owner;        /* a server: the user it is for (admin) */
        /* a virtual machine's parcel (vc_machine.h): version 1 is this
         * machine, an empty memory and disk_image (NULL: an empty disk) */
        const uint8_t *machine;
        size_t machine_len;
        const char *disk_image;
} VcCreateOpts;

typedef struct VcCheckinOpts {
        bool quiet;
        bool keep_lease;          /* keep this host's lease after the commit */
        int zstd_level;           /* of the new chunks of a zstd parcel; 0: the default. Stored nowhere */
} VcCheckinOpts;

typedef struct VcCheckoutOpts {
        bool quiet;
        bool no_lease;            /* read only: take no lease */
} VcCheckoutOpts;

/* Creates parcel o->name (with version 1 copied from o->from if given).
 * Creates the parcel's key (and the group's, if new) in the key store. */
int vc_parcel_create(VcBackend *b, const VcCreateOpts *o, bool quiet, VcCheckinStats *st);

/* Stores the next version of name from two image files. The parcel must
 * be leased to this host (vc_host_name) or to nobody; unless keep_lease,
 * the lease is given up after the commit. -EINVAL if a size does not
 * match; -EAGAIN if another checkin committed first (nothing committed). */
int vc_checkin(VcBackend *b, const char *name, const char *mem_path, const char *disk_path,
               const VcCheckinOpts *o, VcCheckinStats *st);

/* Writes version (0: latest) of name to the two paths, each atomically
 * (temp file, fsync, rename): on any error neither path is touched. Takes
 * the parcel's lease for this host unless no_lease (-EBUSY if another host
 * holds it). */
int vc_checkout(VcBackend *b, const char *name, uint32_t version, const char *mem_path, const char *disk_path,
                const VcCheckoutOpts *o, VcCheckoutStats *st);

/* The parcel's record as the store has it, decoded but NOT authenticated
 * (no key needed): for listings. */
int vc_parcel_peek(VcBackend *b, const char *name, VcParcel *p);
/* Its versions as the store lists them (malloc'ed), not authenticated. */
int vc_versions_peek(VcBackend *b, const char *name, VcVersion **ret, size_t *n);

/* This host's name for leases: $VMCAS_HOST, else the system's host name
 * (characters outside [A-Za-z0-9._-] become '-'). */
const char *vc_host_name(void);

/* Number of worker threads (VMCAS_THREADS, or the number of cores). */
int vc_threads(void);

#endif
