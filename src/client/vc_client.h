/* vc_client — the operations that need keys: creating a parcel, checking
 * a version in and checking one out, against a local store.
 *
 * Checkin cuts each image into fixed-size chunks and, for each chunk,
 * derives its key (one hash pass); a chunk whose key equals the previous
 * version's at the same position (or, for ip/group/all, anywhere in the
 * previous version) is reused without sealing. Others are sealed on every
 * core and appended to the store, which drops those it already holds.
 * Then the keyring trees are built (unchanged leaves dedup to the previous
 * version's), and the version is committed in one catalog transaction that
 * first checks every chunk it names is still there. */
#ifndef VC_CLIENT_H
#define VC_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "repo/vc_repo.h"
#include "store/vc_store.h"

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
} VcCheckinStats;

typedef struct VcCreateOpts {
        const char *name;
        VcPolicy policy;
        char group[VC_NAME_MAX + 1];
        VcComp comp;
        uint32_t chunk_size;      /* 0: the source's, or 128 KiB */
        uint64_t mem_size, disk_size;
        const char *from;         /* NULL, or a gold image parcel ... */
        uint32_t from_version;    /* ... and its version (0: latest) */
} VcCreateOpts;

/* Creates parcel o->name (with version 1 copied from o->from if given).
 * Creates the parcel's key (and the group's, if new) in the key store. */
int vc_parcel_create(VcStore *s, const VcCreateOpts *o, bool quiet, VcCheckinStats *st);

/* Stores the next version of name from two image files. -EBUSY if another
 * checkin or prune of the parcel runs; -EINVAL if a size does not match. */
int vc_checkin(VcStore *s, const char *name, const char *mem_path, const char *disk_path, bool quiet,
               VcCheckinStats *st);

/* Writes version (0: latest) of name to the two paths, each atomically
 * (temp file, fsync, rename): on any error neither path is touched. */
int vc_checkout(VcStore *s, const char *name, uint32_t version, const char *mem_path, const char *disk_path,
                bool quiet);

/* Number of worker threads (VMCAS_THREADS, or the number of cores). */
int vc_threads(void);

#endif
