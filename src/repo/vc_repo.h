/* vc_repo — parcels and versions in a store's catalog, and everything that
 * can be done with them WITHOUT a key: listing, walking the keyrings of
 * versions by their clear tags, garbage collection, verification, stat and
 * prune. This is the part a server runs. (Sealing and opening, which need
 * keys, are the client's: src/client.)
 *
 * Parcel record (table PARCELS, key = parcel name), little-endian:
 *   0 "VPAR"  4 u8 format 1  5 u8 policy  6 u8 compression  7 u8 0
 *   8 u64 id  16 u32 chunk size  20 u32 latest version (0: none yet)
 *   24 u64 memory size  32 u64 disk size  40 i64 created (unix seconds)
 *   48 u64 node domain  56 u64 data domain
 *   64 u8[16] key check  80 u8[16] group key check
 *   96 u8 group name length, then the name
 * Version record (table VERSIONS, key = parcel id BE64 ‖ version BE32):
 *   0 "VVER"  4 u8 format 1  5..7 0  8 u32 version  12 u32 0
 *   16 i64 timestamp  24 u64 commit sequence
 *   32 u64 memory size  40 u64 disk size
 *   48 u8[32] memory root tag  80 u8[32] disk root tag
 *   112 u64 new chunks  120 u64 new bytes  128 u64 metadata bytes
 *   136 u8[92] the two root keys, AES-256-GCM under the parcel's wrap key
 *       with bytes 0..135 as associated data
 * The root tags are in the clear so the store can walk the version's tree;
 * the keys are sealed, so only a holder of the parcel's secret can read it.
 */
#ifndef VC_REPO_H
#define VC_REPO_H

#include <stdbool.h>
#include <stdint.h>

#include "core/vc_seal.h"
#include "core/vc_tagset.h"
#include "store/vc_store.h"

#define VC_NAME_MAX 64
#define VC_VERSION_REC_LEN 228
#define VC_VERSION_AAD_LEN 136
#define VC_WRAPPED_LEN (64 + VC_GCM_OVERHEAD)

typedef struct VcParcel {
        char name[VC_NAME_MAX + 1];
        uint64_t id;
        VcPolicy policy;
        VcComp comp;
        char group[VC_NAME_MAX + 1];
        uint32_t chunk_size;
        uint32_t latest;
        uint64_t mem_size, disk_size;
        int64_t created;
        uint64_t node_domain, data_domain;
        uint8_t check[16], group_check[16];
} VcParcel;

typedef struct VcVersion {
        uint32_t version;
        int64_t timestamp;
        uint64_t seq;
        uint64_t mem_size, disk_size;
        uint8_t mem_root[32], disk_root[32];
        uint64_t new_chunks, new_bytes, meta_bytes;
        uint8_t wrapped[VC_WRAPPED_LEN];
} VcVersion;

/* Names of parcels and groups: [A-Za-z0-9._-]{1,64}. */
bool vc_name_valid(const char *s);

int vc_parcel_pack(const VcParcel *p, uint8_t *buf, size_t cap, size_t *len);
int vc_parcel_unpack(const uint8_t *buf, size_t len, const char *name, VcParcel *p);
void vc_version_pack(const VcVersion *v, uint8_t out[VC_VERSION_REC_LEN]);
int vc_version_unpack(const uint8_t *buf, size_t len, VcVersion *v);
void vc_version_key(uint64_t parcel_id, uint32_t version, uint8_t key[12]);

/* -ENOENT with "no parcel 'x' in this store" if absent. */
int vc_repo_parcel(VcTxn *t, const char *name, VcParcel *p);
int vc_repo_parcel_put(VcTxn *t, const VcParcel *p);
/* All parcels, sorted by name (malloc'ed). */
int vc_repo_parcels(VcTxn *t, VcParcel **ret, size_t *n);
/* -ENOENT with "parcel 'x' has no version N" if absent. */
int vc_repo_version(VcTxn *t, const VcParcel *p, uint32_t version, VcVersion *v);
/* All versions of p, oldest first (malloc'ed). */
int vc_repo_versions(VcTxn *t, const VcParcel *p, VcVersion **ret, size_t *n);
/* Allocates the next parcel id / commit sequence number (write txn). */
int vc_repo_next(VcTxn *t, const char *counter, uint64_t *ret);

/* Walks the keyring trees of version v of p without a key: calls visit for
 * every node (kind VC_KIND_META, in p's node domain) and every data chunk
 * (VC_KIND_DATA, in p's data domain) it references; nodes already in
 * `seen` (if given) are not descended into again, so shared subtrees cost
 * nothing the second time. -EBADMSG/-ENOENT if a node cannot be read. */
typedef int (*vc_visit_fn)(uint64_t domain, const uint8_t tag[32], int kind, void *ctx);
int vc_repo_walk(VcStore *s, const VcParcel *p, const VcVersion *v, VcTagSet *seen, vc_visit_fn visit, void *ctx);

typedef struct VcGcStats {
        uint64_t versions, referenced;
        VcSweepStats sweep;
        VcCompactStats compact;
} VcGcStats;
/* Mark and sweep with a grace period (unreferenced chunks younger than
 * grace seconds stay: they may belong to a checkin in progress), then
 * compaction of packs less than half live. Runs beside checkins. */
int vc_repo_gc(VcStore *s, int64_t grace, bool quiet, VcGcStats *st);

/* Drops every version of parcel name older than the newest keep ones.
 * Returns the number of versions dropped. */
int vc_repo_prune(VcStore *s, const char *name, uint32_t keep);


/* ---- stat and verify (src/repo/vc_inspect.c) ------------------------------- */

typedef struct VcParcelStat {
        VcParcel p;
        uint32_t versions;
        uint64_t logical_bytes;  /* image bytes of all its versions */
        uint64_t data_bytes;     /* sealed bytes of the distinct chunks its versions use */
        uint64_t meta_bytes;     /* its keyring nodes and version records */
        uint64_t disk_bytes;     /* the packs of its own domain (for all/group:
                                    its metadata; the pool is counted apart) */
} VcParcelStat;

typedef struct VcStoreStat {
        uint64_t data_bytes, meta_bytes, disk_bytes, index_bytes, logical_bytes;
        VcParcelStat *parcels;
        size_t nparcels;
        VcDomainStat *domains;
        size_t ndomains;
} VcStoreStat;

int vc_repo_stat(VcStore *s, VcStoreStat *st);
void vc_repo_stat_free(VcStoreStat *st);

typedef struct VcVerifyStats {
        uint64_t parcels, versions, chunks_checked, bytes_checked, problems;
        uint64_t by_repair[VC_REPAIR_HARMLESS + 1];     /* problems per VcRepair */
        bool versions_unchecked;        /* the chunk index was damaged: versions not walked */
} VcVerifyStats;
/* Checks the store (vc_store_check_ex) and that every version's keyrings
 * and chunks are present; with full, also re-hashes every chunk. Calls
 * report once per problem with a sentence naming the chunk and the parcels
 * and versions it breaks, and one saying which repair fixes it
 * (vc_repair_text). Returns the number of problems or -errno. */
int vc_repo_verify(VcStore *s, bool full, void (*report)(const char *msg, const char *repair, void *ctx),
                   void *ctx, VcVerifyStats *st);

#endif
